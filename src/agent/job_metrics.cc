#include "agent/job_metrics.h"

namespace fleetwatch::agent {

std::vector<GpuSample> SampleJobGpus(const GpuBackend& gpus, const std::vector<int>& gpu_indices) {
  std::vector<GpuSample> samples;
  samples.reserve(gpu_indices.size());
  for (int index : gpu_indices) {
    Result<GpuSample> sample = gpus.Sample(index);
    samples.push_back(sample.ok() ? *sample : GpuSample{});
  }
  return samples;
}

}  // namespace fleetwatch::agent
