#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "model/metrics.h"
#include "model/status.h"
#include "store/secret_cipher.h"
#include "util/status.h"

// Row mapping shared by the SQLite and PostgreSQL stores: column values (enums as their model
// text, resources and GPU indices as JSON, GPU figures as comma-separated text), the shared SELECT
// column lists and the readers that turn a row of them into a model entity. The readers take any
// row type with Text, IsNull, Int, Int64, Double and Optional{Text,Int,Int64,Double}(col), and a
// cursor adds Result<bool> Step(). Errors: a stored value the model does not know, or malformed
// JSON/text, is Internal. Stateless; thread-safe as far as the row is.
namespace fleetwatch::store::rows {

// The SQL dialect, where the two stores' statements differ (row locks, JSON functions).
enum class Dialect { kSqlite, kPostgres };

template <typename Enum, typename Row>
Result<Enum> ParseColumn(const Row& q, int col, std::string_view what) {
  const std::string text = q.Text(col);
  std::optional<Enum> value = model::Parse<Enum>(text);
  if (!value) return Internal("stored " + std::string(what) + " '" + text + "' is unknown");
  return *value;
}

template <typename Enum, typename Row>
Result<std::optional<Enum>> ParseOptionalColumn(const Row& q, int col, std::string_view what) {
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
    "r.termination_reason, r.submitted_at, r.finished_at, r.configuration, r.cost, "
    "r.row_version FROM runs r JOIN projects p ON p.id = r.project_id JOIN users u ON u.id = "
    "r.user_id ";
inline constexpr std::string_view kSelectJob =
    "SELECT id, run_id, job_name, job_num, replica_num, status, termination_reason, exit_code, "
    "instance_id, instance_name, gpu_indices, submitted_at, finished_at, started_at, "
    "status_detail FROM jobs ";

std::string Sql(std::string_view select, std::string_view rest);

// An agent token as stored: always encrypted (a copy of the database alone reveals none).
Result<std::string> DecryptAgentToken(const SecretCipher& cipher, std::string_view stored,
                                      std::string_view instance_name);

// Readers of one row of the matching kSelect* list.
template <typename Row>
Result<model::User> ReadUser(const Row& q) {
  model::User user;
  user.id = q.Text(0);
  user.name = q.Text(1);
  FW_ASSIGN_OR_RETURN(user.global_role, ParseColumn<model::GlobalRole>(q, 2, "global role"));
  user.created_at = q.Int64(3);
  return user;
}

template <typename Row>
model::Project ReadProject(const Row& q) {
  model::Project project;
  project.id = q.Text(0);
  project.name = q.Text(1);
  project.owner_id = q.Text(2);
  project.created_at = q.Int64(3);
  return project;
}

template <typename Row>
Result<model::Fleet> ReadFleet(const Row& q) {
  model::Fleet fleet;
  fleet.id = q.Text(0);
  fleet.project_id = q.Text(1);
  fleet.project_name = q.Text(2);
  fleet.name = q.Text(3);
  FW_ASSIGN_OR_RETURN(fleet.status, ParseColumn<model::FleetStatus>(q, 4, "fleet status"));
  fleet.configuration_json = q.Text(5);
  fleet.created_at = q.Int64(6);
  return fleet;
}

template <typename Row>
Result<model::Instance> ReadInstance(const Row& q, const SecretCipher& cipher) {
  model::Instance instance;
  instance.id = q.Text(0);
  instance.project_id = q.Text(1);
  instance.project_name = q.Text(2);
  instance.fleet_id = q.Text(3);
  instance.fleet_name = q.Text(4);
  instance.name = q.Text(5);
  instance.instance_num = q.Int(6);
  FW_ASSIGN_OR_RETURN(instance.status, ParseColumn<model::InstanceStatus>(q, 7, "instance status"));
  instance.backend = q.Text(8);
  instance.hostname = q.Text(9);
  instance.agent_port = q.Int(10);
  FW_ASSIGN_OR_RETURN(instance.agent_token, DecryptAgentToken(cipher, q.Text(11), instance.name));
  instance.price = q.OptionalDouble(12);
  FW_ASSIGN_OR_RETURN(instance.resources, ResourcesFromJson(q.Text(13)));
  instance.created_at = q.Int64(14);
  instance.unreachable = q.Int(15) != 0;
  instance.last_seen_at = q.OptionalInt64(16);
  instance.agent_id = q.Text(17);
  instance.tls = q.Int(18) != 0;
  instance.tls_ca_cert = q.Text(19);
  instance.tls_fingerprint = q.Text(20);
  return instance;
}

template <typename Row>
Result<model::Run> ReadRun(const Row& q) {
  model::Run run;
  run.id = q.Text(0);
  run.project_id = q.Text(1);
  run.project_name = q.Text(2);
  run.user_id = q.Text(3);
  run.user_name = q.Text(4);
  run.run_name = q.Text(5);
  FW_ASSIGN_OR_RETURN(run.type, ParseColumn<model::RunType>(q, 6, "run type"));
  FW_ASSIGN_OR_RETURN(run.status, ParseColumn<model::RunStatus>(q, 7, "run status"));
  FW_ASSIGN_OR_RETURN(run.termination_reason, ParseOptionalColumn<model::RunTerminationReason>(
                                                  q, 8, "run termination reason"));
  run.submitted_at = q.Int64(9);
  run.finished_at = q.OptionalInt64(10);
  run.configuration_json = q.Text(11);
  run.cost = q.Double(12);
  run.row_version = q.Int64(13);
  return run;
}

template <typename Row>
Result<model::Job> ReadJob(const Row& q) {
  model::Job job;
  job.id = q.Text(0);
  job.run_id = q.Text(1);
  job.job_name = q.Text(2);
  job.job_num = q.Int(3);
  job.replica_num = q.Int(4);
  FW_ASSIGN_OR_RETURN(job.status, ParseColumn<model::JobStatus>(q, 5, "job status"));
  FW_ASSIGN_OR_RETURN(job.termination_reason, ParseOptionalColumn<model::JobTerminationReason>(
                                                  q, 6, "job termination reason"));
  job.exit_code = q.OptionalInt(7);
  job.instance_id = q.OptionalText(8);
  job.instance_name = q.OptionalText(9);
  FW_ASSIGN_OR_RETURN(job.gpu_indices, GpuIndicesFromJson(q.Text(10)));
  job.submitted_at = q.Int64(11);
  job.finished_at = q.OptionalInt64(12);
  job.started_at = q.OptionalInt64(13);
  job.status_detail = q.OptionalText(14);
  return job;
}

// The rows of a query (a cursor: Step() then the columns of its row) whose columns are job_id,
// timestamp_micro, cpu_usage_micro, memory_usage_bytes, memory_working_set_bytes,
// gpus_memory_usage_bytes, gpus_util_percent.
template <typename Cursor>
Result<std::vector<model::JobMetricsPoint>> PointsOf(Cursor& q) {
  std::vector<model::JobMetricsPoint> points;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    model::JobMetricsPoint p;
    p.job_id = q.Text(0);
    p.timestamp_micro = q.Int64(1);
    p.cpu_usage_micro = q.Int64(2);
    p.memory_usage_bytes = q.Int64(3);
    p.memory_working_set_bytes = q.Int64(4);
    FW_ASSIGN_OR_RETURN(p.gpus_memory_usage_bytes, Int64ListFromText(q.Text(5)));
    FW_ASSIGN_OR_RETURN(p.gpus_util_percent, Int64ListFromText(q.Text(6)));
    points.push_back(std::move(p));
  }
  return points;
}

// Prefixes a non-ok status's message with what was being done.
Status WithContext(const Status& status, const std::string& context);

// "?, ?, ?": placeholders only; values are always bound.
std::string Placeholders(size_t n);

}  // namespace fleetwatch::store::rows
