#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "model/gpu_reading.h"

namespace fleetwatch::server {

// What the server knows about GPU faults, in one place: the XID errors NVIDIA documents (their
// meaning and the action NVIDIA recommends) and the thresholds that turn the other readings
// (ECC, row remapping, page retirement, NVLink, throttling, AMD RAS) into a health status. The
// classification itself is in gpu_health.h. Constant data and pure functions; thread-safe.

// A GPU's health, worst last (so that the worst of several is their maximum).
enum class GpuHealthStatus { kHealthy = 0, kDegraded = 1, kUnhealthy = 2 };

// "healthy", "degraded", "unhealthy": the `status` label values of the health families.
std::string_view ToString(GpuHealthStatus s);
inline constexpr GpuHealthStatus kAllGpuHealthStatuses[] = {
    GpuHealthStatus::kHealthy, GpuHealthStatus::kDegraded, GpuHealthStatus::kUnhealthy};

// What an operator (or the server) should do after an XID, least disruptive first.
enum class XidAction {
  kNone,        // informational, or a fault of the application only
  kRestartJob,  // the job that hit it may be broken: restart it
  kResetGpu,    // the GPU needs a reset (nvidia-smi -r) before it runs work again
  kReboot,      // the host needs a reboot (the GPU fell off the bus, the driver is stuck)
  kReplace,     // the hardware is failing: drain the GPU and have it replaced
};

// "none", "restart_job", "reset_gpu", "reboot", "replace": the `action` label values.
std::string_view ToString(XidAction a);

struct XidEntry {
  int64_t xid = 0;
  const char* meaning = "";  // one line, e.g. "GPU has fallen off the bus"
  XidAction action = XidAction::kNone;
  // What seeing this XID since the agent started means for the GPU: application faults leave
  // it healthy, faults that call for a reset or worse make it unhealthy until the agent
  // restarts (after the reset or reboot its counts start again from zero).
  GpuHealthStatus health = GpuHealthStatus::kHealthy;
};

// The catalogue, ascending by XID, each once.
std::span<const XidEntry> XidCatalogue();

// The entry for `xid`; for an XID the catalogue lacks: meaning "XID not in the catalogue",
// action none, health degraded (someone should look at it).
XidEntry LookUpXid(int64_t xid);

// Thresholds for the other readings. A reading at or above a threshold (or a flag that is set)
// gives the status named; readings that are absent count as nothing.
struct HealthThresholds {
  // Uncorrectable ECC errors since the driver loaded: memory the job used may be corrupt.
  int64_t uncorrected_volatile_degraded = 1;
  // Correctable ECC errors since the driver loaded: a burst of them announces failing memory.
  int64_t corrected_volatile_degraded = 10'000;
  // Rows remapped after uncorrectable errors over the GPU's life (NVIDIA's RMA guidance: a
  // GPU that keeps remapping is failing; 8 banks' worth of spare rows are few).
  int64_t uncorrectable_remapped_rows_degraded = 8;
  // Pages retired over the GPU's life (pre-Ampere), both kinds: NVIDIA's RMA threshold is 60.
  int64_t retired_pages_unhealthy = 60;
  // Pages retired after double-bit errors.
  int64_t double_bit_retired_pages_degraded = 1;
  // NVLink errors of any one link (cumulative since the driver loaded): recoveries mean the link
  // went down; floods of CRC errors mean a bad cable, bridge or port.
  int64_t nvlink_recovery_degraded = 1;
  int64_t nvlink_crc_degraded = 1'000;
  // AMD RAS uncorrectable errors of any block: memory or logic the jobs used is corrupt and the
  // driver must reset the GPU (as NVIDIA's double-bit and uncontained ECC XIDs, 48 and 95).
  int64_t ras_uncorrectable_unhealthy = 1;
};
const HealthThresholds& DefaultHealthThresholds();

// The throttle reasons (model::ThrottleReasonNames) that mean hardware trouble (overheating,
// a power brake, an external slowdown signal) rather than a configured cap or idleness.
bool IsHardwareThrottle(std::string_view reason_name);

}  // namespace fleetwatch::server
