#include "agent/nvml_api.h"

#include <dlfcn.h>

#include <algorithm>
#include <initializer_list>
#include <limits>

namespace fleetwatch::agent::nvml {
namespace {

template <typename F>
bool Resolve(void* lib, const char* name, F& out) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) return false;
  out = reinterpret_cast<F>(sym);
  return true;
}

// The first of `names` that the library has (newer names first).
template <typename F>
void ResolveFirst(void* lib, std::initializer_list<const char*> names, F& out) {
  for (const char* name : names) {
    if (Resolve(lib, name, out)) return;
  }
  out = nullptr;
}

}  // namespace

bool ResolveCore(void* lib, NvmlCore& api) {
  return Resolve(lib, "nvmlInit_v2", api.init) && Resolve(lib, "nvmlShutdown", api.shutdown) &&
         Resolve(lib, "nvmlDeviceGetCount_v2", api.get_count) &&
         Resolve(lib, "nvmlDeviceGetHandleByIndex_v2", api.get_handle) &&
         Resolve(lib, "nvmlDeviceGetName", api.get_name) &&
         Resolve(lib, "nvmlDeviceGetUUID", api.get_uuid) &&
         Resolve(lib, "nvmlDeviceGetMemoryInfo", api.get_memory) &&
         Resolve(lib, "nvmlDeviceGetUtilizationRates", api.get_utilization);
}

NvmlOptional ResolveOptional(void* lib) {
  NvmlOptional o;
  ResolveFirst(lib, {"nvmlDeviceGetPowerUsage"}, o.power);
  ResolveFirst(lib, {"nvmlDeviceGetTotalEnergyConsumption"}, o.energy);
  ResolveFirst(lib, {"nvmlDeviceGetTemperature"}, o.temperature);
  ResolveFirst(
      lib, {"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"},
      o.clock_events);
  ResolveFirst(lib, {"nvmlDeviceGetTotalEccErrors"}, o.ecc);
  ResolveFirst(lib, {"nvmlDeviceGetRemappedRows"}, o.remapped_rows);
  ResolveFirst(lib, {"nvmlDeviceGetRetiredPages"}, o.retired_pages);
  ResolveFirst(lib, {"nvmlDeviceGetRetiredPagesPendingStatus"}, o.retired_pending);
  ResolveFirst(lib, {"nvmlDeviceGetNvLinkState"}, o.nvlink_state);
  ResolveFirst(lib, {"nvmlDeviceGetNvLinkErrorCounter"}, o.nvlink_errors);
  ResolveFirst(
      lib, {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"},
      o.processes);
  if (o.processes == nullptr) {
    ResolveFirst(lib, {"nvmlDeviceGetComputeRunningProcesses"}, o.processes_v1);
  }
  ResolveFirst(lib, {"nvmlEventSetCreate"}, o.event_set_create);
  ResolveFirst(lib, {"nvmlEventSetFree"}, o.event_set_free);
  ResolveFirst(lib, {"nvmlDeviceGetSupportedEventTypes"}, o.supported_events);
  ResolveFirst(lib, {"nvmlDeviceRegisterEvents"}, o.register_events);
  ResolveFirst(lib, {"nvmlEventSetWait_v2", "nvmlEventSetWait"}, o.event_wait);
  return o;
}

int64_t Clamp(unsigned long long v) {
  constexpr auto kMax = static_cast<unsigned long long>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(std::min(v, kMax));
}

}  // namespace fleetwatch::agent::nvml
