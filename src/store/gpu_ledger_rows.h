#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "store/row_mapping.h"
#include "store/store.h"
#include "util/status.h"

// The GPU state ledger's statements (Store: ListGpuLedger, ChargeGpuLedger, ListGpuIdleTotals,
// ListRunGpuTime, ListGpuTimeSince), shared by the SQLite and PostgreSQL stores: the SQL is what
// both accept. Each function runs inside the caller's transaction; `prepare(sql)` returns the
// store's Result<Query> (a query type with Bind, Exec, Step, Changes and the row readers of
// row_mapping.h). Errors: the database's, and InvalidArgument for a malformed charge. Stateless.
namespace fleetwatch::store::rows {

inline constexpr TimeMicros kGpuBucketMicros = 3'600'000'000;  // the waste buckets are hourly

// The ledger columns of the states, in GpuLedgerEntry::state_seconds order.
inline constexpr std::array<const char*, kGpuStateCount> kGpuStateColumns = {
    "busy_seconds", "idle_held_seconds", "reserved_idle_seconds", "free_seconds",
    "unhealthy_seconds"};

// The start of the hourly bucket that holds `t`.
inline TimeMicros GpuBucketOf(TimeMicros t) {
  TimeMicros start = t - t % kGpuBucketMicros;
  if (t < 0 && t % kGpuBucketMicros != 0) start -= kGpuBucketMicros;
  return start;
}

inline Status CheckGpuCharges(const std::vector<GpuLedgerCharge>& charges) {
  for (const GpuLedgerCharge& c : charges) {
    const bool finite =
        std::isfinite(c.seconds) && (!c.holder || std::isfinite(c.holder->cost_dollars));
    if (c.state < 0 || c.state >= kGpuStateCount || !finite || c.seconds < 0 ||
        (c.holder && c.holder->cost_dollars < 0)) {
      return InvalidArgument("GPU " + std::to_string(c.gpu) + " of instance '" + c.instance_id +
                             "': a ledger charge needs a known state and non-negative seconds "
                             "and cost");
    }
  }
  return Status::Ok();
}

template <typename Prepare>
Result<std::vector<GpuLedgerEntry>> ListGpuLedger(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q,
                      prepare("SELECT instance_id, gpu, accounted_until, busy_seconds, "
                              "idle_held_seconds, reserved_idle_seconds, free_seconds, "
                              "unhealthy_seconds FROM gpu_ledger ORDER BY instance_id, gpu"));
  std::vector<GpuLedgerEntry> entries;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    GpuLedgerEntry e;
    e.instance_id = q.Text(0);
    e.gpu = q.Int(1);
    e.accounted_until = q.Int64(2);
    for (int s = 0; s < kGpuStateCount; ++s) e.state_seconds[s] = q.Double(3 + s);
    entries.push_back(std::move(e));
  }
  return entries;
}

template <typename Prepare>
Result<int> ChargeGpuLedger(Prepare&& prepare, const std::vector<GpuLedgerCharge>& charges) {
  FW_RETURN_IF_ERROR(CheckGpuCharges(charges));
  // Sums of the applied charges: one statement per (project, user) and per (run, hour) rather
  // than per GPU.
  std::map<std::pair<std::string, std::string>, std::pair<double, double>> idle;
  std::map<std::pair<std::string, TimeMicros>, RunGpuTime> buckets;
  int applied = 0;
  for (const GpuLedgerCharge& c : charges) {
    const std::string column = kGpuStateColumns[c.state];
    const std::string what =
        "charge GPU " + std::to_string(c.gpu) + " of instance '" + c.instance_id + "'";
    if (c.accounted_until) {
      FW_ASSIGN_OR_RETURN(auto mark, prepare("UPDATE gpu_ledger SET accounted_until = ?, " +
                                             column + " = " + column +
                                             " + ? WHERE instance_id = ? AND gpu = ? AND "
                                             "accounted_until = ?"));
      mark.Bind(c.new_accounted_until)
          .Bind(c.seconds)
          .Bind(c.instance_id)
          .Bind(c.gpu)
          .Bind(*c.accounted_until);
      FW_RETURN_IF_ERROR(WithContext(mark.Exec(), what));
      if (mark.Changes() == 0) continue;
    } else {
      FW_ASSIGN_OR_RETURN(auto mark, prepare("INSERT INTO gpu_ledger (instance_id, gpu, "
                                             "accounted_until, " +
                                             column +
                                             ") VALUES (?, ?, ?, ?) ON CONFLICT (instance_id, "
                                             "gpu) DO NOTHING"));
      mark.Bind(c.instance_id).Bind(c.gpu).Bind(c.new_accounted_until).Bind(c.seconds);
      FW_RETURN_IF_ERROR(WithContext(mark.Exec(), what));
      if (mark.Changes() == 0) continue;
    }
    ++applied;
    if (!c.holder) continue;
    const GpuHolder& h = *c.holder;
    if (h.idle) {
      auto& [seconds, cost] = idle[{h.project_name, h.user_name}];
      seconds += c.seconds;
      cost += h.cost_dollars;
    }
    RunGpuTime& b = buckets[{h.run_id, GpuBucketOf(c.new_accounted_until)}];
    b.run_id = h.run_id;
    b.project_name = h.project_name;
    b.user_name = h.user_name;
    b.run_name = h.run_name;
    b.held_seconds += c.seconds;
    if (h.idle) {
      b.idle_seconds += c.seconds;
      b.idle_cost_dollars += h.cost_dollars;
    }
  }
  for (const auto& [key, sums] : idle) {
    FW_ASSIGN_OR_RETURN(
        auto add,
        prepare("INSERT INTO gpu_idle_totals (project_name, user_name, idle_seconds, "
                "idle_cost_dollars) VALUES (?, ?, ?, ?) ON CONFLICT (project_name, user_name) DO "
                "UPDATE SET idle_seconds = gpu_idle_totals.idle_seconds + excluded.idle_seconds, "
                "idle_cost_dollars = gpu_idle_totals.idle_cost_dollars + "
                "excluded.idle_cost_dollars"));
    add.Bind(key.first).Bind(key.second).Bind(sums.first).Bind(sums.second);
    FW_RETURN_IF_ERROR(WithContext(add.Exec(), "add idle GPU time of project '" + key.first + "'"));
  }
  for (const auto& [key, b] : buckets) {
    FW_ASSIGN_OR_RETURN(
        auto add,
        prepare("INSERT INTO gpu_run_hours (run_id, hour, project_name, user_name, run_name, "
                "held_seconds, idle_seconds, idle_cost_dollars) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, hour) DO UPDATE SET held_seconds = "
                "gpu_run_hours.held_seconds + excluded.held_seconds, idle_seconds = "
                "gpu_run_hours.idle_seconds + excluded.idle_seconds, idle_cost_dollars = "
                "gpu_run_hours.idle_cost_dollars + excluded.idle_cost_dollars"));
    add.Bind(b.run_id)
        .Bind(key.second)
        .Bind(b.project_name)
        .Bind(b.user_name)
        .Bind(b.run_name)
        .Bind(b.held_seconds)
        .Bind(b.idle_seconds)
        .Bind(b.idle_cost_dollars);
    FW_RETURN_IF_ERROR(WithContext(add.Exec(), "add GPU time of run '" + b.run_name + "'"));
  }
  return applied;
}

template <typename Prepare>
Result<std::vector<GpuIdleTotal>> ListGpuIdleTotals(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT project_name, user_name, idle_seconds, "
                                      "idle_cost_dollars FROM gpu_idle_totals "
                                      "ORDER BY project_name, user_name"));
  std::vector<GpuIdleTotal> totals;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    totals.push_back(GpuIdleTotal{q.Text(0), q.Text(1), q.Double(2), q.Double(3)});
  }
  return totals;
}

// Reads rows of (run_id, project_name, user_name, run_name, held, idle, idle cost).
template <typename Query>
Result<std::vector<RunGpuTime>> ReadRunGpuTimes(Query& q) {
  std::vector<RunGpuTime> out;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(RunGpuTime{q.Text(0), q.Text(1), q.Text(2), q.Text(3), q.Double(4), q.Double(5),
                             q.Double(6)});
  }
  return out;
}

inline constexpr const char* kSelectRunGpuTime =
    "SELECT run_id, MIN(project_name), MIN(user_name), MIN(run_name), SUM(held_seconds), "
    "SUM(idle_seconds), SUM(idle_cost_dollars) FROM gpu_run_hours ";

template <typename Prepare>
Result<std::vector<RunGpuTime>> ListRunGpuTime(Prepare&& prepare,
                                               const std::vector<std::string>& run_ids) {
  std::vector<RunGpuTime> out;
  constexpr size_t kChunk = 500;  // bound parameters per statement
  for (size_t from = 0; from < run_ids.size(); from += kChunk) {
    const size_t n = std::min(kChunk, run_ids.size() - from);
    FW_ASSIGN_OR_RETURN(auto q, prepare(std::string(kSelectRunGpuTime) + "WHERE run_id IN (" +
                                        Placeholders(n) + ") GROUP BY run_id"));
    for (size_t i = 0; i < n; ++i) q.Bind(run_ids[from + i]);
    FW_ASSIGN_OR_RETURN(std::vector<RunGpuTime> chunk, ReadRunGpuTimes(q));
    for (RunGpuTime& r : chunk) out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const RunGpuTime& a, const RunGpuTime& b) { return a.run_id < b.run_id; });
  return out;
}

template <typename Prepare>
Result<std::vector<RunGpuTime>> ListGpuTimeSince(Prepare&& prepare, TimeMicros since) {
  FW_ASSIGN_OR_RETURN(auto q,
                      prepare(std::string(kSelectRunGpuTime) + "WHERE hour >= ? GROUP BY run_id"));
  q.Bind(GpuBucketOf(since));
  FW_ASSIGN_OR_RETURN(std::vector<RunGpuTime> out, ReadRunGpuTimes(q));
  std::sort(out.begin(), out.end(), [](const RunGpuTime& a, const RunGpuTime& b) {
    return std::tie(a.project_name, a.user_name, a.run_name, a.run_id) <
           std::tie(b.project_name, b.user_name, b.run_name, b.run_id);
  });
  return out;
}

}  // namespace fleetwatch::store::rows
