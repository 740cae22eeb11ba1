#include "store/postgres_store.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "model/entities.h"
#include "model/status.h"
#include "store/change_keys.h"
#include "store/gpu_ledger_rows.h"
#include "store/host_dcgm_rows.h"
#include "store/job_aggregate_rows.h"
#include "store/job_log_rows.h"
#include "store/leases.h"
#include "store/postgres_migrations.h"
#include "store/postgres_query.h"
#include "store/row_mapping.h"
#include "store/run_event_rows.h"
#include "store/secret_cipher.h"
#include "util/mutex.h"

namespace fleetwatch::store {
namespace postgres {
namespace {

using rows::GpuIndicesFromJson;
using rows::GpuIndicesToJson;
using rows::Int64ListToText;
using rows::kFinishedJobStatuses;
using rows::kFinishedRunStatuses;
using rows::kSelectFleet;
using rows::kSelectInstance;
using rows::kSelectJob;
using rows::kSelectProject;
using rows::kSelectRun;
using rows::kSelectUser;
using rows::OptionalText;
using rows::ParseColumn;
using rows::ParseOptionalColumn;
using rows::Placeholders;
using rows::PointsOf;
using rows::ReadFleet;
using rows::ReadInstance;
using rows::ReadJob;
using rows::ReadProject;
using rows::ReadRun;
using rows::ReadUser;
using rows::ResourcesToJson;
using rows::Sql;
using rows::WithContext;

const Status& StatusOf(const Status& status) { return status; }
template <typename T>
Status StatusOf(const Result<T>& result) {
  return result.status();
}

// Thread-safe: every public method takes mu_ for its whole transaction.
class PostgresStore final : public Store {
  // `Prepare` as a callable, for the statements shared by both stores (leases.h,
  // gpu_ledger_rows.h).
  struct Preparing {
    PostgresStore* store;
    auto operator()(const std::string& sql) const { return store->Prepare(sql); }
  };
  Preparing Preparer() { return Preparing{this}; }

 public:
  PostgresStore(ConnHandle conn, const SecretCipher& cipher)
      : cipher_(cipher), conn_(std::move(conn)) {}

  // Proves that the key decrypts the stored agent tokens (a wrong key fails here, at start, not at
  // the first poll), and encrypts any stored in clear.
  Status SealAgentTokens() {
    size_t sealed_now = 0;
    Status rewritten = Write([&]() -> Status {
      std::vector<std::pair<std::string, std::string>> clear;  // id, token
      {
        FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT id, name, agent_token FROM instances"));
        while (true) {
          FW_ASSIGN_OR_RETURN(bool row, q.Step());
          if (!row) break;
          std::string stored = q.Text(2);
          if (!SecretCipher::IsEncrypted(stored)) {
            clear.emplace_back(q.Text(0), std::move(stored));
            continue;
          }
          Result<std::string> token = cipher_.Decrypt(stored);
          if (!token.ok()) {
            return FailedPrecondition(
                "the encryption key does not decrypt the agent token of instance '" + q.Text(1) +
                "': FLEETWATCH_ENCRYPTION_KEY is not the key this database was written with");
          }
        }
      }
      for (const auto& [id, token] : clear) {
        FW_ASSIGN_OR_RETURN(std::string sealed, cipher_.Encrypt(token));
        FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE instances SET agent_token = ? WHERE id = ?"));
        q.Bind(sealed).Bind(id);
        FW_RETURN_IF_ERROR(q.Exec());
      }
      sealed_now = clear.size();
      return Status::Ok();
    });
    (void)sealed_now;
    return rewritten;
  }

  Result<bool> Bootstrap(const model::User& admin, std::string_view token_hash,
                         const model::Project& main_project) override {
    return Write([&]() -> Result<bool> {
      {
        FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT 1 FROM users LIMIT 1"));
        FW_ASSIGN_OR_RETURN(bool any_user, q.Step());
        if (any_user) return false;
      }
      FW_RETURN_IF_ERROR(InsertUser(admin, token_hash));
      FW_RETURN_IF_ERROR(InsertProject(main_project));
      FW_RETURN_IF_ERROR(UpsertMember(main_project.id, admin.id, model::ProjectRole::kAdmin));
      return true;
    });
  }

  // --- users ---

  Status CreateUser(const model::User& user, std::string_view token_hash) override {
    return Write([&] { return InsertUser(user, token_hash); });
  }

  Result<model::User> GetUserByName(std::string_view name) override {
    return Read([&]() -> Result<model::User> {
      FW_ASSIGN_OR_RETURN(Query q, Prepare(Sql(kSelectUser, "WHERE u.name = ? AND u.deleted = 0")));
      q.Bind(name);
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) return NotFound("user '" + std::string(name) + "' does not exist");
      return ReadUser(q);
    });
  }

  Result<model::User> GetUserByTokenHash(std::string_view token_hash) override {
    return Read([&]() -> Result<model::User> {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql(kSelectUser, "WHERE u.token_hash = ? AND u.deleted = 0")));
      q.Bind(token_hash);
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) return NotFound("no user has this token");
      return ReadUser(q);
    });
  }

  Result<std::vector<model::User>> ListUsers() override {
    return Read([&]() -> Result<std::vector<model::User>> {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql(kSelectUser, "WHERE u.deleted = 0 ORDER BY u.name")));
      std::vector<model::User> users;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        FW_ASSIGN_OR_RETURN(model::User user, ReadUser(q));
        users.push_back(std::move(user));
      }
      return users;
    });
  }

  Status SetUserTokenHash(std::string_view user_id, std::string_view token_hash) override {
    return Write([&]() -> Status {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare("UPDATE users SET token_hash = ? WHERE id = ? AND deleted = 0"));
      q.Bind(token_hash).Bind(user_id);
      FW_RETURN_IF_ERROR(q.Exec());
      if (q.Changes() == 0) return NotFound("the user does not exist");
      return Status::Ok();
    });
  }

  Status SetUserGlobalRole(std::string_view user_id, model::GlobalRole role) override {
    return Write([&]() -> Status {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare("UPDATE users SET global_role = ? WHERE id = ? AND deleted = 0"));
      q.Bind(model::ToString(role)).Bind(user_id);
      FW_RETURN_IF_ERROR(q.Exec());
      if (q.Changes() == 0) return NotFound("the user does not exist");
      return RequireAnAdmin();
    });
  }

  Status DeleteUsers(const std::vector<std::string>& names) override {
    return Write([&]() -> Status {
      for (const std::string& name : names) {
        std::string id;
        {
          FW_ASSIGN_OR_RETURN(Query q,
                              Prepare("SELECT id FROM users WHERE name = ? AND deleted = 0"));
          q.Bind(name);
          FW_ASSIGN_OR_RETURN(bool row, q.Step());
          if (!row) return NotFound("user '" + name + "' does not exist");
          id = q.Text(0);
        }
        {
          // The hash column is unique and never empty; hashes are hex, so this matches no token.
          FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE users SET deleted = 1, token_hash = ? "
                                               "WHERE id = ?"));
          q.Bind("deleted:" + id).Bind(id);
          FW_RETURN_IF_ERROR(q.Exec());
        }
        FW_ASSIGN_OR_RETURN(Query q, Prepare("DELETE FROM members WHERE user_id = ?"));
        q.Bind(id);
        FW_RETURN_IF_ERROR(q.Exec());
      }
      return RequireAnAdmin();
    });
  }

  // --- projects and members ---

  Status CreateProject(const model::Project& project) override {
    return Write([&]() -> Status {
      FW_RETURN_IF_ERROR(InsertProject(project));
      return UpsertMember(project.id, project.owner_id, model::ProjectRole::kAdmin);
    });
  }

  Result<model::Project> GetProject(std::string_view name) override {
    return Read([&]() -> Result<model::Project> {
      FW_ASSIGN_OR_RETURN(Query q, Prepare(Sql(kSelectProject, "WHERE p.name = ?")));
      q.Bind(name);
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) return NotFound("project '" + std::string(name) + "' does not exist");
      return ReadProject(q);
    });
  }

  Result<std::vector<model::Project>> ListProjects() override {
    return Read([&]() -> Result<std::vector<model::Project>> {
      FW_ASSIGN_OR_RETURN(Query q, Prepare(Sql(kSelectProject, "ORDER BY p.name")));
      return ReadProjects(q);
    });
  }

  Result<std::vector<model::Project>> ListProjectsOfUser(std::string_view user_id) override {
    return Read([&]() -> Result<std::vector<model::Project>> {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql(kSelectProject,
                                      "JOIN members m ON m.project_id = p.id WHERE m.user_id = ? "
                                      "ORDER BY p.name")));
      q.Bind(user_id);
      return ReadProjects(q);
    });
  }

  Status SetMember(std::string_view project_id, std::string_view user_id,
                   model::ProjectRole role) override {
    return Write([&] { return UpsertMember(project_id, user_id, role); });
  }

  Status RemoveMember(std::string_view project_id, std::string_view user_id) override {
    return Write([&]() -> Status {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare("DELETE FROM members WHERE project_id = ? AND user_id = ?"));
      q.Bind(project_id).Bind(user_id);
      FW_RETURN_IF_ERROR(q.Exec());
      if (q.Changes() == 0) return NotFound("the user is not a member of the project");
      return Status::Ok();
    });
  }

  Result<std::optional<model::ProjectRole>> GetMemberRole(std::string_view project_id,
                                                          std::string_view user_id) override {
    return Read([&]() -> Result<std::optional<model::ProjectRole>> {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare("SELECT role FROM members WHERE project_id = ? AND user_id = ?"));
      q.Bind(project_id).Bind(user_id);
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) return std::optional<model::ProjectRole>();
      return ParseOptionalColumn<model::ProjectRole>(q, 0, "project role");
    });
  }

  Result<std::vector<model::Member>> ListMembers(std::string_view project_id) override {
    return Read([&]() -> Result<std::vector<model::Member>> {
      FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT m.project_id, m.user_id, u.name, m.role "
                                           "FROM members m JOIN users u ON u.id = m.user_id "
                                           "WHERE m.project_id = ? ORDER BY u.name"));
      q.Bind(project_id);
      std::vector<model::Member> members;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        model::Member member;
        member.project_id = q.Text(0);
        member.user_id = q.Text(1);
        member.user_name = q.Text(2);
        FW_ASSIGN_OR_RETURN(member.role, ParseColumn<model::ProjectRole>(q, 3, "project role"));
        members.push_back(std::move(member));
      }
      return members;
    });
  }

  // --- fleets and instances ---

  Status CreateFleet(const model::Fleet& fleet,
                     const std::vector<model::Instance>& instances) override {
    return Write({&instances_version_}, [&]() -> Status {
      {
        FW_ASSIGN_OR_RETURN(Query q, Prepare("INSERT INTO fleets (id, project_id, name, status, "
                                             "configuration, created_at) "
                                             "VALUES (?, ?, ?, ?, ?, ?)"));
        q.Bind(fleet.id)
            .Bind(fleet.project_id)
            .Bind(fleet.name)
            .Bind(model::ToString(fleet.status))
            .Bind(fleet.configuration_json)
            .Bind(fleet.created_at);
        FW_RETURN_IF_ERROR(WithContext(q.Exec(), "create fleet '" + fleet.name + "'"));
      }
      for (const model::Instance& instance : instances) {
        FW_ASSIGN_OR_RETURN(std::string agent_token, cipher_.Encrypt(instance.agent_token));
        FW_ASSIGN_OR_RETURN(
            Query q, Prepare("INSERT INTO instances (id, project_id, fleet_id, name, instance_num, "
                             "status, backend, hostname, agent_port, agent_token, price, "
                             "resources, created_at, tls, tls_ca_cert, tls_fingerprint) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        // The instances belong to `fleet`, whatever their own project/fleet ids say.
        q.Bind(instance.id)
            .Bind(fleet.project_id)
            .Bind(fleet.id)
            .Bind(instance.name)
            .Bind(instance.instance_num)
            .Bind(model::ToString(instance.status))
            .Bind(instance.backend)
            .Bind(instance.hostname)
            .Bind(instance.agent_port)
            .Bind(agent_token)
            .Bind(instance.price)
            .Bind(ResourcesToJson(instance.resources))
            .Bind(instance.created_at)
            .Bind(instance.tls ? 1 : 0)
            .Bind(instance.tls_ca_cert)
            .Bind(instance.tls_fingerprint);
        FW_RETURN_IF_ERROR(WithContext(q.Exec(), "create instance '" + instance.name + "'"));
      }
      return Status::Ok();
    });
  }

  Result<model::Fleet> GetFleet(std::string_view project_id, std::string_view name) override {
    return Read([&]() -> Result<model::Fleet> {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql(kSelectFleet, "WHERE f.project_id = ? AND f.name = ?")));
      q.Bind(project_id).Bind(name);
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) return NotFound("fleet '" + std::string(name) + "' does not exist");
      return ReadFleet(q);
    });
  }

  Result<std::vector<model::Fleet>> ListFleets(std::string_view project_id) override {
    return Read([&]() -> Result<std::vector<model::Fleet>> {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql(kSelectFleet, "WHERE f.project_id = ? ORDER BY f.name")));
      q.Bind(project_id);
      std::vector<model::Fleet> fleets;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        FW_ASSIGN_OR_RETURN(model::Fleet fleet, ReadFleet(q));
        fleets.push_back(std::move(fleet));
      }
      return fleets;
    });
  }

  Status DeleteFleet(std::string_view project_id, std::string_view name) override {
    return Write({&runs_version_, &instances_version_}, [&]() -> Status {
      std::string fleet_id;
      {
        FW_ASSIGN_OR_RETURN(Query q,
                            Prepare("SELECT id FROM fleets WHERE project_id = ? AND name = ?"));
        q.Bind(project_id).Bind(name);
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) return NotFound("fleet '" + std::string(name) + "' does not exist");
        fleet_id = q.Text(0);
      }
      {
        FW_ASSIGN_OR_RETURN(Query q, Prepare(Sql("SELECT j.job_name FROM jobs j "
                                                 "JOIN instances i ON i.id = j.instance_id "
                                                 "WHERE i.fleet_id = ? AND j.status NOT IN ",
                                                 kFinishedJobStatuses) +
                                             " ORDER BY j.job_name LIMIT 1"));
        q.Bind(fleet_id);
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (row) {
          return FailedPrecondition("fleet '" + std::string(name) + "' is in use by job '" +
                                    q.Text(0) + "'");
        }
      }
      {
        // The runs whose ended jobs lose their instance (ON DELETE SET NULL) change: a
        // conditional write read before this one must not apply (UpdateRunIfCurrent).
        FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE runs SET row_version = row_version + 1 "
                                             "WHERE id IN (SELECT j.run_id FROM jobs j JOIN "
                                             "instances i ON i.id = j.instance_id WHERE "
                                             "i.fleet_id = ?)"));
        q.Bind(fleet_id);
        FW_RETURN_IF_ERROR(q.Exec());
      }
      FW_ASSIGN_OR_RETURN(Query q, Prepare("DELETE FROM fleets WHERE id = ?"));
      q.Bind(fleet_id);
      return q.Exec();
    });
  }

  Result<std::vector<model::Instance>> ListInstances(std::string_view project_id) override {
    return Read([&]() -> Result<std::vector<model::Instance>> {
      constexpr std::string_view kOrder = "ORDER BY p.name, f.name, i.instance_num";
      std::optional<Query> q;
      if (project_id.empty()) {
        FW_ASSIGN_OR_RETURN(Query all, Prepare(Sql(kSelectInstance, kOrder)));
        q.emplace(std::move(all));
      } else {
        FW_ASSIGN_OR_RETURN(Query one, Prepare(Sql(kSelectInstance, "WHERE i.project_id = ? ") +
                                               std::string(kOrder)));
        q.emplace(std::move(one));
        q->Bind(project_id);
      }
      std::vector<model::Instance> instances;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q->Step());
        if (!row) break;
        FW_ASSIGN_OR_RETURN(model::Instance instance, ReadInstance(*q, cipher_));
        instances.push_back(std::move(instance));
      }
      return instances;
    });
  }

  Status UpdateInstance(const model::Instance& instance) override {
    return Write({&instances_version_}, [&]() -> Status { return UpdateInstanceRow(instance); });
  }

  Status UpdateInstanceIfLeased(const model::Instance& instance, std::string_view token) override {
    return Write({&instances_version_}, [&]() -> Status {
      FW_RETURN_IF_ERROR(leases::Check(Preparer(), {{instance.id, std::string(token)}}));
      return UpdateInstanceRow(instance);
    });
  }

  Status SetInstancesLastSeen(
      const std::vector<std::pair<std::string, TimeMicros>>& last_seen) override {
    if (last_seen.empty()) return Status::Ok();
    return Write({&instances_version_}, [&]() -> Status {
      for (const auto& [id, at] : last_seen) {
        FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE instances SET last_seen_at = ? WHERE id = ?"));
        q.Bind(at).Bind(id);
        FW_RETURN_IF_ERROR(q.Exec());
      }
      return Status::Ok();
    });
  }

  int64_t InstancesVersion() override { return instances_version_.load(); }

  // --- runs and jobs ---

  Status CreateRun(const model::Run& run) override {
    return Write({&runs_version_}, [&]() -> Status {
      {
        // Checked first for a clear message; the partial unique index is the real guard.
        FW_ASSIGN_OR_RETURN(Query q,
                            Prepare(Sql("SELECT 1 FROM runs WHERE project_id = ? AND run_name = ? "
                                        "AND deleted = 0 AND status NOT IN ",
                                        kFinishedRunStatuses)));
        q.Bind(run.project_id).Bind(run.run_name);
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (row) return AlreadyExists("run '" + run.run_name + "' is still active");
      }
      {
        // The name's finished runs are deleted with the new run's creation, as a resubmission
        // does; soft-deleted, so the run counters never go down. Their logs go.
        FW_RETURN_IF_ERROR(rows::DeleteLogsOfRunsNamed(Preparer(), run.project_id, run.run_name));
        FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE runs SET deleted = 1 WHERE project_id = ? AND "
                                             "run_name = ? AND deleted = 0"));
        q.Bind(run.project_id).Bind(run.run_name);
        FW_RETURN_IF_ERROR(q.Exec());
      }
      {
        FW_ASSIGN_OR_RETURN(
            Query q,
            Prepare("INSERT INTO runs (id, project_id, user_id, run_name, run_type, status, "
                    "termination_reason, submitted_at, finished_at, configuration, cost, deleted) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"));
        q.Bind(run.id)
            .Bind(run.project_id)
            .Bind(run.user_id)
            .Bind(run.run_name)
            .Bind(model::ToString(run.type))
            .Bind(model::ToString(run.status))
            .Bind(OptionalText(run.termination_reason))
            .Bind(run.submitted_at)
            .Bind(run.finished_at)
            .Bind(run.configuration_json)
            .Bind(run.cost);
        FW_RETURN_IF_ERROR(WithContext(q.Exec(), "create run '" + run.run_name + "'"));
      }
      for (const model::Job& job : run.jobs) {
        FW_ASSIGN_OR_RETURN(
            Query q,
            Prepare("INSERT INTO jobs (id, run_id, job_name, job_num, replica_num, status, "
                    "termination_reason, exit_code, instance_id, instance_name, gpu_indices, "
                    "submitted_at, finished_at, started_at, status_detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        q.Bind(job.id)
            .Bind(run.id)  // the jobs belong to `run`, whatever their own run_id says
            .Bind(job.job_name)
            .Bind(job.job_num)
            .Bind(job.replica_num)
            .Bind(model::ToString(job.status))
            .Bind(OptionalText(job.termination_reason))
            .Bind(job.exit_code)
            .Bind(job.instance_id)
            .Bind(job.instance_name)
            .Bind(GpuIndicesToJson(job.gpu_indices))
            .Bind(job.submitted_at)
            .Bind(job.finished_at)
            .Bind(job.started_at)
            .Bind(job.status_detail);
        FW_RETURN_IF_ERROR(WithContext(q.Exec(), "create job '" + job.job_name + "'"));
      }
      return Status::Ok();
    });
  }

  Result<model::Run> GetRun(std::string_view project_id, std::string_view run_name) override {
    return Read([&]() -> Result<model::Run> {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql(kSelectRun,
                                      "WHERE r.project_id = ? AND r.run_name = ? AND r.deleted = 0 "
                                      "ORDER BY r.submitted_at DESC, r.id LIMIT 1")));
      q.Bind(project_id).Bind(run_name);
      return ReadOneRun(q, run_name);
    });
  }

  Result<model::Run> GetRunById(std::string_view run_id) override {
    return Read([&]() -> Result<model::Run> {
      FW_ASSIGN_OR_RETURN(Query q, Prepare(Sql(kSelectRun, "WHERE r.id = ?")));
      q.Bind(run_id);
      return ReadOneRun(q, run_id);
    });
  }

  Result<std::vector<model::Run>> ListRuns(const RunFilter& filter) override {
    return Read([&]() -> Result<std::vector<model::Run>> {
      std::string where = "WHERE r.project_id = ?";
      if (!filter.include_deleted) where += " AND r.deleted = 0";
      if (!filter.statuses.empty()) {
        where += " AND r.status IN (" + Placeholders(filter.statuses.size()) + ")";
      }
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare(Sql(kSelectRun, where) + " ORDER BY r.submitted_at DESC, r.id LIMIT ?"));
      q.Bind(filter.project_id);
      for (model::RunStatus status : filter.statuses) q.Bind(model::ToString(status));
      q.Bind(std::max(filter.limit, 0));
      return ReadRuns(q);
    });
  }

  Result<std::vector<model::Run>> ListRunsWithStatus(
      const std::vector<model::RunStatus>& statuses) override {
    if (statuses.empty()) return std::vector<model::Run>();
    return Read([&]() -> Result<std::vector<model::Run>> {
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare(Sql(kSelectRun, "WHERE r.status IN (" + Placeholders(statuses.size()) +
                                               ") ORDER BY r.submitted_at, r.id")));
      for (model::RunStatus status : statuses) q.Bind(model::ToString(status));
      return ReadRuns(q);
    });
  }

  Status UpdateRun(const model::Run& run) override {
    return Write({&runs_version_}, [&]() -> Status { return UpdateRunRows(run); });
  }

  Status UpdateRunIfCurrent(
      const model::Run& run,
      const std::vector<std::pair<std::string, std::string>>& leases) override {
    return Write({&runs_version_}, [&]() -> Status {
      FW_RETURN_IF_ERROR(leases::Check(Preparer(), leases));
      FW_RETURN_IF_ERROR(leases::CheckRunVersion(Preparer(), run));
      return UpdateRunRows(run);
    });
  }

  Status DeleteRun(std::string_view run_id) override {
    return Write({&runs_version_}, [&]() -> Status { return DeleteRunRows(run_id, nullptr); });
  }

  Status DeleteRunIfCurrent(const model::Run& run) override {
    return Write({&runs_version_}, [&]() -> Status { return DeleteRunRows(run.id, &run); });
  }

 private:
  // Requires mu_ and an open transaction. `current`, when set: the run as read, whose row version
  // must still be the stored one.
  Status DeleteRunRows(std::string_view run_id, const model::Run* current) {
    {
      FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT run_name, status FROM runs WHERE id = ?"));
      q.Bind(run_id);
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) return NotFound("run '" + std::string(run_id) + "' does not exist");
      FW_ASSIGN_OR_RETURN(model::RunStatus status,
                          ParseColumn<model::RunStatus>(q, 1, "run status"));
      if (!model::IsFinished(status)) {
        return FailedPrecondition("run '" + q.Text(0) + "' is " +
                                  std::string(model::ToString(status)) +
                                  "; only a finished run can be deleted");
      }
    }
    if (current) FW_RETURN_IF_ERROR(leases::CheckRunVersion(Preparer(), *current));
    FW_RETURN_IF_ERROR(rows::DeleteRunLogs(Preparer(), run_id));
    FW_ASSIGN_OR_RETURN(
        Query q,
        Prepare("UPDATE runs SET deleted = 1, row_version = row_version + 1 WHERE id = ?"));
    q.Bind(run_id);
    return q.Exec();
  }

 public:
  Result<std::vector<RunCount>> CountRuns() override {
    return Read([&]() -> Result<std::vector<RunCount>> {
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare("SELECT p.name, u.name, r.status, COUNT(*), "
                           "SUM(CASE WHEN r.deleted = 0 THEN 1 ELSE 0 END) FROM runs r "
                           "JOIN projects p ON p.id = r.project_id "
                           "JOIN users u ON u.id = r.user_id "
                           "GROUP BY p.name, u.name, r.status ORDER BY p.name, u.name, r.status"));
      std::vector<RunCount> out;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        std::optional<model::RunStatus> status = model::Parse<model::RunStatus>(q.Text(2));
        if (!status) return Internal("unknown run status '" + q.Text(2) + "' in the database");
        out.push_back(RunCount{q.Text(0), q.Text(1), *status, q.Int64(3), q.Int64(4)});
      }
      return out;
    });
  }

  Result<std::vector<model::Job>> ListJobsByIds(const std::vector<std::string>& job_ids) override {
    if (job_ids.empty()) return std::vector<model::Job>();
    // One statement for any number of ids: they travel as one JSON array.
    boost::json::array ids(job_ids.begin(), job_ids.end());
    const std::string ids_json = boost::json::serialize(ids);
    return Read([&]() -> Result<std::vector<model::Job>> {
      FW_ASSIGN_OR_RETURN(
          Query q,
          Prepare(Sql(kSelectJob, "WHERE id IN (SELECT jsonb_array_elements_text(?::jsonb))")));
      q.Bind(ids_json);
      std::vector<model::Job> jobs;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        FW_ASSIGN_OR_RETURN(model::Job job, ReadJob(q));
        jobs.push_back(std::move(job));
      }
      return jobs;
    });
  }

  int64_t RunsVersion() override { return runs_version_.load(); }

  // --- job metrics ---

  Status AddJobMetricsPoints(const std::vector<model::JobMetricsPoint>& points) override {
    if (points.empty()) return Status::Ok();
    return Write([&]() -> Status {
      for (const model::JobMetricsPoint& p : points) {
        FW_ASSIGN_OR_RETURN(
            Query q, Prepare("INSERT INTO job_metrics_points (job_id, timestamp_micro, "
                             "cpu_usage_micro, memory_usage_bytes, memory_working_set_bytes, "
                             "gpus_memory_usage_bytes, gpus_util_percent) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, timestamp_micro) "
                             "DO UPDATE SET cpu_usage_micro = excluded.cpu_usage_micro, "
                             "memory_usage_bytes = excluded.memory_usage_bytes, "
                             "memory_working_set_bytes = excluded.memory_working_set_bytes, "
                             "gpus_memory_usage_bytes = excluded.gpus_memory_usage_bytes, "
                             "gpus_util_percent = excluded.gpus_util_percent"));
        q.Bind(p.job_id)
            .Bind(p.timestamp_micro)
            .Bind(p.cpu_usage_micro)
            .Bind(p.memory_usage_bytes)
            .Bind(p.memory_working_set_bytes)
            .Bind(Int64ListToText(p.gpus_memory_usage_bytes))
            .Bind(Int64ListToText(p.gpus_util_percent));
        FW_RETURN_IF_ERROR(
            WithContext(q.Exec(), "store a metrics point of job '" + p.job_id + "'"));
      }
      std::map<std::string_view, TimeMicros> newest;
      for (const model::JobMetricsPoint& p : points) {
        auto [it, inserted] = newest.try_emplace(p.job_id, p.timestamp_micro);
        if (!inserted) it->second = std::max(it->second, p.timestamp_micro);
      }
      std::vector<std::string> keys;
      for (const auto& [job_id, at] : newest) keys.push_back(VersionedKey(job_id, at));
      return Notify(kJobPointsChannel, keys);
    });
  }

  Result<std::vector<model::JobMetricsPoint>> ListJobMetricsPoints(std::string_view job_id,
                                                                   std::optional<TimeMicros> after,
                                                                   std::optional<TimeMicros> before,
                                                                   int limit) override {
    return Read([&]() -> Result<std::vector<model::JobMetricsPoint>> {
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare("SELECT job_id, timestamp_micro, cpu_usage_micro, memory_usage_bytes, "
                           "memory_working_set_bytes, gpus_memory_usage_bytes, gpus_util_percent "
                           "FROM job_metrics_points WHERE job_id = ? AND timestamp_micro >= ? "
                           "AND timestamp_micro < ? ORDER BY timestamp_micro DESC LIMIT ?"));
      q.Bind(job_id)
          .Bind(after.value_or(std::numeric_limits<int64_t>::min()))
          .Bind(before.value_or(std::numeric_limits<int64_t>::max()))
          .Bind(static_cast<int64_t>(std::max(limit, 0)));
      return PointsOf(q);
    });
  }

  Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfUnfinishedJobs() override {
    return Read([&]() -> Result<std::vector<model::JobMetricsPoint>> {
      // The first row of each job in (job_id, timestamp_micro DESC) order: the primary key,
      // walked backwards.
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql("SELECT DISTINCT ON (m.job_id) m.job_id, m.timestamp_micro, "
                                      "m.cpu_usage_micro, m.memory_usage_bytes, "
                                      "m.memory_working_set_bytes, m.gpus_memory_usage_bytes, "
                                      "m.gpus_util_percent FROM job_metrics_points m "
                                      "JOIN jobs j ON j.id = m.job_id WHERE j.status NOT IN ",
                                      kFinishedJobStatuses) +
                                  " ORDER BY m.job_id, m.timestamp_micro DESC"));
      return PointsOf(q);
    });
  }

  Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfJobs(
      const std::vector<std::string>& job_ids) override {
    if (job_ids.empty()) return std::vector<model::JobMetricsPoint>();
    return Read([&] {
      return rows::ListNewestMetricsOfJobs(Preparer(), rows::Dialect::kPostgres, job_ids);
    });
  }

  Result<std::vector<std::pair<std::string, int64_t>>> WriteHostDcgm(
      const std::vector<HostDcgm>& texts) override {
    FW_RETURN_IF_ERROR(rows::CheckHostDcgm(texts));
    if (texts.empty()) return std::vector<std::pair<std::string, int64_t>>();
    return Write([&]() -> Result<std::vector<std::pair<std::string, int64_t>>> {
      FW_ASSIGN_OR_RETURN(auto written,
                          rows::WriteHostDcgm(Preparer(), rows::Dialect::kPostgres, texts));
      std::vector<std::string> keys;
      for (const auto& [id, version] : written) keys.push_back(VersionedKey(id, version));
      FW_RETURN_IF_ERROR(Notify(kHostDcgmChannel, keys));
      return written;
    });
  }

  Result<std::vector<std::pair<std::string, int64_t>>> ListHostDcgmVersions() override {
    return Read([&] { return rows::ListHostDcgmVersions(Preparer()); });
  }

  Result<std::vector<HostDcgm>> ListHostDcgm(
      const std::vector<std::string>& instance_ids) override {
    if (instance_ids.empty()) return std::vector<HostDcgm>();
    return Read(
        [&] { return rows::ListHostDcgm(Preparer(), rows::Dialect::kPostgres, instance_ids); });
  }

  Result<std::vector<std::pair<std::string, TimeMicros>>> LatestMetricsOfUnfinishedJobs() override {
    return Read([&]() -> Result<std::vector<std::pair<std::string, TimeMicros>>> {
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare(Sql("SELECT m.job_id, MAX(m.timestamp_micro) FROM job_metrics_points m "
                               "JOIN jobs j ON j.id = m.job_id WHERE j.status NOT IN ",
                               kFinishedJobStatuses) +
                           " GROUP BY m.job_id"));
      std::vector<std::pair<std::string, TimeMicros>> out;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        out.emplace_back(q.Text(0), q.Int64(1));
      }
      return out;
    });
  }

  Result<int64_t> DeleteJobMetricsPoints(TimeMicros running_cutoff,
                                         TimeMicros finished_cutoff) override {
    return Write([&]() -> Result<int64_t> {
      int64_t deleted = 0;
      {
        FW_ASSIGN_OR_RETURN(
            Query q, Prepare(Sql("DELETE FROM job_metrics_points WHERE timestamp_micro < ? AND "
                                 "job_id IN (SELECT id FROM jobs WHERE status NOT IN ",
                                 kFinishedJobStatuses) +
                             ")"));
        q.Bind(running_cutoff);
        FW_RETURN_IF_ERROR(q.Exec());
        deleted += q.Changes();
      }
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare(Sql("DELETE FROM job_metrics_points WHERE timestamp_micro < ? AND "
                               "job_id IN (SELECT id FROM jobs WHERE status IN ",
                               kFinishedJobStatuses) +
                           ")"));
      q.Bind(finished_cutoff);
      FW_RETURN_IF_ERROR(q.Exec());
      deleted += q.Changes();
      return deleted;
    });
  }

  // --- usage (cost and GPU time) ---

  Result<std::vector<UnaccountedJob>> ListUnaccountedJobs() override {
    return Read([&]() -> Result<std::vector<UnaccountedJob>> {
      // The WHERE repeats the partial index's condition word for word so the planner uses it.
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare("SELECT j.id, p.name, u.name, j.gpu_indices, i.price, j.started_at, "
                           "j.finished_at, j.usage_accounted_until FROM jobs j "
                           "JOIN runs r ON r.id = j.run_id JOIN projects p ON p.id = r.project_id "
                           "JOIN users u ON u.id = r.user_id "
                           "LEFT JOIN instances i ON i.id = j.instance_id "
                           "WHERE j.started_at IS NOT NULL "
                           "AND (j.finished_at IS NULL OR j.usage_accounted_until IS NULL "
                           "OR j.usage_accounted_until < j.finished_at) ORDER BY j.id"));
      std::vector<UnaccountedJob> jobs;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        UnaccountedJob job;
        job.job_id = q.Text(0);
        job.project_name = q.Text(1);
        job.user_name = q.Text(2);
        FW_ASSIGN_OR_RETURN(std::vector<int> gpus, GpuIndicesFromJson(q.Text(3)));
        job.gpu_count = static_cast<int>(gpus.size());
        job.price = q.OptionalDouble(4);
        job.started_at = q.Int64(5);
        job.finished_at = q.OptionalInt64(6);
        job.accounted_until = q.OptionalInt64(7);
        jobs.push_back(std::move(job));
      }
      return jobs;
    });
  }

  Result<int> ChargeUsage(const std::vector<UsageCharge>& charges) override {
    if (charges.empty()) return 0;
    return Write([&]() -> Result<int> {
      int applied = 0;
      for (const UsageCharge& c : charges) {
        FW_ASSIGN_OR_RETURN(Query mark,
                            Prepare("UPDATE jobs SET usage_accounted_until = ? WHERE id = ? AND "
                                    "usage_accounted_until IS NOT DISTINCT FROM ?"));
        mark.Bind(c.new_accounted_until).Bind(c.job_id).Bind(c.accounted_until);
        FW_RETURN_IF_ERROR(WithContext(mark.Exec(), "account job '" + c.job_id + "'"));
        if (mark.Changes() == 0) continue;
        FW_ASSIGN_OR_RETURN(
            Query add,
            Prepare("INSERT INTO usage_totals (project_name, user_name, cost_dollars, "
                    "gpu_seconds) VALUES (?, ?, ?, ?) ON CONFLICT (project_name, user_name) DO "
                    "UPDATE SET cost_dollars = usage_totals.cost_dollars + excluded.cost_dollars, "
                    "gpu_seconds = usage_totals.gpu_seconds + excluded.gpu_seconds"));
        add.Bind(c.project_name).Bind(c.user_name).Bind(c.cost_dollars).Bind(c.gpu_seconds);
        FW_RETURN_IF_ERROR(WithContext(add.Exec(), "add usage of job '" + c.job_id + "'"));
        ++applied;
      }
      return applied;
    });
  }

  Result<std::vector<UsageTotal>> ListUsageTotals() override {
    return Read([&]() -> Result<std::vector<UsageTotal>> {
      FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT project_name, user_name, cost_dollars, "
                                           "gpu_seconds FROM usage_totals "
                                           "ORDER BY project_name, user_name"));
      std::vector<UsageTotal> totals;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        totals.push_back(UsageTotal{q.Text(0), q.Text(1), q.Double(2), q.Double(3)});
      }
      return totals;
    });
  }

  // --- GPU state ledger (store/gpu_ledger_rows.h) ---

  Result<std::vector<GpuLedgerEntry>> ListGpuLedger() override {
    return Read([&] { return rows::ListGpuLedger(Preparer()); });
  }

  Result<int> ChargeGpuLedger(const std::vector<GpuLedgerCharge>& charges) override {
    FW_RETURN_IF_ERROR(rows::CheckGpuCharges(charges));
    if (charges.empty()) return 0;
    return Write([&]() -> Result<int> {
      FW_ASSIGN_OR_RETURN(int applied, rows::ChargeGpuLedger(Preparer(), charges));
      if (applied > 0) FW_RETURN_IF_ERROR(Notify(kTotalsChannel, {kGpuLedgerKey}));
      return applied;
    });
  }

  Result<std::vector<GpuIdleTotal>> ListGpuIdleTotals() override {
    return Read([&] { return rows::ListGpuIdleTotals(Preparer()); });
  }

  Result<std::vector<RunGpuTime>> ListRunGpuTime(const std::vector<std::string>& run_ids) override {
    if (run_ids.empty()) return std::vector<RunGpuTime>();
    return Read([&] { return rows::ListRunGpuTime(Preparer(), run_ids); });
  }

  Result<std::vector<RunGpuTime>> ListGpuTimeSince(TimeMicros since) override {
    return Read([&] { return rows::ListGpuTimeSince(Preparer(), since); });
  }

  // --- replicas and instance leases ---

  Status RegisterReplica(const ReplicaInfo& replica) override {
    return Write([&] { return leases::Register(Preparer(), replica); });
  }

  Result<LeaseState> TakeLeases(const LeaseRequest& request) override {
    return Write([&] { return leases::Take(Preparer(), leases::Dialect::kPostgres, request); });
  }

  Status RemoveReplica(std::string_view replica_id) override {
    return Write([&] { return leases::Remove(Preparer(), replica_id); });
  }

  Result<int> CountLiveReplicas(TimeMicros now, TimeMicros lease_micros) override {
    return Read([&] { return leases::CountLive(Preparer(), now, lease_micros); });
  }

  Result<std::pair<int64_t, int64_t>> RunsChangeMark() override {
    return Read([&] { return leases::RunsMark(Preparer()); });
  }

  Result<std::vector<std::pair<std::string, InstanceLease>>> ListLeases() override {
    return Read([&] { return leases::List(Preparer()); });
  }

 private:
  // Writes the mutable fields of an instance (UpdateInstance). Requires mu_ and an open
  // transaction.
  Status UpdateInstanceRow(const model::Instance& instance) {
    FW_ASSIGN_OR_RETURN(std::string agent_token, cipher_.Encrypt(instance.agent_token));
    FW_ASSIGN_OR_RETURN(
        Query q,
        Prepare("UPDATE instances SET status = ?, resources = ?, price = ?, hostname = ?, "
                "agent_port = ?, agent_token = ?, unreachable = ?, last_seen_at = ?, "
                "agent_id = ?, tls = ?, tls_ca_cert = ?, tls_fingerprint = ? WHERE id = ?"));
    q.Bind(model::ToString(instance.status))
        .Bind(ResourcesToJson(instance.resources))
        .Bind(instance.price)
        .Bind(instance.hostname)
        .Bind(instance.agent_port)
        .Bind(agent_token)
        .Bind(instance.unreachable ? 1 : 0)
        .Bind(instance.last_seen_at)
        .Bind(instance.agent_id)
        .Bind(instance.tls ? 1 : 0)
        .Bind(instance.tls_ca_cert)
        .Bind(instance.tls_fingerprint)
        .Bind(instance.id);
    FW_RETURN_IF_ERROR(q.Exec());
    if (q.Changes() == 0) return NotFound("instance '" + instance.name + "' does not exist");
    return Status::Ok();
  }

  // Writes the mutable fields of a run and its jobs and raises its row version (UpdateRun).
  // Requires mu_ and an open transaction.
  Status UpdateRunRows(const model::Run& run) {
    {
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare("UPDATE runs SET status = ?, termination_reason = ?, "
                                  "finished_at = ?, cost = ?, row_version = row_version + 1 "
                                  "WHERE id = ?"));
      q.Bind(model::ToString(run.status))
          .Bind(OptionalText(run.termination_reason))
          .Bind(run.finished_at)
          .Bind(run.cost)
          .Bind(run.id);
      FW_RETURN_IF_ERROR(WithContext(q.Exec(), "update run '" + run.run_name + "'"));
      if (q.Changes() == 0) return NotFound("run '" + run.id + "' does not exist");
    }
    for (const model::Job& job : run.jobs) {
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare("UPDATE jobs SET status = ?, termination_reason = ?, exit_code = ?, "
                           "instance_id = ?, instance_name = ?, gpu_indices = ?, finished_at = ?, "
                           "started_at = ?, status_detail = ? WHERE id = ? AND run_id = ?"));
      q.Bind(model::ToString(job.status))
          .Bind(OptionalText(job.termination_reason))
          .Bind(job.exit_code)
          .Bind(job.instance_id)
          .Bind(job.instance_name)
          .Bind(GpuIndicesToJson(job.gpu_indices))
          .Bind(job.finished_at)
          .Bind(job.started_at)
          .Bind(job.status_detail)
          .Bind(job.id)
          .Bind(run.id);
      FW_RETURN_IF_ERROR(WithContext(q.Exec(), "update job '" + job.job_name + "'"));
      if (q.Changes() == 0) {
        return NotFound("job '" + job.id + "' of run '" + run.id + "' does not exist");
      }
    }
    return Status::Ok();
  }

 public:
  // --- run events (store/run_event_rows.h) ---

  Result<int> RecordRunEvents(const std::vector<RunEvent>& events) override {
    FW_RETURN_IF_ERROR(rows::CheckRunEvents(events));
    if (events.empty()) return 0;
    return Write([&] { return rows::RecordRunEvents(Preparer(), events); });
  }

  Result<std::vector<RunEventTotal>> ListRunEventTotals() override {
    return Read([&] { return rows::ListRunEventTotals(Preparer()); });
  }

  // --- energy and job summaries (store/job_aggregate_rows.h) ---

  Result<std::vector<bool>> UpdateJobAggregates(
      const std::vector<JobAggregateUpdate>& updates) override {
    if (updates.empty()) return std::vector<bool>();
    return Write([&]() -> Result<std::vector<bool>> {
      FW_ASSIGN_OR_RETURN(std::vector<bool> applied,
                          rows::UpdateJobAggregates(Preparer(), updates));
      if (std::find(applied.begin(), applied.end(), true) != applied.end()) {
        FW_RETURN_IF_ERROR(Notify(kTotalsChannel, {kEnergyKey}));
      }
      return applied;
    });
  }

  Result<std::vector<JobAggregate>> ListJobAggregates(
      const std::vector<std::string>& job_ids) override {
    if (job_ids.empty()) return std::vector<JobAggregate>();
    return Read(
        [&] { return rows::ListJobAggregates(Preparer(), rows::Dialect::kPostgres, job_ids); });
  }

  Result<std::vector<JobAggregate>> ListOpenJobAggregates() override {
    return Read([&] { return rows::ListOpenJobAggregates(Preparer()); });
  }

  Result<std::vector<EnergyTotal>> ListEnergyTotals() override {
    return Read([&] { return rows::ListEnergyTotals(Preparer()); });
  }

  Result<std::vector<RunEnergyTotal>> ListRunEnergy(
      const std::vector<std::string>& run_ids) override {
    if (run_ids.empty()) return std::vector<RunEnergyTotal>();
    return Read([&] { return rows::ListRunEnergy(Preparer(), rows::Dialect::kPostgres, run_ids); });
  }

  Result<std::vector<StoredJobSummary>> ListJobSummariesSince(
      TimeMicros since, const std::optional<std::string>& project_name) override {
    return Read([&] { return rows::ListJobSummariesSince(Preparer(), since, project_name); });
  }

  // --- logs of ended jobs (store/job_log_rows.h) ---

  Status PutJobLog(std::string_view job_id, JobLogReader& reader, bool replace) override {
    return Write([&] { return rows::PutJobLog(Preparer(), job_id, reader, replace); });
  }

  Result<std::optional<JobLogPart>> ReadJobLog(std::string_view job_id, int64_t offset,
                                               int64_t limit) override {
    return Read([&] { return rows::ReadJobLog(Preparer(), job_id, offset, limit); });
  }

 private:
  // Runs `fn` inside one transaction under mu_: committed when it succeeds, rolled back when it
  // fails. `write` selects SERIALIZABLE; a write that loses a serialization conflict to another
  // replica is run again from the start (fn reads everything it decides on inside the
  // transaction), a few times. A lost connection is re-established before the transaction.
  // `versions` are raised by one each, under mu_ and once however many attempts the transaction
  // takes (RunsVersion, InstancesVersion).
  template <typename Fn>
  auto InTransaction(bool write, Fn&& fn,
                     std::initializer_list<std::atomic<int64_t>*> versions = {}) -> decltype(fn()) {
    MutexLock lock(mu_);
    for (std::atomic<int64_t>* version : versions) ++*version;
    constexpr int kAttempts = 8;
    for (int attempt = 1;; ++attempt) {
      if (PQstatus(conn_.get()) != CONNECTION_OK) {
        statements_.clear();  // prepared statements die with their session
        PQreset(conn_.get());
        if (PQstatus(conn_.get()) != CONNECTION_OK) {
          return Unavailable(std::string("cannot reconnect to the database: ") +
                             PQerrorMessage(conn_.get()));
        }
      }
      PGconn* conn = conn_.get();  // read under the lock: the lambda is opaque to the analysis
      auto result = [&]() -> decltype(fn()) {
        Transaction transaction(conn);
        FW_RETURN_IF_ERROR(transaction.Begin(write));
        auto inner = fn();
        if (!inner.ok()) return inner;
        FW_RETURN_IF_ERROR(transaction.Commit());
        return inner;
      }();
      if (result.ok() || attempt == kAttempts || !IsRetryable(StatusOf(result))) return result;
    }
  }
  template <typename Fn>
  auto Write(Fn&& fn) -> decltype(fn()) {
    return InTransaction(true, std::forward<Fn>(fn));
  }
  // A write that raises `versions` (RunsVersion, InstancesVersion).
  template <typename Fn>
  auto Write(std::initializer_list<std::atomic<int64_t>*> versions, Fn&& fn) -> decltype(fn()) {
    return InTransaction(true, std::forward<Fn>(fn), versions);
  }
  template <typename Fn>
  auto Read(Fn&& fn) -> decltype(fn()) {
    return InTransaction(false, std::forward<Fn>(fn));
  }

  // A use of the prepared statement for `sql`, prepared on first use in this session and kept
  // (the server parses and plans it once). Requires mu_.
  Result<Query> Prepare(const std::string& sql) {
    // Called from the functions that InTransaction runs, which the analysis sees as lock-free:
    // checked at run time instead.
    mu_.AssertHeld();
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      std::string name = "fw" + std::to_string(statements_.size() + 1);
      FW_RETURN_IF_ERROR(PrepareStatement(conn_.get(), name, sql));
      it = statements_.emplace(sql, std::move(name)).first;
    }
    return Query::OfPrepared(conn_.get(), it->second);
  }

  // The helpers below require mu_ and an open transaction.

  // Notifies `channel` with `keys` (change_keys.h), delivered when the transaction commits.
  Status Notify(const char* channel, const std::vector<std::string>& keys) {
    for (const std::string& payload : ChangePayloads(keys)) {
      FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT pg_notify(?, ?)"));
      q.Bind(channel).Bind(payload);
      FW_RETURN_IF_ERROR(WithContext(q.Exec(), std::string("notify ") + channel));
    }
    return Status::Ok();
  }

  Status InsertUser(const model::User& user, std::string_view token_hash) {
    FW_ASSIGN_OR_RETURN(Query q, Prepare("INSERT INTO users (id, name, global_role, token_hash, "
                                         "created_at) VALUES (?, ?, ?, ?, ?)"));
    q.Bind(user.id)
        .Bind(user.name)
        .Bind(model::ToString(user.global_role))
        .Bind(token_hash)
        .Bind(user.created_at);
    return WithContext(q.Exec(), "create user '" + user.name + "'");
  }

  // FailedPrecondition (rolling the transaction back) when no undeleted global admin is left.
  Status RequireAnAdmin() {
    FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT 1 FROM users WHERE global_role = 'admin' AND "
                                         "deleted = 0 LIMIT 1"));
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return FailedPrecondition("the server must keep at least one global admin");
    return Status::Ok();
  }

  Status InsertProject(const model::Project& project) {
    FW_ASSIGN_OR_RETURN(Query q, Prepare("INSERT INTO projects (id, name, owner_id, created_at) "
                                         "VALUES (?, ?, ?, ?)"));
    q.Bind(project.id).Bind(project.name).Bind(project.owner_id).Bind(project.created_at);
    return WithContext(q.Exec(), "create project '" + project.name + "'");
  }

  Status UpsertMember(std::string_view project_id, std::string_view user_id,
                      model::ProjectRole role) {
    FW_ASSIGN_OR_RETURN(Query q, Prepare("INSERT INTO members (project_id, user_id, role) "
                                         "VALUES (?, ?, ?) ON CONFLICT (project_id, user_id) "
                                         "DO UPDATE SET role = excluded.role"));
    q.Bind(project_id).Bind(user_id).Bind(model::ToString(role));
    return WithContext(q.Exec(), "set project member");
  }

  Result<std::vector<model::Project>> ReadProjects(Query& q) {
    std::vector<model::Project> projects;
    while (true) {
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      projects.push_back(ReadProject(q));
    }
    return projects;
  }

  Status LoadJobs(model::Run& run) {
    FW_ASSIGN_OR_RETURN(Query q,
                        Prepare(Sql(kSelectJob, "WHERE run_id = ? ORDER BY job_num, replica_num")));
    q.Bind(run.id);
    while (true) {
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      FW_ASSIGN_OR_RETURN(model::Job job, ReadJob(q));
      run.jobs.push_back(std::move(job));
    }
    return Status::Ok();
  }

  // Reads every row of a kSelectRun query, then the jobs of each run. One jobs query per run is
  // cheap in-process, and keeps the statements simple for the PostgreSQL twin to mirror.
  Result<std::vector<model::Run>> ReadRuns(Query& q) {
    std::vector<model::Run> runs;
    while (true) {
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      FW_ASSIGN_OR_RETURN(model::Run run, ReadRun(q));
      runs.push_back(std::move(run));
    }
    for (model::Run& run : runs) FW_RETURN_IF_ERROR(LoadJobs(run));
    return runs;
  }

  Result<model::Run> ReadOneRun(Query& q, std::string_view what) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return NotFound("run '" + std::string(what) + "' does not exist");
    FW_ASSIGN_OR_RETURN(model::Run run, ReadRun(q));
    FW_RETURN_IF_ERROR(LoadJobs(run));
    return run;
  }

  const SecretCipher cipher_;
  Mutex mu_;
  ConnHandle conn_ FW_GUARDED_BY(mu_);
  // SQL -> name of its prepared statement in the current session.
  std::unordered_map<std::string, std::string> statements_ FW_GUARDED_BY(mu_);
  // Raised under mu_ by the writes of runs and jobs (RunsVersion) and of instances
  // (InstancesVersion). They count this object's writes only (store.h: replicas read again
  // while others are live).
  std::atomic<int64_t> runs_version_{0};
  std::atomic<int64_t> instances_version_{0};
};

}  // namespace
}  // namespace postgres

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                 const PostgresStoreOptions& options) {
  std::array<uint8_t, SecretCipher::kKeyBytes> key = options.secret_key;
  const SecretCipher cipher(key);
  OPENSSL_cleanse(key.data(), key.size());
  postgres::ConnHandle conn(PQconnectdb(url.c_str()));
  if (conn == nullptr) return Internal("cannot connect to the database: out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    // libpq's message names the host and port, never the password.
    std::string message = PQerrorMessage(conn.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Unavailable("cannot connect to the database: " + message);
  }
  // Notices ("relation already exists, skipping") are not errors: libpq would print them.
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  // Every timestamp is UTC micros in BIGINT columns; the encoding is the one text is checked in.
  FW_RETURN_IF_ERROR(postgres::ExecSimple(conn.get(), "SET client_encoding = 'UTF8'"));
  FW_RETURN_IF_ERROR(postgres::WithContext(MigratePostgresSchema(conn.get()), "migrate schema"));
  auto store = std::make_unique<postgres::PostgresStore>(std::move(conn), cipher);
  FW_RETURN_IF_ERROR(store->SealAgentTokens());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace fleetwatch::store
