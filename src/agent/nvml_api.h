#pragma once

// The part of NVML's C API that the agent uses, written out here so that building needs no
// NVIDIA headers. Layouts and values follow nvml.h (stable ABI of the versioned entry points).
// Function pointers come from a library the caller loaded with dlopen.

#include <cstdint>

namespace fleetwatch::agent::nvml {

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

// Resolves the core functions of `lib` (a dlopen handle); false when one is missing.
bool ResolveCore(void* lib, NvmlCore& core);

// Resolves the optional functions of `lib`, preferring newer entry points; a missing one stays
// null.
NvmlOptional ResolveOptional(void* lib);

// An NVML count as int64_t (values above its range are clamped).
int64_t Clamp(unsigned long long v);

// Calls an optional function: true when it exists and succeeds; false when it is missing,
// answers NVML_ERROR_NOT_SUPPORTED or fails otherwise (its reading is then "not available").
template <typename F, typename... Args>
bool Call(F fn, Args... args) {
  return fn != nullptr && fn(args...) == kNvmlSuccess;
}

}  // namespace fleetwatch::agent::nvml
