#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/entities.h"
#include "model/run_spec.h"
#include "server/reconciler.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// Runs' utilization policies (`utilization_policy: {min_gpu_utilization: N, time_window: D}`):
// a running job any of whose GPUs stayed below N % for the whole window is terminated
// (terminated_due_to_utilization_policy), as dstack defines it ("if any GPU has utilization
// below min_gpu_utilization during the whole time window, the run is terminated").
//
// Decided from the GPU readings as they arrive with the metrics polls (AgentPoll::gpus), one
// window per job and GPU, in memory: a GPU's window opens at its first reading below N while the
// job runs and lasts while readings keep coming below N; a reading at or above N, a poll with
// readings that lack the GPU or its utilization, or a gap between readings longer than
// `max_gap` closes it (missing readings never count as idle). A job is terminated once one of
// its GPUs has had an open window for at least the time window; the message names every GPU
// whose window is full. After a server restart the windows start again.
//
// Not thread-safe: the control loop's thread only.
class UtilizationPolicyTracker {
 public:
  // `max_gap`: the longest gap between two readings that still covers the time between them
  // (3 metrics intervals).
  explicit UtilizationPolicyTracker(TimeMicros max_gap);

  // Takes one tick's observations of the unfinished `runs` (with their parsed configurations,
  // by run id; runs missing there or failing to parse have no policy) as of `now`. Returns the
  // jobs to terminate, by job id → why, e.g. "GPUs 0,1 stayed below 10 % for 30m (max 3 %)".
  // Jobs that are not running (or whose run has no policy) are forgotten by the next tick that
  // brings readings.
  std::map<std::string, std::string> Observe(
      const std::vector<model::Run>& runs,
      const std::unordered_map<std::string, Result<model::RunConfiguration>>& configs,
      const std::map<std::string, InstanceObservation>& observations, TimeMicros now);

  // Jobs with at least one open window (for tests and diagnostics).
  size_t tracked_jobs() const { return jobs_.size(); }

 private:
  struct Window {
    TimeMicros since = 0;  // the first reading below the threshold
    TimeMicros last = 0;   // the newest one
    int64_t max = 0;       // the highest utilization seen in the window
  };
  const TimeMicros max_gap_;
  std::unordered_map<std::string, std::map<int, Window>> jobs_;  // job id → GPU index → window
};

// "GPU 0 stayed below 10 % for 30m (max 3 %)", "GPUs 0,1 stayed below ...": the message of a
// termination. `window_seconds` is written like run configurations write durations.
std::string LowUtilizationMessage(const std::vector<int>& gpus, int min_percent,
                                  int64_t window_seconds, int64_t max_percent);

}  // namespace fleetwatch::server
