#include "agent/nvml_backend.h"

#include "agent/device_text.h"

#include <dlfcn.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "agent/nvml_api.h"
#include "agent/nvml_xid_watcher.h"

namespace fleetwatch::agent {
namespace {

using namespace nvml;  // the C API's names: nvmlDevice_t, kNvmlSuccess, NvmlCore...

// Larger than NVML's own 96-byte buffers; the last byte stays NUL whatever the library writes.
constexpr unsigned int kTextBuffer = 256;
constexpr size_t kMaxProcesses = 4096;

std::string Text(const char* buffer) { return DeviceText({buffer, strnlen(buffer, kTextBuffer)}); }

class NvmlBackend final : public GpuBackend {
 public:
  // Takes ownership of `lib` (may be null: no GPUs).
  NvmlBackend(void* lib, NvmlCore api, NvmlOptional optional, const Clock& clock)
      : lib_(lib), api_(api), optional_(optional) {
    if (lib_ == nullptr) return;
    gpus_ = Enumerate();
    std::vector<nvmlDevice_t> handles;
    for (const model::Gpu& gpu : gpus_) {
      nvmlDevice_t device = nullptr;
      api_.get_handle(static_cast<unsigned int>(gpu.index), &device);
      handles.push_back(device);
    }
    xids_ = std::make_unique<XidWatcher>(optional_, std::move(handles), clock);
  }
  ~NvmlBackend() override {
    xids_.reset();  // its thread waits on NVML: stopped before the shutdown
    if (lib_ != nullptr) {
      api_.shutdown();
      dlclose(lib_);
    }
  }

  std::vector<model::Gpu> ListGpus() const override { return gpus_; }

  Result<GpuSample> Sample(int index) const override {
    FW_ASSIGN_OR_RETURN(nvmlDevice_t device, Handle(index));
    nvmlUtilization_t util{};
    nvmlMemory_t memory{};
    if (api_.get_utilization(device, &util) != kNvmlSuccess ||
        api_.get_memory(device, &memory) != kNvmlSuccess) {
      return Unavailable("NVML cannot read GPU " + std::to_string(index));
    }
    return GpuSample{static_cast<int>(std::min(util.gpu, 100u)), Clamp(memory.used)};
  }

  Result<model::GpuReading> Read(int index) const override {
    FW_ASSIGN_OR_RETURN(nvmlDevice_t device, Handle(index));
    const NvmlOptional& o = optional_;
    model::GpuReading r;
    r.index = index;
    r.uuid = gpus_[static_cast<size_t>(index)].uuid;
    nvmlUtilization_t util{};
    if (api_.get_utilization(device, &util) == kNvmlSuccess)
      r.util_percent = std::min(util.gpu, 100u);
    nvmlMemory_t memory{};
    if (api_.get_memory(device, &memory) == kNvmlSuccess) r.memory_used_bytes = Clamp(memory.used);
    unsigned int milliwatts = 0;
    if (Call(o.power, device, &milliwatts)) r.power_mw = milliwatts;
    unsigned long long millijoules = 0;
    if (Call(o.energy, device, &millijoules)) r.energy_mj = Clamp(millijoules);
    unsigned int celsius = 0;
    if (Call(o.temperature, device, kTemperatureGpu, &celsius)) r.temperature_c = celsius;
    unsigned long long reasons = 0;
    if (Call(o.clock_events, device, &reasons)) r.throttle_reasons = Clamp(reasons);
    r.ecc = Ecc(device);
    unsigned int corrected = 0, uncorrected = 0, pending = 0, failure = 0;
    if (Call(o.remapped_rows, device, &corrected, &uncorrected, &pending, &failure)) {
      r.remapped_rows = model::RemappedRows{corrected, uncorrected, pending != 0, failure != 0};
    }
    r.retired_pages = Retired(device);
    r.nvlink = Nvlink(device);
    r.xid = xids_->Events(index);
    r.processes = Processes(device);
    return r;
  }

 private:
  Result<nvmlDevice_t> Handle(int index) const {
    if (index < 0 || static_cast<size_t>(index) >= gpus_.size()) {
      return NotFound("no GPU " + std::to_string(index));
    }
    nvmlDevice_t device = nullptr;
    if (api_.get_handle(static_cast<unsigned int>(index), &device) != kNvmlSuccess) {
      return Unavailable("NVML cannot open GPU " + std::to_string(index));
    }
    return device;
  }

  std::optional<model::EccCounts> Ecc(nvmlDevice_t device) const {
    if (optional_.ecc == nullptr) return std::nullopt;
    auto count = [&](int type, int counter) -> std::optional<int64_t> {
      unsigned long long n = 0;
      if (!Call(optional_.ecc, device, type, counter, &n)) return std::nullopt;
      return Clamp(n);
    };
    model::EccCounts ecc{count(kMemoryErrorCorrected, kEccCounterVolatile),
                         count(kMemoryErrorUncorrected, kEccCounterVolatile),
                         count(kMemoryErrorCorrected, kEccCounterAggregate),
                         count(kMemoryErrorUncorrected, kEccCounterAggregate)};
    if (ecc == model::EccCounts{}) return std::nullopt;  // ECC off or not supported
    return ecc;
  }

  std::optional<model::RetiredPages> Retired(nvmlDevice_t device) const {
    // Asked with room for no page, NVML answers the count (INSUFFICIENT_SIZE when above zero).
    auto count = [&](int cause) -> std::optional<int64_t> {
      if (optional_.retired_pages == nullptr) return std::nullopt;
      unsigned int n = 0;
      nvmlReturn_t rc = optional_.retired_pages(device, cause, &n, nullptr);
      if (rc != kNvmlSuccess && rc != kNvmlInsufficientSize) return std::nullopt;
      return n;
    };
    model::RetiredPages pages{count(kRetiredMultipleSingleBit), count(kRetiredDoubleBit),
                              std::nullopt};
    int pending = 0;
    if (Call(optional_.retired_pending, device, &pending)) pages.pending = pending != 0;
    if (pages == model::RetiredPages{}) return std::nullopt;
    return pages;
  }

  std::optional<std::vector<model::NvlinkErrors>> Nvlink(nvmlDevice_t device) const {
    if (optional_.nvlink_state == nullptr) return std::nullopt;
    bool any_link = false;
    std::vector<model::NvlinkErrors> links;
    for (unsigned int link = 0; link < kNvlinkMaxLinks; ++link) {
      int active = 0;
      if (optional_.nvlink_state(device, link, &active) != kNvmlSuccess) continue;
      any_link = true;
      if (active == 0) continue;
      auto counter = [&](int which) -> std::optional<int64_t> {
        unsigned long long n = 0;
        if (!Call(optional_.nvlink_errors, device, link, which, &n)) return std::nullopt;
        return Clamp(n);
      };
      links.push_back({static_cast<int>(link), counter(kNvlinkDlReplay), counter(kNvlinkDlRecovery),
                       counter(kNvlinkDlCrcFlit), counter(kNvlinkDlCrcData)});
    }
    if (!any_link) return std::nullopt;  // no NVLink on this GPU
    return links;
  }

  // Asks with room for 64 processes, then once more with the count NVML says it needs.
  template <typename Info, typename Fn>
  static std::optional<std::vector<model::GpuProcess>> ListProcesses(Fn fn, nvmlDevice_t device) {
    std::vector<Info> infos(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
      unsigned int count = static_cast<unsigned int>(infos.size());
      nvmlReturn_t rc = fn(device, &count, infos.data());
      if (rc == kNvmlInsufficientSize && attempt == 0) {
        infos.resize(std::min<size_t>(std::max<size_t>(count + 16, infos.size()), kMaxProcesses));
        continue;
      }
      if (rc != kNvmlSuccess) return std::nullopt;
      std::vector<model::GpuProcess> processes;
      for (unsigned int i = 0; i < std::min<size_t>(count, infos.size()); ++i) {
        model::GpuProcess process{infos[i].pid, std::nullopt};
        if (infos[i].usedGpuMemory != kNvmlValueNotAvailable) {
          process.used_memory_bytes = Clamp(infos[i].usedGpuMemory);
        }
        processes.push_back(process);
      }
      return processes;
    }
    return std::nullopt;
  }

  std::optional<std::vector<model::GpuProcess>> Processes(nvmlDevice_t device) const {
    if (optional_.processes != nullptr) {
      return ListProcesses<nvmlProcessInfo_t>(optional_.processes, device);
    }
    if (optional_.processes_v1 != nullptr) {
      return ListProcesses<nvmlProcessInfoV1_t>(optional_.processes_v1, device);
    }
    return std::nullopt;
  }

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
      if (api_.get_memory(device, &memory) == kNvmlSuccess) gpu.memory_bytes = Clamp(memory.total);
      gpus.push_back(std::move(gpu));
    }
    return gpus;
  }

  void* lib_;
  NvmlCore api_;
  NvmlOptional optional_;
  std::vector<model::Gpu> gpus_;
  std::unique_ptr<XidWatcher> xids_;
};

}  // namespace

std::string DefaultNvmlLibrary() {
  const char* env = std::getenv("FLEETWATCH_NVML_LIBRARY");
  return env != nullptr && *env != '\0' ? env : "libnvidia-ml.so.1";
}

std::unique_ptr<GpuBackend> OpenNvmlBackend(const std::string& library, const Clock& clock) {
  NvmlCore api{};
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* error = dlerror();
    spdlog::info("no NVIDIA GPUs: cannot load {}: {}", library, error != nullptr ? error : "");
    return std::make_unique<NvmlBackend>(nullptr, api, NvmlOptional{}, clock);
  }
  if (!ResolveCore(lib, api)) {
    spdlog::info("no NVIDIA GPUs: {} lacks the NVML functions used", library);
    dlclose(lib);
    return std::make_unique<NvmlBackend>(nullptr, NvmlCore{}, NvmlOptional{}, clock);
  }
  if (nvmlReturn_t rc = api.init(); rc != kNvmlSuccess) {
    spdlog::info("no NVIDIA GPUs: nvmlInit failed with code {}", rc);
    dlclose(lib);
    return std::make_unique<NvmlBackend>(nullptr, NvmlCore{}, NvmlOptional{}, clock);
  }
  return std::make_unique<NvmlBackend>(lib, api, ResolveOptional(lib), clock);
}

}  // namespace fleetwatch::agent
