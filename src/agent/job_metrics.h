#pragma once

#include <vector>

#include "agent/gpu_backend.h"
#include "agent/job_usage.h"
#include "util/clock.h"

namespace fleetwatch::agent {

// One metrics point of a running job (spec/METRICS.md "Agent metrics point"), as
// GET /api/poll?metrics=1 reports it.
struct JobMetricsPoint {
  TimeMicros timestamp_micro = 0;  // when the CPU and memory figures were read
  JobUsage usage;
  std::vector<GpuSample> gpus;  // one per GPU of the job, in the order of its gpu_indices
};

// The current sample of each GPU of `gpu_indices`, in that order. A GPU that cannot be sampled
// (unknown index, device unreadable right now) reports zeros: it never drops the others or the
// point. Thread-safe as far as `gpus` is.
std::vector<GpuSample> SampleJobGpus(const GpuBackend& gpus, const std::vector<int>& gpu_indices);

}  // namespace fleetwatch::agent
