#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "agent/gpu_backend.h"

namespace fleetwatch::agent {

// The host's GPU backend: NVIDIA when NVML (loaded from `nvml_library`) reports GPUs, else AMD
// from sysfs under `sysfs_root` (possibly with no GPUs). Never fails. The caller owns the result.
std::unique_ptr<GpuBackend> OpenHostGpuBackend(const std::string& nvml_library,
                                               const std::filesystem::path& sysfs_root);

// "nvidia" or "amd" after the first GPU's vendor; "" when there are none.
std::string HostGpuVendor(const GpuBackend& gpus);

}  // namespace fleetwatch::agent
