#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/clock.h"

namespace fleetwatch::model {

// One measurement of one job, as the agent takes it (spec/METRICS.md "Agent metrics point").
// Counters are cumulative since the job started; the GPU vectors follow the job's gpu_indices.
struct JobMetricsPoint {
  std::string job_id;
  TimeMicros timestamp_micro = 0;
  int64_t cpu_usage_micro = 0;
  int64_t memory_usage_bytes = 0;
  int64_t memory_working_set_bytes = 0;
  std::vector<int64_t> gpus_memory_usage_bytes;
  std::vector<int64_t> gpus_util_percent;

  bool operator==(const JobMetricsPoint&) const = default;
};

}  // namespace fleetwatch::model
