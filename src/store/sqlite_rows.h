#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "model/metrics.h"
#include "model/status.h"
#include "store/secret_cipher.h"
#include "store/sqlite_query.h"
#include "util/status.h"

// Row mapping of the SQLite store: column values (enums as their model text, resources and GPU
// indices as JSON, GPU figures as comma-separated text), the shared SELECT column lists and the
// readers that turn a row of them into a model entity. Errors: a stored value the model does not
// know, or malformed JSON/text, is Internal. Stateless; thread-safe as far as the Query is.
namespace fleetwatch::store::sqlite {

template <typename Enum>
Result<Enum> ParseColumn(const Query& q, int col, std::string_view what) {
  const std::string text = q.Text(col);
  std::optional<Enum> value = model::Parse<Enum>(text);
  if (!value) return Internal("stored " + std::string(what) + " '" + text + "' is unknown");
  return *value;
}

template <typename Enum>
Result<std::optional<Enum>> ParseOptionalColumn(const Query& q, int col, std::string_view what) {
  if (q.IsNull(col)) return std::optional<Enum>();
  FW_ASSIGN_OR_RETURN(Enum value, ParseColumn<Enum>(q, col, what));
  return std::optional<Enum>(value);
}

template <typename Enum>
std::optional<std::string_view> OptionalText(const std::optional<Enum>& value) {
  if (!value) return std::nullopt;
  return model::ToString(*value);
}

std::string ResourcesToJson(const model::InstanceResources& resources);
Result<model::InstanceResources> ResourcesFromJson(std::string_view text);
std::string GpuIndicesToJson(const std::vector<int>& indices);
Result<std::vector<int>> GpuIndicesFromJson(std::string_view text);
// GPU figures of a metrics point: "12,0,100" (empty for none). Plain text keeps ingest cheap.
std::string Int64ListToText(const std::vector<int64_t>& values);
Result<std::vector<int64_t>> Int64ListFromText(std::string_view text);

// The rows of a query whose columns are job_id, timestamp_micro, cpu_usage_micro,
// memory_usage_bytes, memory_working_set_bytes, gpus_memory_usage_bytes, gpus_util_percent.
Result<std::vector<model::JobMetricsPoint>> PointsOf(Query& q);

// ---------------------------------------------------------------------------------------------
// SQL. Column lists are shared by the statements that read a whole entity; the Read* functions
// below depend on their order.

inline constexpr std::string_view kFinishedRunStatuses = "('terminated', 'failed', 'done')";
inline constexpr std::string_view kFinishedJobStatuses =
    "('terminated', 'aborted', 'failed', 'done')";

inline constexpr std::string_view kSelectUser =
    "SELECT u.id, u.name, u.global_role, u.created_at FROM users u ";
inline constexpr std::string_view kSelectProject =
    "SELECT p.id, p.name, p.owner_id, p.created_at FROM projects p ";
inline constexpr std::string_view kSelectFleet =
    "SELECT f.id, f.project_id, p.name, f.name, f.status, f.configuration, f.created_at "
    "FROM fleets f JOIN projects p ON p.id = f.project_id ";
inline constexpr std::string_view kSelectInstance =
    "SELECT i.id, i.project_id, p.name, i.fleet_id, f.name, i.name, i.instance_num, i.status, "
    "i.backend, i.hostname, i.agent_port, i.agent_token, i.price, i.resources, i.created_at, "
    "i.unreachable, i.last_seen_at, i.agent_id, i.tls, i.tls_ca_cert, i.tls_fingerprint "
    "FROM instances i JOIN fleets f ON f.id = i.fleet_id JOIN projects p ON p.id = i.project_id ";
inline constexpr std::string_view kSelectRun =
    "SELECT r.id, r.project_id, p.name, r.user_id, u.name, r.run_name, r.run_type, r.status, "
    "r.termination_reason, r.submitted_at, r.finished_at, r.configuration, r.cost "
    "FROM runs r JOIN projects p ON p.id = r.project_id JOIN users u ON u.id = r.user_id ";
inline constexpr std::string_view kSelectJob =
    "SELECT id, run_id, job_name, job_num, replica_num, status, termination_reason, exit_code, "
    "instance_id, instance_name, gpu_indices, submitted_at, finished_at, started_at, "
    "status_detail FROM jobs ";

std::string Sql(std::string_view select, std::string_view rest);

// Readers of one row of the matching kSelect* list.
Result<model::User> ReadUser(const Query& q);
model::Project ReadProject(const Query& q);
Result<model::Fleet> ReadFleet(const Query& q);
// An agent token as stored: always encrypted (a copy of the database alone reveals none).
Result<std::string> DecryptAgentToken(const SecretCipher& cipher, std::string_view stored,
                                      std::string_view instance_name);
Result<model::Instance> ReadInstance(const Query& q, const SecretCipher& cipher);
Result<model::Run> ReadRun(const Query& q);
Result<model::Job> ReadJob(const Query& q);

}  // namespace fleetwatch::store::sqlite
