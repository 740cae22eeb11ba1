#include "server/utilization_policy.h"

#include <algorithm>
#include <unordered_set>

#include "server/status_message.h"

namespace fleetwatch::server {

std::string LowUtilizationMessage(const std::vector<int>& gpus, int min_percent,
                                  int64_t window_seconds, int64_t max_percent) {
  std::string list;
  for (int g : gpus) list += (list.empty() ? "" : ",") + std::to_string(g);
  return std::string(gpus.size() == 1 ? "GPU " : "GPUs ") + list + " stayed below " +
         std::to_string(min_percent) + " % for " + DurationWords(window_seconds) + " (max " +
         std::to_string(max_percent) + " %)";
}

UtilizationPolicyTracker::UtilizationPolicyTracker(TimeMicros max_gap) : max_gap_(max_gap) {}

std::map<std::string, std::string> UtilizationPolicyTracker::Observe(
    const std::vector<model::Run>& runs,
    const std::unordered_map<std::string, Result<model::RunConfiguration>>& configs,
    const std::map<std::string, InstanceObservation>& observations, TimeMicros now) {
  std::map<std::string, std::string> terminate;
  // Most ticks are status polls without readings: nothing to decide (jobs that ended meanwhile
  // are forgotten at the next tick with readings).
  if (std::none_of(observations.begin(), observations.end(),
                   [](const auto& o) { return o.second.reached && o.second.poll.gpus; })) {
    return terminate;
  }
  std::unordered_set<std::string_view> watched;
  for (const model::Run& run : runs) {
    auto config = configs.find(run.id);
    if (config == configs.end() || !config->second.ok() || !config->second->utilization_policy) {
      continue;
    }
    const model::UtilizationPolicy& policy = *config->second->utilization_policy;
    for (const model::Job& job : run.jobs) {
      if (job.status != model::JobStatus::kRunning || !job.instance_id || job.gpu_indices.empty()) {
        continue;
      }
      watched.insert(job.id);
      auto obs = observations.find(*job.instance_id);
      // No readings this tick (no reply, or a poll without metrics): the windows wait.
      if (obs == observations.end() || !obs->second.reached || !obs->second.poll.gpus) continue;
      const std::vector<model::GpuReading>& readings = *obs->second.poll.gpus;
      std::map<int, Window>& windows = jobs_[job.id];
      for (int g : job.gpu_indices) {
        auto reading = std::find_if(readings.begin(), readings.end(),
                                    [&](const model::GpuReading& r) { return r.index == g; });
        if (reading == readings.end() || !reading->util_percent ||
            *reading->util_percent >= policy.min_gpu_utilization) {
          windows.erase(g);  // busy, or not known: the window starts again
          continue;
        }
        const int64_t util = *reading->util_percent;
        auto w = windows.find(g);
        if (w == windows.end() || now - w->second.last > max_gap_ || now < w->second.last) {
          windows[g] = Window{now, now, util};
        } else {
          w->second.last = now;
          w->second.max = std::max(w->second.max, util);
        }
      }
      // As dstack: one GPU idle for the whole window is enough (its GPUs are the job's to use).
      const TimeMicros window = policy.time_window_seconds * 1'000'000;
      std::vector<int> idle;
      int64_t max = 0;
      for (const auto& [g, w] : windows) {
        if (w.last - w.since < window) continue;
        idle.push_back(g);  // ascending: a map's order
        max = std::max(max, w.max);
      }
      if (!idle.empty()) {
        terminate[job.id] = LowUtilizationMessage(idle, policy.min_gpu_utilization,
                                                  policy.time_window_seconds, max);
      }
      if (windows.empty()) jobs_.erase(job.id);
    }
  }
  std::erase_if(jobs_, [&](const auto& entry) { return !watched.count(entry.first); });
  return terminate;
}

}  // namespace fleetwatch::server
