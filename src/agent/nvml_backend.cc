#include "agent/nvml_backend.h"

#include "agent/device_text.h"

#include <dlfcn.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <thread>

#include "util/mutex.h"

namespace fleetwatch::agent {
namespace {

// The NVML declarations used, written out here so that building needs no NVIDIA headers.
// Layouts and values follow nvml.h (stable ABI of the versioned entry points).
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
using nvmlEventSet_t = struct nvmlEventSet_st*;
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
// nvmlProcessInfo_t of the _v2 and _v3 entry points.
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
// nvmlProcessInfo_v1_t of the unversioned entry point.
struct nvmlProcessInfoV1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlInsufficientSize = 7;
constexpr nvmlReturn_t kNvmlTimeout = 10;
constexpr unsigned long long kNvmlValueNotAvailable = ~0ULL;
constexpr unsigned long long kEventTypeXidCriticalError = 0x8;
constexpr int kTemperatureGpu = 0;
constexpr int kMemoryErrorCorrected = 0, kMemoryErrorUncorrected = 1;
constexpr int kEccCounterVolatile = 0, kEccCounterAggregate = 1;
constexpr int kRetiredMultipleSingleBit = 0, kRetiredDoubleBit = 1;
constexpr int kNvlinkDlReplay = 0, kNvlinkDlRecovery = 1, kNvlinkDlCrcFlit = 2,
              kNvlinkDlCrcData = 3;
constexpr unsigned int kNvlinkMaxLinks = 18;
// Larger than NVML's own 96-byte buffers; the last byte stays NUL whatever the library writes.
constexpr unsigned int kTextBuffer = 256;
// How long the XID thread blocks in one wait: bounds how long destruction waits for it.
constexpr unsigned int kEventWaitMillis = 500;
constexpr size_t kMaxProcesses = 4096;

// The functions without which there is no backend.
struct NvmlCore {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  nvmlReturn_t (*get_count)(unsigned int*);
  nvmlReturn_t (*get_handle)(unsigned int, nvmlDevice_t*);
  nvmlReturn_t (*get_name)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*get_uuid)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*get_memory)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*get_utilization)(nvmlDevice_t, nvmlUtilization_t*);
};

// The optional ones: each may be null (an older driver), and then its reading is absent.
struct NvmlOptional {
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*energy)(nvmlDevice_t, unsigned long long*) = nullptr;
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*clock_events)(nvmlDevice_t, unsigned long long*) = nullptr;
  nvmlReturn_t (*ecc)(nvmlDevice_t, int, int, unsigned long long*) = nullptr;
  nvmlReturn_t (*remapped_rows)(nvmlDevice_t, unsigned int*, unsigned int*, unsigned int*,
                                unsigned int*) = nullptr;
  nvmlReturn_t (*retired_pages)(nvmlDevice_t, int, unsigned int*, unsigned long long*) = nullptr;
  nvmlReturn_t (*retired_pending)(nvmlDevice_t, int*) = nullptr;
  nvmlReturn_t (*nvlink_state)(nvmlDevice_t, unsigned int, int*) = nullptr;
  nvmlReturn_t (*nvlink_errors)(nvmlDevice_t, unsigned int, int, unsigned long long*) = nullptr;
  nvmlReturn_t (*processes)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*) = nullptr;
  nvmlReturn_t (*processes_v1)(nvmlDevice_t, unsigned int*, nvmlProcessInfoV1_t*) = nullptr;
  nvmlReturn_t (*event_set_create)(nvmlEventSet_t*) = nullptr;
  nvmlReturn_t (*event_set_free)(nvmlEventSet_t) = nullptr;
  nvmlReturn_t (*supported_events)(nvmlDevice_t, unsigned long long*) = nullptr;
  nvmlReturn_t (*register_events)(nvmlDevice_t, unsigned long long, nvmlEventSet_t) = nullptr;
  nvmlReturn_t (*event_wait)(nvmlEventSet_t, nvmlEventData_t*, unsigned int) = nullptr;
};

template <typename F>
bool Resolve(void* lib, const char* name, F& out) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) return false;
  out = reinterpret_cast<F>(sym);
  return true;
}

// The first of `names` that the library has (newer names first).
template <typename F>
void ResolveOptional(void* lib, std::initializer_list<const char*> names, F& out) {
  for (const char* name : names) {
    if (Resolve(lib, name, out)) return;
  }
  out = nullptr;
}

NvmlOptional ResolveOptionals(void* lib) {
  NvmlOptional o;
  ResolveOptional(lib, {"nvmlDeviceGetPowerUsage"}, o.power);
  ResolveOptional(lib, {"nvmlDeviceGetTotalEnergyConsumption"}, o.energy);
  ResolveOptional(lib, {"nvmlDeviceGetTemperature"}, o.temperature);
  ResolveOptional(
      lib, {"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"},
      o.clock_events);
  ResolveOptional(lib, {"nvmlDeviceGetTotalEccErrors"}, o.ecc);
  ResolveOptional(lib, {"nvmlDeviceGetRemappedRows"}, o.remapped_rows);
  ResolveOptional(lib, {"nvmlDeviceGetRetiredPages"}, o.retired_pages);
  ResolveOptional(lib, {"nvmlDeviceGetRetiredPagesPendingStatus"}, o.retired_pending);
  ResolveOptional(lib, {"nvmlDeviceGetNvLinkState"}, o.nvlink_state);
  ResolveOptional(lib, {"nvmlDeviceGetNvLinkErrorCounter"}, o.nvlink_errors);
  ResolveOptional(
      lib, {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"},
      o.processes);
  if (o.processes == nullptr) {
    ResolveOptional(lib, {"nvmlDeviceGetComputeRunningProcesses"}, o.processes_v1);
  }
  ResolveOptional(lib, {"nvmlEventSetCreate"}, o.event_set_create);
  ResolveOptional(lib, {"nvmlEventSetFree"}, o.event_set_free);
  ResolveOptional(lib, {"nvmlDeviceGetSupportedEventTypes"}, o.supported_events);
  ResolveOptional(lib, {"nvmlDeviceRegisterEvents"}, o.register_events);
  ResolveOptional(lib, {"nvmlEventSetWait_v2", "nvmlEventSetWait"}, o.event_wait);
  return o;
}

int64_t Clamp(unsigned long long v) {
  constexpr auto kMax = static_cast<unsigned long long>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(std::min(v, kMax));
}

std::string Text(const char* buffer) { return DeviceText({buffer, strnlen(buffer, kTextBuffer)}); }

// A call of an optional function: its value when the function exists and succeeds, else absent
// (missing symbol, NVML_ERROR_NOT_SUPPORTED, or any other failure: "not available").
template <typename F, typename... Args>
bool Call(F fn, Args... args) {
  return fn != nullptr && fn(args...) == kNvmlSuccess;
}

// XID events of every GPU, gathered by a thread of their own from one NVML event set.
// Thread-safe.
class XidWatcher {
 public:
  // `handles[i]` is GPU i's device. Registers each GPU that supports XID events; starts the
  // thread only when at least one does. The NVML functions must stay loaded until destruction.
  XidWatcher(const NvmlOptional& api, const std::vector<nvmlDevice_t>& handles, const Clock& clock)
      : api_(api), handles_(handles), clock_(clock), watched_(handles.size(), false) {
    if (api_.event_set_create == nullptr || api_.register_events == nullptr ||
        api_.event_wait == nullptr || api_.event_set_free == nullptr) {
      return;
    }
    if (api_.event_set_create(&set_) != kNvmlSuccess) {
      set_ = nullptr;
      return;
    }
    bool any = false;
    for (size_t i = 0; i < handles_.size(); ++i) {
      unsigned long long supported = kEventTypeXidCriticalError;
      if (api_.supported_events != nullptr &&
          api_.supported_events(handles_[i], &supported) != kNvmlSuccess) {
        continue;
      }
      if ((supported & kEventTypeXidCriticalError) == 0) continue;
      if (api_.register_events(handles_[i], kEventTypeXidCriticalError, set_) != kNvmlSuccess) {
        continue;
      }
      watched_[i] = true;
      any = true;
    }
    if (!any) {
      api_.event_set_free(set_);
      set_ = nullptr;
      return;
    }
    thread_ = std::thread([this] { Run(); });
  }

  ~XidWatcher() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (set_ != nullptr) api_.event_set_free(set_);
  }

  // GPU `index`'s events so far; absent when its events are not watched.
  std::optional<model::XidEvents> Events(int index) const {
    if (index < 0 || static_cast<size_t>(index) >= watched_.size() ||
        !watched_[static_cast<size_t>(index)]) {
      return std::nullopt;
    }
    MutexLock lock(mu_);
    model::XidEvents events;
    auto it = per_gpu_.find(index);
    if (it == per_gpu_.end()) return events;
    for (const auto& [xid, count] : it->second.counts) events.counts.push_back({xid, count});
    events.last = it->second.last;
    events.last_at = it->second.last_at;
    return events;
  }

 private:
  struct PerGpu {
    std::map<int64_t, int64_t> counts;
    std::optional<int64_t> last;
    std::optional<TimeMicros> last_at;
  };

  void Run() {
    bool reported = false;
    while (!stop_.load()) {
      nvmlEventData_t data{};
      nvmlReturn_t rc = api_.event_wait(set_, &data, kEventWaitMillis);
      if (rc == kNvmlTimeout) continue;
      if (rc != kNvmlSuccess) {
        if (!reported) spdlog::warn("NVML event wait failed with code {}; retrying", rc);
        reported = true;
        // Sleep in short steps so that destruction stays prompt.
        for (int i = 0; i < 10 && !stop_.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        continue;
      }
      if ((data.eventType & kEventTypeXidCriticalError) == 0) continue;
      auto it = std::find(handles_.begin(), handles_.end(), data.device);
      if (it == handles_.end()) continue;
      int index = static_cast<int>(it - handles_.begin());
      int64_t xid = Clamp(data.eventData);
      TimeMicros now = clock_.Now();
      MutexLock lock(mu_);
      PerGpu& gpu = per_gpu_[index];
      ++gpu.counts[xid];
      gpu.last = xid;
      gpu.last_at = now;
    }
  }

  const NvmlOptional api_;
  const std::vector<nvmlDevice_t> handles_;
  const Clock& clock_;
  std::vector<bool> watched_;  // written only before the thread starts
  nvmlEventSet_t set_ = nullptr;
  std::atomic<bool> stop_{false};
  mutable Mutex mu_;
  std::map<int, PerGpu> per_gpu_ FW_GUARDED_BY(mu_);
  std::thread thread_;
};

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
    xids_ = std::make_unique<XidWatcher>(optional_, handles, clock);
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
    return std::make_unique<NvmlBackend>(nullptr, NvmlCore{}, NvmlOptional{}, clock);
  }
  if (nvmlReturn_t rc = api.init(); rc != kNvmlSuccess) {
    spdlog::info("no NVIDIA GPUs: nvmlInit failed with code {}", rc);
    dlclose(lib);
    return std::make_unique<NvmlBackend>(nullptr, NvmlCore{}, NvmlOptional{}, clock);
  }
  return std::make_unique<NvmlBackend>(lib, api, ResolveOptionals(lib), clock);
}

}  // namespace fleetwatch::agent
