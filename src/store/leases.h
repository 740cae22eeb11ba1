#pragma once

// Replicas and instance leases (store.h "replicas and instance leases"), written once for both
// stores: each function runs its statements inside the caller's open write transaction, through
// the store's `prepare` (SQL with ? placeholders → Result<Query> of that store's Query type, whose
// Bind/Step/Exec/Changes/Text/Int64 both stores share). The dialects differ only in the lock
// clause of the take. Errors: the store's, and those each function names.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "store/row_mapping.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/status.h"

namespace fleetwatch::store::leases {

using Dialect = rows::Dialect;

template <typename Prepare>
Status Register(Prepare&& prepare, const ReplicaInfo& replica) {
  if (replica.id.empty()) return InvalidArgument("a replica needs an id");
  FW_ASSIGN_OR_RETURN(auto q,
                      prepare("INSERT INTO replicas (id, started_at, heartbeat_at, version) "
                              "VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                              "started_at = excluded.started_at, heartbeat_at = "
                              "excluded.heartbeat_at, version = excluded.version"));
  q.Bind(replica.id).Bind(replica.started_at).Bind(replica.started_at).Bind(replica.version);
  return q.Exec();
}

template <typename Prepare>
Result<int64_t> CountOne(Prepare&& prepare, const std::string& sql,
                         const std::vector<int64_t>& ints, std::string_view text = {}) {
  FW_ASSIGN_OR_RETURN(auto q, prepare(sql));
  if (!text.empty()) q.Bind(text);
  for (int64_t v : ints) q.Bind(v);
  FW_ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? q.Int64(0) : 0;
}

template <typename Prepare>
Result<int> CountLive(Prepare&& prepare, TimeMicros now, TimeMicros lease_micros) {
  FW_ASSIGN_OR_RETURN(int64_t live,
                      CountOne(prepare, "SELECT COUNT(*) FROM replicas WHERE heartbeat_at >= ?",
                               {now - lease_micros}));
  return static_cast<int>(live);
}

// The ids of the rows a statement selects (first column).
template <typename Query>
Result<std::vector<std::string>> Ids(Query& q) {
  std::vector<std::string> ids;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ids.push_back(q.Text(0));
  }
  return ids;
}

template <typename Prepare>
Result<LeaseState> Take(Prepare&& prepare, Dialect dialect, const LeaseRequest& request) {
  if (request.owner.empty()) return InvalidArgument("a lease needs an owner");
  if (request.lease_micros <= 0) return InvalidArgument("the lease time must be positive");
  const TimeMicros now = request.now;
  const TimeMicros until = now + request.lease_micros;
  LeaseState state;
  {  // The heartbeat, re-inserting a row that a peer's clean-up or an operator removed.
    FW_ASSIGN_OR_RETURN(
        auto q, prepare("INSERT INTO replicas (id, started_at, heartbeat_at, version) VALUES "
                        "(?, ?, ?, '') ON CONFLICT (id) DO UPDATE SET heartbeat_at = "
                        "excluded.heartbeat_at"));
    q.Bind(request.owner).Bind(now).Bind(now);
    FW_RETURN_IF_ERROR(q.Exec());
  }
  {  // Renewals past half their time: a row is written every half lease, not every tick.
    FW_ASSIGN_OR_RETURN(auto q, prepare("UPDATE instances SET lock_expires_at = ? WHERE "
                                        "lock_owner = ? AND lock_expires_at > ? AND "
                                        "lock_expires_at < ?"));
    q.Bind(until).Bind(request.owner).Bind(now).Bind(now + request.lease_micros / 2);
    FW_RETURN_IF_ERROR(q.Exec());
  }
  FW_ASSIGN_OR_RETURN(int live, CountLive(prepare, now, request.lease_micros));
  state.live_replicas = std::max(live, 1);
  FW_ASSIGN_OR_RETURN(int64_t total, CountOne(prepare, "SELECT COUNT(*) FROM instances", {}));
  state.instances = static_cast<int>(total);
  FW_ASSIGN_OR_RETURN(
      int64_t held,
      CountOne(prepare,
               "SELECT COUNT(*) FROM instances WHERE lock_owner = ? AND lock_expires_at > ?", {now},
               request.owner));
  const int64_t share = (total + state.live_replicas - 1) / state.live_replicas;
  if (held > share + std::max(request.slack, 0)) {
    // Above the share and its slack (another replica started): down to the share, so that the
    // newcomer finds free instances; the slack keeps replicas from trading leases back and forth.
    std::vector<std::string> surplus;
    {
      FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT id FROM instances WHERE lock_owner = ? AND "
                                          "lock_expires_at > ? ORDER BY id DESC LIMIT ?"));
      q.Bind(request.owner).Bind(now).Bind(held - share);
      FW_ASSIGN_OR_RETURN(surplus, Ids(q));
    }
    for (const std::string& id : surplus) {
      FW_ASSIGN_OR_RETURN(auto q, prepare("UPDATE instances SET lock_owner = NULL, lock_token = "
                                          "NULL, lock_expires_at = NULL WHERE id = ? AND "
                                          "lock_owner = ?"));
      q.Bind(id).Bind(request.owner);
      FW_RETURN_IF_ERROR(q.Exec());
      state.released += q.Changes();
    }
    held -= state.released;
  }
  if (held < share) {
    std::vector<std::string> free;
    {
      const std::string sql =
          std::string(
              "SELECT id FROM instances WHERE lock_owner IS NULL OR lock_expires_at IS "
              "NULL OR lock_expires_at <= ? ORDER BY id LIMIT ?") +
          (dialect == Dialect::kPostgres ? " FOR NO KEY UPDATE SKIP LOCKED" : "");
      FW_ASSIGN_OR_RETURN(auto q, prepare(sql));
      q.Bind(now).Bind(share - held);
      FW_ASSIGN_OR_RETURN(free, Ids(q));
    }
    for (const std::string& id : free) {
      FW_ASSIGN_OR_RETURN(auto q, prepare("UPDATE instances SET lock_owner = ?, lock_token = ?, "
                                          "lock_expires_at = ? WHERE id = ?"));
      q.Bind(request.owner).Bind(NewId()).Bind(until).Bind(id);
      FW_RETURN_IF_ERROR(q.Exec());
      state.taken += q.Changes();
    }
  }
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT id, lock_token, lock_expires_at FROM instances WHERE "
                                      "lock_owner = ? AND lock_expires_at > ? ORDER BY id"));
  q.Bind(request.owner).Bind(now);
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    state.held.push_back(InstanceLease{q.Text(0), q.Text(1), q.Int64(2)});
  }
  return state;
}

template <typename Prepare>
Status Remove(Prepare&& prepare, std::string_view replica_id) {
  {
    FW_ASSIGN_OR_RETURN(auto q, prepare("UPDATE instances SET lock_owner = NULL, lock_token = "
                                        "NULL, lock_expires_at = NULL WHERE lock_owner = ?"));
    q.Bind(replica_id);
    FW_RETURN_IF_ERROR(q.Exec());
  }
  FW_ASSIGN_OR_RETURN(auto q, prepare("DELETE FROM replicas WHERE id = ?"));
  q.Bind(replica_id);
  return q.Exec();
}

template <typename Prepare>
Result<std::vector<std::pair<std::string, InstanceLease>>> List(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT id, lock_owner, lock_token, lock_expires_at FROM "
                                      "instances WHERE lock_owner IS NOT NULL ORDER BY id"));
  std::vector<std::pair<std::string, InstanceLease>> out;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.emplace_back(q.Text(1), InstanceLease{q.Text(0), q.Text(2), q.Int64(3)});
  }
  return out;
}

// FailedPrecondition naming the first instance whose lease token is no longer the given one;
// NotFound for an instance that is gone.
template <typename Prepare>
Status Check(Prepare&& prepare, const std::vector<std::pair<std::string, std::string>>& leases) {
  for (const auto& [instance_id, token] : leases) {
    FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT lock_token FROM instances WHERE id = ?"));
    q.Bind(instance_id);
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return NotFound("instance '" + instance_id + "' does not exist");
    if (q.IsNull(0) || q.Text(0) != token) {
      return FailedPrecondition("the lease of instance '" + instance_id +
                                "' was lost (another replica holds it, or it expired)");
    }
  }
  return Status::Ok();
}

// FailedPrecondition when the stored run's row version is not `run.row_version` (another writer
// came first); NotFound when the run is gone.
template <typename Prepare>
Status CheckRunVersion(Prepare&& prepare, const model::Run& run) {
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT row_version FROM runs WHERE id = ?"));
  q.Bind(run.id);
  FW_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound("run '" + run.id + "' does not exist");
  if (q.Int64(0) != run.row_version) {
    return FailedPrecondition("run '" + run.run_name + "' changed meanwhile (row version " +
                              std::to_string(q.Int64(0)) + ", read " +
                              std::to_string(run.row_version) + ")");
  }
  return Status::Ok();
}

template <typename Prepare>
Result<std::pair<int64_t, int64_t>> RunsMark(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT COUNT(*), COALESCE(SUM(row_version), 0) FROM runs"));
  FW_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::pair<int64_t, int64_t>{0, 0};
  return std::pair<int64_t, int64_t>{q.Int64(0), q.Int64(1)};
}

}  // namespace fleetwatch::store::leases
