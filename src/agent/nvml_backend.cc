#include "agent/nvml_backend.h"

#include "agent/device_text.h"

#include <dlfcn.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace fleetwatch::agent {
namespace {

// The few NVML declarations used, written out here so that building needs no NVIDIA headers.
// Layouts follow nvml.h (stable ABI of the _v2 entry points).
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
constexpr nvmlReturn_t kNvmlSuccess = 0;
// Larger than NVML's own 96-byte buffers; the last byte stays NUL whatever the library writes.
constexpr unsigned int kTextBuffer = 256;

struct NvmlApi {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  nvmlReturn_t (*get_count)(unsigned int*);
  nvmlReturn_t (*get_handle)(unsigned int, nvmlDevice_t*);
  nvmlReturn_t (*get_name)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*get_uuid)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*get_memory)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*get_utilization)(nvmlDevice_t, nvmlUtilization_t*);
};

template <typename F>
bool Resolve(void* lib, const char* name, F& out) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) return false;
  out = reinterpret_cast<F>(sym);
  return true;
}

int64_t ClampBytes(unsigned long long v) {
  constexpr auto kMax = static_cast<unsigned long long>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(std::min(v, kMax));
}

std::string Text(const char* buffer) { return DeviceText({buffer, strnlen(buffer, kTextBuffer)}); }

class NvmlBackend final : public GpuBackend {
 public:
  // Takes ownership of `lib` (may be null: no GPUs).
  NvmlBackend(void* lib, NvmlApi api) : lib_(lib), api_(api) {
    if (lib_ != nullptr) gpus_ = Enumerate();
  }
  ~NvmlBackend() override {
    if (lib_ != nullptr) {
      api_.shutdown();
      dlclose(lib_);
    }
  }

  std::vector<model::Gpu> ListGpus() const override { return gpus_; }

  Result<GpuSample> Sample(int index) const override {
    if (index < 0 || static_cast<size_t>(index) >= gpus_.size()) {
      return NotFound("no GPU " + std::to_string(index));
    }
    nvmlDevice_t device = nullptr;
    if (api_.get_handle(static_cast<unsigned int>(index), &device) != kNvmlSuccess) {
      return Unavailable("NVML cannot open GPU " + std::to_string(index));
    }
    nvmlUtilization_t util{};
    nvmlMemory_t memory{};
    if (api_.get_utilization(device, &util) != kNvmlSuccess ||
        api_.get_memory(device, &memory) != kNvmlSuccess) {
      return Unavailable("NVML cannot read GPU " + std::to_string(index));
    }
    return GpuSample{static_cast<int>(std::min(util.gpu, 100u)), ClampBytes(memory.used)};
  }

 private:
  std::vector<model::Gpu> Enumerate() const {
    std::vector<model::Gpu> gpus;
    unsigned int count = 0;
    if (api_.get_count(&count) != kNvmlSuccess) return gpus;
    count = std::min(count, 1024u);  // a bogus count must not make us loop for long
    for (unsigned int i = 0; i < count; ++i) {
      nvmlDevice_t device = nullptr;
      if (api_.get_handle(i, &device) != kNvmlSuccess) break;
      char name[kTextBuffer + 1] = {};
      char uuid[kTextBuffer + 1] = {};
      nvmlMemory_t memory{};
      model::Gpu gpu;
      gpu.index = static_cast<int>(i);
      gpu.vendor = "nvidia";
      if (api_.get_name(device, name, kTextBuffer) == kNvmlSuccess) gpu.name = Text(name);
      if (api_.get_uuid(device, uuid, kTextBuffer) == kNvmlSuccess) gpu.uuid = Text(uuid);
      if (api_.get_memory(device, &memory) == kNvmlSuccess)
        gpu.memory_bytes = ClampBytes(memory.total);
      gpus.push_back(std::move(gpu));
    }
    return gpus;
  }

  void* lib_;
  NvmlApi api_;
  std::vector<model::Gpu> gpus_;
};

}  // namespace

std::string DefaultNvmlLibrary() {
  const char* env = std::getenv("FLEETWATCH_NVML_LIBRARY");
  return env != nullptr && *env != '\0' ? env : "libnvidia-ml.so.1";
}

std::unique_ptr<GpuBackend> OpenNvmlBackend(const std::string& library) {
  NvmlApi api{};
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* error = dlerror();
    spdlog::info("no NVIDIA GPUs: cannot load {}: {}", library, error != nullptr ? error : "");
    return std::make_unique<NvmlBackend>(nullptr, api);
  }
  bool resolved = Resolve(lib, "nvmlInit_v2", api.init) &&
                  Resolve(lib, "nvmlShutdown", api.shutdown) &&
                  Resolve(lib, "nvmlDeviceGetCount_v2", api.get_count) &&
                  Resolve(lib, "nvmlDeviceGetHandleByIndex_v2", api.get_handle) &&
                  Resolve(lib, "nvmlDeviceGetName", api.get_name) &&
                  Resolve(lib, "nvmlDeviceGetUUID", api.get_uuid) &&
                  Resolve(lib, "nvmlDeviceGetMemoryInfo", api.get_memory) &&
                  Resolve(lib, "nvmlDeviceGetUtilizationRates", api.get_utilization);
  if (!resolved) {
    spdlog::info("no NVIDIA GPUs: {} lacks the NVML functions used", library);
    dlclose(lib);
    return std::make_unique<NvmlBackend>(nullptr, NvmlApi{});
  }
  if (nvmlReturn_t rc = api.init(); rc != kNvmlSuccess) {
    spdlog::info("no NVIDIA GPUs: nvmlInit failed with code {}", rc);
    dlclose(lib);
    return std::make_unique<NvmlBackend>(nullptr, NvmlApi{});
  }
  return std::make_unique<NvmlBackend>(lib, api);
}

}  // namespace fleetwatch::agent
