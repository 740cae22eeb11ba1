#include "agent/host_gpus.h"

#include "agent/amd_sysfs_backend.h"
#include "agent/nvml_backend.h"

namespace fleetwatch::agent {

std::unique_ptr<GpuBackend> OpenHostGpuBackend(const std::string& nvml_library,
                                               const std::filesystem::path& sysfs_root) {
  std::unique_ptr<GpuBackend> nvidia = OpenNvmlBackend(nvml_library);
  if (!nvidia->ListGpus().empty()) return nvidia;
  return OpenAmdSysfsBackend(sysfs_root);
}

std::string HostGpuVendor(const GpuBackend& gpus) {
  std::vector<model::Gpu> list = gpus.ListGpus();
  return list.empty() ? std::string() : list.front().vendor;
}

}  // namespace fleetwatch::agent
