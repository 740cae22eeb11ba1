#pragma once

#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "store/row_mapping.h"
#include "store/store.h"
#include "util/status.h"

// The run-event statements (Store: RecordRunEvents, ListRunEventTotals), shared by the SQLite
// and PostgreSQL stores: the SQL is what both accept. Each function runs inside the caller's
// transaction; `prepare(sql)` returns the store's Result<Query> (Bind, Exec, Step, Changes and the
// row readers of row_mapping.h). Errors: the database's, InvalidArgument for a malformed event,
// NotFound for an unknown run. Stateless.
namespace fleetwatch::store::rows {

inline Status CheckRunEvents(const std::vector<RunEvent>& events) {
  for (const RunEvent& e : events) {
    const bool known_kind = e.kind == kRunEventPending || e.kind == kRunEventProvisioned;
    if (e.run_id.empty() || e.project_name.empty() || e.run_type.empty() || !known_kind ||
        e.bucket < 0 || !std::isfinite(e.seconds) || e.seconds < 0) {
      return InvalidArgument("run event '" + e.kind + "' of run '" + e.run_id +
                             "': an event needs a run id, a project, a run type, a known kind "
                             "(pending, provisioned), a bucket >= 0 and seconds >= 0");
    }
  }
  return Status::Ok();
}

template <typename Prepare>
Result<int> RecordRunEvents(Prepare&& prepare, const std::vector<RunEvent>& events) {
  FW_RETURN_IF_ERROR(CheckRunEvents(events));
  // Summed per total: one upsert each, however many runs.
  std::map<std::tuple<std::string, std::string, std::string, int>, std::pair<int64_t, double>>
      totals;
  int counted = 0;
  for (const RunEvent& e : events) {
    const std::string what = "record event '" + e.kind + "' of run '" + e.run_id + "'";
    FW_ASSIGN_OR_RETURN(auto exists, prepare("SELECT 1 FROM runs WHERE id = ?"));
    exists.Bind(e.run_id);
    FW_ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) return NotFound("no run with id '" + e.run_id + "'");
    FW_ASSIGN_OR_RETURN(auto insert, prepare("INSERT INTO run_events (run_id, kind) VALUES (?, ?) "
                                             "ON CONFLICT (run_id, kind) DO NOTHING"));
    insert.Bind(e.run_id).Bind(e.kind);
    FW_RETURN_IF_ERROR(WithContext(insert.Exec(), what));
    if (insert.Changes() == 0) continue;  // counted before
    auto& total = totals[{e.project_name, e.run_type, e.kind, e.bucket}];
    ++total.first;
    total.second += e.seconds;
    ++counted;
  }
  for (const auto& [key, total] : totals) {
    const auto& [project, run_type, kind, bucket] = key;
    FW_ASSIGN_OR_RETURN(
        auto add,
        prepare("INSERT INTO run_event_totals (project_name, run_type, kind, bucket, count, "
                "seconds) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_name, run_type, kind, "
                "bucket) DO UPDATE SET count = run_event_totals.count + excluded.count, "
                "seconds = run_event_totals.seconds + excluded.seconds"));
    add.Bind(project).Bind(run_type).Bind(kind).Bind(bucket).Bind(total.first).Bind(total.second);
    FW_RETURN_IF_ERROR(WithContext(add.Exec(), "add run events of project '" + project + "'"));
  }
  return counted;
}

template <typename Prepare>
Result<std::vector<RunEventTotal>> ListRunEventTotals(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT project_name, run_type, kind, bucket, count, "
                                      "seconds FROM run_event_totals "
                                      "ORDER BY project_name, run_type, kind, bucket"));
  std::vector<RunEventTotal> totals;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    totals.push_back(
        RunEventTotal{q.Text(0), q.Text(1), q.Text(2), q.Int(3), q.Int64(4), q.Double(5)});
  }
  return totals;
}

}  // namespace fleetwatch::store::rows
