#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/metrics.h"
#include "server/auth.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// One series of GET /api/project/{p}/metrics/job/{run}: samples newest first.
struct MetricSeries {
  std::string name;
  std::vector<TimeMicros> timestamps;
  std::vector<int64_t> values;
};

// What a job was given, for the *_detected_num / *_total_bytes series.
struct JobAllocation {
  int cpus = 0;
  int64_t memory_total_bytes = 0;
  int gpus = 0;
  int64_t gpu_memory_total_bytes = 0;
};

// spec/METRICS.md: N points (newest first) give N−1 samples. cpu_usage_percent is
// Δcpu_usage_micro / Δtimestamp_micro × 100 rounded half to even (100 = one core busy). GPU
// series are left out when the GPU count changes inside the window. Fewer than 2 points: no
// series. Pure function.
std::vector<MetricSeries> ComputeJobMetrics(const std::vector<model::JobMetricsPoint>& newest_first,
                                            const JobAllocation& allocation);

struct JobMetricsQuery {
  std::optional<std::string> run_id;  // a particular run of that name; default the newest
  int job_num = 0;
  int replica_num = 0;
  int limit = 1;                     // samples; limit + 1 points are read
  std::optional<TimeMicros> after;   // inclusive
  std::optional<TimeMicros> before;  // exclusive
};

// Reads a job's points and computes its series. NotFound for an unknown run or job (the API
// answers 400 resource_not_exists, as dstack does). Thread-safe.
class JobMetricsService {
 public:
  explicit JobMetricsService(store::Store& store) : store_(store) {}

  Result<std::vector<MetricSeries>> Get(const ProjectAccess& access, std::string_view run_name,
                                        const JobMetricsQuery& query);

 private:
  store::Store& store_;
};

}  // namespace fleetwatch::server
