#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "model/status.h"
#include "store/change_keys.h"
#include "store/gpu_ledger_rows.h"
#include "store/host_dcgm_rows.h"
#include "store/job_aggregate_rows.h"
#include "store/job_log_rows.h"
#include "store/leases.h"
#include "store/row_mapping.h"
#include "store/run_event_rows.h"
#include "store/secret_cipher.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/status.h"

// The Store methods the SQLite and PostgreSQL stores share: one body each, written in the SQL both
// accept, with the few differences of dialect taken from the store (Derived::kDialect,
// Derived::kLeaseDialect). Included only by sqlite_store.cc and postgres_store.cc.
namespace fleetwatch::store::sql {

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

// How a transaction may touch the database (SqlStore's Derived::InTransaction).
enum class Access {
  kRead,
  kWrite,
  // A write that touches no run, job, project or user row (metrics points, DCGM texts, logs,
  // instances' last_seen_at), so what CountRuns keeps stays valid.
  kWriteKeepingRunCounts,
};

// The shared half of a SQL store (CRTP). Derived, a final class that befriends SqlStore, provides:
//   static constexpr rows::Dialect kDialect; static constexpr leases::Dialect kLeaseDialect;
//   template <typename Fn> auto InTransaction(Access, std::initializer_list<std::atomic<int64_t>*>
//       versions, Fn&& fn) -> decltype(fn()): runs `fn` in one transaction under the store's lock,
//       committed when it succeeds and rolled back when it fails, each of `versions` raised by one
//       (RunsVersion, InstancesVersion) once, however many attempts it takes;
//   Result<Query> Compile(const std::string& sql): the prepared statement for `sql` (requires the
//       lock: called inside InTransaction only);
//   static constexpr bool kNotifies: whether the store has readers to notify (without, no keys
//       are gathered for it);
//   Status Notify(const char* channel, const std::vector<std::string>& keys): announces changed
//       keys when the transaction commits (store.h channels; a store without notifications does
//       nothing);
//   the Store methods whose SQL differs between the dialects (CountRuns,
//   ListNewestMetricsOfUnfinishedJobs).
// Thread-safe as Derived's InTransaction is: every method is one transaction. Errors follow
// store.h and the store's own header.
template <typename Derived, typename Query>
class SqlStore : public Store {
 public:
  explicit SqlStore(const SecretCipher& cipher) : cipher_(cipher) {}

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
      if constexpr (!Derived::kNotifies) return Status::Ok();
      std::vector<std::string> keys;
      for (const model::Instance& instance : instances) keys.push_back(instance.id);
      return self().Notify(kInstancesChannel, keys);
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
      std::vector<std::string> run_keys;
      {
        // The runs whose ended jobs lose their instance (ON DELETE SET NULL) change: a
        // conditional write read before this one must not apply (UpdateRunIfCurrent).
        FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE runs SET row_version = row_version + 1 "
                                             "WHERE id IN (SELECT j.run_id FROM jobs j JOIN "
                                             "instances i ON i.id = j.instance_id WHERE "
                                             "i.fleet_id = ?) RETURNING id, row_version"));
        q.Bind(fleet_id);
        while (true) {
          FW_ASSIGN_OR_RETURN(bool row, q.Step());
          if (!row) break;
          run_keys.push_back(VersionedKey(q.Text(0), q.Int64(1)));
        }
      }
      std::vector<std::string> instance_keys;
      if constexpr (Derived::kNotifies) {
        FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT id FROM instances WHERE fleet_id = ?"));
        q.Bind(fleet_id);
        while (true) {
          FW_ASSIGN_OR_RETURN(bool row, q.Step());
          if (!row) break;
          instance_keys.push_back(q.Text(0));
        }
      }
      FW_ASSIGN_OR_RETURN(Query q, Prepare("DELETE FROM fleets WHERE id = ?"));
      q.Bind(fleet_id);
      FW_RETURN_IF_ERROR(q.Exec());
      FW_RETURN_IF_ERROR(self().Notify(kRunsChannel, run_keys));
      return self().Notify(kInstancesChannel, instance_keys);
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

  Result<std::vector<model::Instance>> ListInstancesByIds(
      const std::vector<std::string>& instance_ids) override {
    if (instance_ids.empty()) return std::vector<model::Instance>();
    const std::string ids_json = rows::JsonIds(instance_ids);
    return Read([&]() -> Result<std::vector<model::Instance>> {
      FW_ASSIGN_OR_RETURN(
          Query q,
          Prepare(Sql(kSelectInstance, "WHERE i.id IN " + rows::InJsonIds(Derived::kDialect) +
                                           " ORDER BY p.name, f.name, "
                                           "i.instance_num")));
      q.Bind(ids_json);
      std::vector<model::Instance> instances;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        FW_ASSIGN_OR_RETURN(model::Instance instance, ReadInstance(q, cipher_));
        instances.push_back(std::move(instance));
      }
      return instances;
    });
  }

  Status UpdateInstance(const model::Instance& instance) override {
    return Write({&instances_version_}, [&]() -> Status {
      FW_RETURN_IF_ERROR(UpdateInstanceRow(instance));
      return self().Notify(kInstancesChannel, {instance.id});
    });
  }

  Status UpdateInstanceIfLeased(const model::Instance& instance, std::string_view token) override {
    return Write({&instances_version_}, [&]() -> Status {
      FW_RETURN_IF_ERROR(leases::Check(Preparer(), {{instance.id, std::string(token)}}));
      FW_RETURN_IF_ERROR(UpdateInstanceRow(instance));
      return self().Notify(kInstancesChannel, {instance.id});
    });
  }

  Status SetInstancesLastSeen(
      const std::vector<std::pair<std::string, TimeMicros>>& last_seen) override {
    if (last_seen.empty()) return Status::Ok();
    return WriteKeepingRunCounts({&instances_version_}, [&]() -> Status {
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
      return self().Notify(kRunsChannel, {VersionedKey(run.id, 0)});  // a new run's row version
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

  Result<std::vector<model::Run>> ListRunsByIds(const std::vector<std::string>& run_ids) override {
    if (run_ids.empty()) return std::vector<model::Run>();
    const std::string ids_json = rows::JsonIds(run_ids);
    return Read([&]() -> Result<std::vector<model::Run>> {
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare(Sql(kSelectRun, "WHERE r.id IN " + rows::InJsonIds(Derived::kDialect) +
                                               " ORDER BY r.submitted_at, r.id")));
      q.Bind(ids_json);
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

  Result<std::vector<model::Job>> ListJobsByIds(const std::vector<std::string>& job_ids) override {
    if (job_ids.empty()) return std::vector<model::Job>();
    // One statement for any number of ids: they travel as one JSON array.
    boost::json::array ids(job_ids.begin(), job_ids.end());
    const std::string ids_json = boost::json::serialize(ids);
    return Read([&]() -> Result<std::vector<model::Job>> {
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare(Sql(kSelectJob, "WHERE id IN " + rows::InJsonIds(Derived::kDialect))));
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
    return WriteKeepingRunCounts([&]() -> Status {
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
      if constexpr (!Derived::kNotifies) return Status::Ok();
      std::map<std::string_view, TimeMicros> newest;
      for (const model::JobMetricsPoint& p : points) {
        auto [it, inserted] = newest.try_emplace(p.job_id, p.timestamp_micro);
        if (!inserted) it->second = std::max(it->second, p.timestamp_micro);
      }
      std::vector<std::string> keys;
      for (const auto& [job_id, at] : newest) keys.push_back(VersionedKey(job_id, at));
      return self().Notify(kJobPointsChannel, keys);
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

  Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfJobs(
      const std::vector<std::string>& job_ids) override {
    if (job_ids.empty()) return std::vector<model::JobMetricsPoint>();
    return Read(
        [&] { return rows::ListNewestMetricsOfJobs(Preparer(), Derived::kDialect, job_ids); });
  }

  Result<std::vector<std::pair<std::string, int64_t>>> WriteHostDcgm(
      const std::vector<HostDcgm>& texts) override {
    FW_RETURN_IF_ERROR(rows::CheckHostDcgm(texts));
    if (texts.empty()) return std::vector<std::pair<std::string, int64_t>>();
    return WriteKeepingRunCounts([&]() -> Result<std::vector<std::pair<std::string, int64_t>>> {
      FW_ASSIGN_OR_RETURN(auto written, rows::WriteHostDcgm(Preparer(), Derived::kDialect, texts));
      if constexpr (!Derived::kNotifies) return written;
      std::vector<std::string> keys;
      for (const auto& [id, version] : written) keys.push_back(VersionedKey(id, version));
      FW_RETURN_IF_ERROR(self().Notify(kHostDcgmChannel, keys));
      return written;
    });
  }

  Result<std::vector<std::pair<std::string, int64_t>>> ListHostDcgmVersions() override {
    return Read([&] { return rows::ListHostDcgmVersions(Preparer()); });
  }

  Result<std::vector<HostDcgm>> ListHostDcgm(
      const std::vector<std::string>& instance_ids) override {
    if (instance_ids.empty()) return std::vector<HostDcgm>();
    return Read([&] { return rows::ListHostDcgm(Preparer(), Derived::kDialect, instance_ids); });
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
    return WriteKeepingRunCounts([&]() -> Result<int64_t> {
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

  Result<std::vector<GpuLedgerEntry>> ListGpuLedger() override {
    return Read([&] { return rows::ListGpuLedger(Preparer()); });
  }

  Result<int> ChargeGpuLedger(const std::vector<GpuLedgerCharge>& charges) override {
    FW_RETURN_IF_ERROR(rows::CheckGpuCharges(charges));
    if (charges.empty()) return 0;
    return Write([&]() -> Result<int> {
      FW_ASSIGN_OR_RETURN(int applied, rows::ChargeGpuLedger(Preparer(), charges));
      if (applied > 0) FW_RETURN_IF_ERROR(self().Notify(kTotalsChannel, {kGpuLedgerKey}));
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

  Status RegisterReplica(const ReplicaInfo& replica) override {
    return Write([&] { return leases::Register(Preparer(), replica); });
  }

  Result<LeaseState> TakeLeases(const LeaseRequest& request) override {
    return Write([&] { return leases::Take(Preparer(), Derived::kLeaseDialect, request); });
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

  Result<int> RecordRunEvents(const std::vector<RunEvent>& events) override {
    FW_RETURN_IF_ERROR(rows::CheckRunEvents(events));
    if (events.empty()) return 0;
    return WriteKeepingRunCounts([&] { return rows::RecordRunEvents(Preparer(), events); });
  }

  Result<std::vector<RunEventTotal>> ListRunEventTotals() override {
    return Read([&] { return rows::ListRunEventTotals(Preparer()); });
  }

  Result<std::vector<bool>> UpdateJobAggregates(
      const std::vector<JobAggregateUpdate>& updates) override {
    if (updates.empty()) return std::vector<bool>();
    return Write([&]() -> Result<std::vector<bool>> {
      FW_ASSIGN_OR_RETURN(std::vector<bool> applied,
                          rows::UpdateJobAggregates(Preparer(), updates));
      if (std::find(applied.begin(), applied.end(), true) != applied.end()) {
        FW_RETURN_IF_ERROR(self().Notify(kTotalsChannel, {kEnergyKey}));
      }
      return applied;
    });
  }

  Result<std::vector<JobAggregate>> ListJobAggregates(
      const std::vector<std::string>& job_ids) override {
    if (job_ids.empty()) return std::vector<JobAggregate>();
    return Read([&] { return rows::ListJobAggregates(Preparer(), Derived::kDialect, job_ids); });
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
    return Read([&] { return rows::ListRunEnergy(Preparer(), Derived::kDialect, run_ids); });
  }

  Result<std::vector<StoredJobSummary>> ListJobSummariesSince(
      TimeMicros since, const std::optional<std::string>& project_name) override {
    return Read([&] { return rows::ListJobSummariesSince(Preparer(), since, project_name); });
  }

  // A transaction per chunk (job_log_rows.h): other store calls get the connection in between.
  Status PutJobLog(std::string_view job_id, JobLogReader& reader, bool replace) override {
    const int64_t size = reader.size();
    const std::string writer = NewId();
    FW_ASSIGN_OR_RETURN(bool begun, WriteKeepingRunCounts([&] {
                          return rows::BeginJobLog(Preparer(), job_id, size, writer, replace);
                        }));
    if (!begun) return Status::Ok();
    const std::string what = "store the log of job '" + std::string(job_id) + "'";
    for (int64_t offset = 0, seq = 0; offset < size; offset += kJobLogChunkBytes, ++seq) {
      const int64_t length = std::min(kJobLogChunkBytes, size - offset);
      // Read outside the transaction: the source may be slow.
      FW_ASSIGN_OR_RETURN(std::string data, reader.Read(offset, length));
      if (static_cast<int64_t>(data.size()) != length) {
        return Internal(what + ": the log's source gave " + std::to_string(data.size()) +
                        " bytes at offset " + std::to_string(offset) + ", not " +
                        std::to_string(length));
      }
      FW_RETURN_IF_ERROR(WriteKeepingRunCounts(
          [&] { return rows::PutJobLogChunk(Preparer(), job_id, writer, seq, data); }));
    }
    return WriteKeepingRunCounts([&] { return rows::EndJobLog(Preparer(), job_id, writer); });
  }

  Result<std::optional<JobLogPart>> ReadJobLog(std::string_view job_id, int64_t offset,
                                               int64_t limit) override {
    return Read([&] { return rows::ReadJobLog(Preparer(), job_id, offset, limit); });
  }

 protected:
  Derived& self() { return static_cast<Derived&>(*this); }

  template <typename Fn>
  auto Read(Fn&& fn) -> decltype(fn()) {
    return self().InTransaction(Access::kRead, {}, std::forward<Fn>(fn));
  }
  template <typename Fn>
  auto Write(Fn&& fn) -> decltype(fn()) {
    return self().InTransaction(Access::kWrite, {}, std::forward<Fn>(fn));
  }
  // A write that raises `versions` (RunsVersion, InstancesVersion).
  template <typename Fn>
  auto Write(std::initializer_list<std::atomic<int64_t>*> versions, Fn&& fn) -> decltype(fn()) {
    return self().InTransaction(Access::kWrite, versions, std::forward<Fn>(fn));
  }
  template <typename Fn>
  auto WriteKeepingRunCounts(Fn&& fn) -> decltype(fn()) {
    return self().InTransaction(Access::kWriteKeepingRunCounts, {}, std::forward<Fn>(fn));
  }
  template <typename Fn>
  auto WriteKeepingRunCounts(std::initializer_list<std::atomic<int64_t>*> versions, Fn&& fn)
      -> decltype(fn()) {
    return self().InTransaction(Access::kWriteKeepingRunCounts, versions, std::forward<Fn>(fn));
  }

  // A use of the prepared statement for `sql`. Requires the store's lock (inside a transaction).
  Result<Query> Prepare(const std::string& sql) { return self().Compile(sql); }
  // `Prepare` as a callable, for the statements in the shared row files (leases.h, *_rows.h).
  struct Preparing {
    SqlStore* store;
    auto operator()(const std::string& sql) const { return store->Prepare(sql); }
  };
  Preparing Preparer() { return Preparing{this}; }

  // The helpers below require the store's lock and an open transaction.

  // Encrypts the agent tokens stored in clear (by an older fleetwatch), and proves that the key
  // decrypts those already encrypted. Returns how many it encrypted now. FailedPrecondition, naming
  // `key_source` (where the key came from), when the key does not decrypt a stored token.
  Result<size_t> SealStoredAgentTokens(std::string_view key_source) {
    return Write([&]() -> Result<size_t> {
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
                "': " + std::string(key_source) + " is not the key this database was written with");
          }
        }
      }
      for (const auto& [id, token] : clear) {
        FW_ASSIGN_OR_RETURN(std::string sealed, cipher_.Encrypt(token));
        FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE instances SET agent_token = ? WHERE id = ?"));
        q.Bind(sealed).Bind(id);
        FW_RETURN_IF_ERROR(q.Exec());
      }
      return clear.size();
    });
  }

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
    FW_ASSIGN_OR_RETURN(Query q, Prepare("UPDATE runs SET deleted = 1, row_version = "
                                         "row_version + 1 WHERE id = ? RETURNING row_version"));
    q.Bind(run_id);
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return NotFound("run '" + std::string(run_id) + "' does not exist");
    return self().Notify(kRunsChannel, {VersionedKey(run_id, q.Int64(0))});
  }

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
                                  "WHERE id = ? RETURNING row_version"));
      q.Bind(model::ToString(run.status))
          .Bind(OptionalText(run.termination_reason))
          .Bind(run.finished_at)
          .Bind(run.cost)
          .Bind(run.id);
      Result<bool> row = q.Step();
      if (!row.ok()) return WithContext(row.status(), "update run '" + run.run_name + "'");
      if (!*row) return NotFound("run '" + run.id + "' does not exist");
      FW_RETURN_IF_ERROR(self().Notify(kRunsChannel, {VersionedKey(run.id, q.Int64(0))}));
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

  // Reads every row of a kSelectRun query, then the jobs of all of them in one query (a query
  // per run costs a round trip each on PostgreSQL: thousands for a replica's full read of the
  // unfinished runs).
  Result<std::vector<model::Run>> ReadRuns(Query& q) {
    std::vector<model::Run> runs;
    while (true) {
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      FW_ASSIGN_OR_RETURN(model::Run run, ReadRun(q));
      runs.push_back(std::move(run));
    }
    if (runs.empty()) return runs;
    std::unordered_map<std::string_view, model::Run*> by_id;
    std::vector<std::string> ids;
    by_id.reserve(runs.size());
    ids.reserve(runs.size());
    for (model::Run& run : runs) {
      by_id.emplace(run.id, &run);
      ids.push_back(run.id);
    }
    FW_ASSIGN_OR_RETURN(
        Query jobs,
        Prepare(Sql(kSelectJob, "WHERE run_id IN " + rows::InJsonIds(Derived::kDialect) +
                                    " ORDER BY run_id, job_num, replica_num")));
    jobs.Bind(rows::JsonIds(ids));
    while (true) {
      FW_ASSIGN_OR_RETURN(bool row, jobs.Step());
      if (!row) break;
      FW_ASSIGN_OR_RETURN(model::Job job, ReadJob(jobs));
      auto it = by_id.find(job.run_id);
      if (it != by_id.end()) it->second->jobs.push_back(std::move(job));
    }
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
  // Raised by the writes of runs and jobs (RunsVersion) and of instances (InstancesVersion), once
  // per transaction (Derived::InTransaction). They count this object's writes only (store.h:
  // replicas read again while others are live).
  std::atomic<int64_t> runs_version_{0};
  std::atomic<int64_t> instances_version_{0};
};

}  // namespace fleetwatch::store::sql
