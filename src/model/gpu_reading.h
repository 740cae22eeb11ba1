#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/clock.h"

namespace fleetwatch::model {

// The health and power readings of one GPU, as the agent reports them in GET /api/poll?metrics=1
// (docs/agent-api.md "GPU readings") and the server parses them. Every reading is optional:
// absent means "not available" (the driver lacks the function, the GPU does not support it, or
// reading it failed), never zero. Plain data; no invariants beyond the ranges the server's
// parser enforces.

// The range of each reading (inclusive), shared by the agent, which leaves out a value outside it
// (a driver's "not available" sentinel, garbage), and the server, which rejects one.
inline constexpr int64_t kMaxGpuReadingCount = int64_t{1} << 62;  // counters, energy, XIDs
inline constexpr int64_t kMaxGpuReadingBytes = int64_t{1} << 56;
inline constexpr int64_t kMaxGpuPowerMw = 100'000'000;  // 100 kW
inline constexpr int64_t kMinGpuTemperatureC = -273;
inline constexpr int64_t kMaxGpuTemperatureC = 1000;

// ECC error counts (NVML): volatile since the last driver load, aggregate over the GPU's life.
struct EccCounts {
  std::optional<int64_t> corrected_volatile;
  std::optional<int64_t> uncorrected_volatile;
  std::optional<int64_t> corrected_aggregate;
  std::optional<int64_t> uncorrected_aggregate;

  bool operator==(const EccCounts&) const = default;
};

// Rows remapped by the memory controller (NVML, Ampere and newer).
struct RemappedRows {
  int64_t correctable = 0;    // rows remapped after correctable errors
  int64_t uncorrectable = 0;  // rows remapped after uncorrectable errors
  bool pending = false;       // a remapping waits for the GPU to be reset
  bool failure = false;       // a remapping failed: the GPU should be replaced

  bool operator==(const RemappedRows&) const = default;
};

// Pages retired by dynamic page retirement (NVML, before Ampere).
struct RetiredPages {
  std::optional<int64_t> single_bit_ecc;  // after multiple single-bit ECC errors
  std::optional<int64_t> double_bit_ecc;  // after a double-bit ECC error
  std::optional<bool> pending;            // a retirement waits for the driver to be reloaded

  bool operator==(const RetiredPages&) const = default;
};

// The error counters of one active NVLink link (NVML), cumulative.
struct NvlinkErrors {
  int link = 0;
  std::optional<int64_t> replay;
  std::optional<int64_t> recovery;
  std::optional<int64_t> crc_flit;
  std::optional<int64_t> crc_data;

  bool operator==(const NvlinkErrors&) const = default;
};

// XID critical errors (NVML events) seen since the agent started.
struct XidEvents {
  struct Count {
    int64_t xid = 0;
    int64_t count = 0;

    bool operator==(const Count&) const = default;
  };
  std::vector<Count> counts;          // ascending by xid, each xid once, counts > 0
  std::optional<int64_t> last;        // the newest event's XID
  std::optional<TimeMicros> last_at;  // when the agent received it

  bool operator==(const XidEvents&) const = default;
};

// A compute process on a GPU (NVML).
struct GpuProcess {
  int64_t pid = 0;  // in the host's pid namespace
  std::optional<int64_t> used_memory_bytes;

  bool operator==(const GpuProcess&) const = default;
};

// The RAS error counts of one block (AMD sysfs `ras/<block>_err_count`), cumulative.
struct RasErrors {
  std::string block;  // e.g. "umc", "gfx": 1..64 of [A-Za-z0-9_]
  std::optional<int64_t> correctable;
  std::optional<int64_t> uncorrectable;

  bool operator==(const RasErrors&) const = default;
};

struct GpuReading {
  int index = 0;  // the GPU's index in the host's inventory
  std::string uuid;
  std::string error;  // why the GPU could not be read at all (then nothing else is set)
  std::optional<int64_t> util_percent;       // 0..100
  std::optional<int64_t> memory_used_bytes;  // >= 0
  std::optional<int64_t> power_mw;           // current draw, milliwatts
  std::optional<int64_t> energy_mj;          // cumulative energy, millijoules
  std::optional<int64_t> temperature_c;      // GPU core, degrees Celsius
  // NVML clock-event (throttle) reasons: the bitmask as NVML reports it.
  std::optional<int64_t> throttle_reasons;
  std::optional<EccCounts> ecc;
  std::optional<RemappedRows> remapped_rows;
  std::optional<RetiredPages> retired_pages;
  std::optional<std::vector<NvlinkErrors>> nvlink;  // per active link; empty: none active
  std::optional<XidEvents> xid;                     // absent: events not available
  std::optional<std::vector<GpuProcess>> processes;
  std::optional<std::vector<RasErrors>> ras;

  bool operator==(const GpuReading&) const = default;
};

// The name of each bit of NVML's clock-event reasons that has one ("gpu_idle",
// "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "sync_boost",
// "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown",
// "display_clock_setting"), in bit order; bits without a name are skipped. Pure.
std::vector<std::string> ThrottleReasonNames(int64_t mask);

}  // namespace fleetwatch::model
