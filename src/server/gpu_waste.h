#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "server/auth.h"
#include "server/note_totals.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// What a waste report groups by (`by=`).
enum class WasteGrouping { kProject, kUser, kRun };

// "project", "user" or "run"; InvalidArgument naming the choices otherwise.
Result<WasteGrouping> ParseWasteGrouping(std::string_view text);
// A duration back from now: a positive integer followed by s, m, h, d or w ("7d", "36h"), at
// most ten years. InvalidArgument otherwise. Returns microseconds.
Result<TimeMicros> ParseWasteSince(std::string_view text);

// One line of a waste report. Names are empty where the grouping does not have them (user and
// run names for by=project, run name and id for by=user).
struct WasteRow {
  std::string project_name;
  std::string user_name;
  std::string run_name;
  std::string run_id;
  double held_seconds = 0;  // GPU time held by jobs
  double idle_seconds = 0;  // of which idle (idle_held, reserved_idle)
  double idle_cost_dollars = 0;
};

// Sums per-run GPU times into rows of `by`, in the order of the keys (project, user, run name,
// run id). Pure.
std::vector<WasteRow> GroupWaste(const std::vector<store::RunGpuTime>& runs, WasteGrouping by);

// Reads the persisted GPU ledger's hourly totals for the waste reports and the runs' idle share
// (server/gpu_ledger.h writes them), and the stored job summaries for the reports' notes.
// Thread-safe (the store is); no state of its own.
class GpuWasteService {
 public:
  // `store` and `clock` must outlive it.
  GpuWasteService(store::Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // The waste of `project` (nullopt: every project; the caller checks who may ask) in the hours
  // since `now - since` (the first one whole). Errors: the store's.
  Result<std::vector<WasteRow>> Report(const std::optional<std::string>& project, TimeMicros since,
                                       WasteGrouping by) const;
  // The right-sizing notes of the jobs of `project` (nullopt: every project) that ended since
  // `now - since`, summed per project (note_totals.h). Errors: the store's.
  Result<std::vector<ProjectNotes>> Notes(const std::optional<std::string>& project,
                                          TimeMicros since) const;
  // Run id → its GPU time ever, for the runs that have any. Errors: the store's.
  Result<std::map<std::string, store::RunGpuTime>> RunTimes(
      const std::vector<std::string>& run_ids) const;

 private:
  store::Store& store_;
  const Clock& clock_;
};

}  // namespace fleetwatch::server
