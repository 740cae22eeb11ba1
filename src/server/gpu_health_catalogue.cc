#include "server/gpu_health_catalogue.h"

#include <algorithm>
#include <array>

namespace fleetwatch::server {
namespace {

using enum XidAction;
constexpr GpuHealthStatus kOk = GpuHealthStatus::kHealthy;
constexpr GpuHealthStatus kDeg = GpuHealthStatus::kDegraded;
constexpr GpuHealthStatus kBad = GpuHealthStatus::kUnhealthy;

// From NVIDIA's published XID catalogue (docs.nvidia.com/deploy/xid-errors): the meaning and
// the recommended action of the XIDs seen in data centres. Ascending by XID.
constexpr std::array kXids = {
    XidEntry{8, "GPU stopped processing", kRestartJob, kOk},
    XidEntry{13, "graphics engine exception (usually the application's fault)", kRestartJob, kOk},
    XidEntry{31, "GPU memory page fault (usually the application's fault)", kRestartJob, kOk},
    XidEntry{32, "invalid or corrupted push buffer stream", kRestartJob, kDeg},
    XidEntry{38, "driver firmware error", kResetGpu, kBad},
    XidEntry{43, "GPU stopped processing a channel (the application's fault)", kNone, kOk},
    XidEntry{45, "preemptive cleanup after earlier errors", kNone, kOk},
    XidEntry{48, "double-bit ECC error", kResetGpu, kBad},
    XidEntry{56, "display engine error", kRestartJob, kDeg},
    XidEntry{57, "error programming video memory interface", kResetGpu, kBad},
    XidEntry{61, "internal micro-controller breakpoint or warning", kResetGpu, kBad},
    XidEntry{62, "internal micro-controller halt", kResetGpu, kBad},
    XidEntry{63, "ECC page retirement or row remapping recorded", kResetGpu, kDeg},
    XidEntry{64, "ECC page retirement or row remapping recording failed", kResetGpu, kBad},
    XidEntry{68, "video processor exception", kRestartJob, kDeg},
    XidEntry{69, "graphics engine class error", kResetGpu, kBad},
    XidEntry{74, "NVLink error", kResetGpu, kBad},
    XidEntry{79, "GPU has fallen off the bus", kReboot, kBad},
    XidEntry{92, "high single-bit ECC error rate", kNone, kDeg},
    XidEntry{94, "contained ECC error", kRestartJob, kDeg},
    XidEntry{95, "uncontained ECC error", kResetGpu, kBad},
    XidEntry{109, "context switch timeout", kRestartJob, kDeg},
    XidEntry{110, "security fault", kResetGpu, kBad},
    XidEntry{119, "GSP RPC timeout", kResetGpu, kBad},
    XidEntry{120, "GSP error", kResetGpu, kBad},
    XidEntry{121, "C2C link corrected error", kNone, kOk},
    XidEntry{123, "SPI PMU RPC read failure", kResetGpu, kBad},
    XidEntry{140, "unrecovered ECC error", kResetGpu, kBad},
    XidEntry{143, "GPU initialization failure", kReplace, kBad},
    XidEntry{154, "GPU recovery action changed (drain and reset or reboot)", kReboot, kBad},
};

constexpr bool Ascending() {
  for (size_t k = 1; k < kXids.size(); ++k) {
    if (kXids[k - 1].xid >= kXids[k].xid) return false;
  }
  return true;
}
static_assert(Ascending(), "the XID catalogue is ascending by XID, each once");

constexpr HealthThresholds kThresholds{};

}  // namespace

std::string_view ToString(GpuHealthStatus s) {
  switch (s) {
    case GpuHealthStatus::kHealthy:
      return "healthy";
    case GpuHealthStatus::kDegraded:
      return "degraded";
    case GpuHealthStatus::kUnhealthy:
      return "unhealthy";
  }
  return "unhealthy";
}

std::string_view ToString(XidAction a) {
  switch (a) {
    case kNone:
      return "none";
    case kRestartJob:
      return "restart_job";
    case kResetGpu:
      return "reset_gpu";
    case kReboot:
      return "reboot";
    case kReplace:
      return "replace";
  }
  return "none";
}

std::span<const XidEntry> XidCatalogue() { return kXids; }

XidEntry LookUpXid(int64_t xid) {
  auto it = std::lower_bound(kXids.begin(), kXids.end(), xid,
                             [](const XidEntry& e, int64_t x) { return e.xid < x; });
  if (it != kXids.end() && it->xid == xid) return *it;
  return XidEntry{xid, "XID not in the catalogue", kNone, kDeg};
}

const HealthThresholds& DefaultHealthThresholds() { return kThresholds; }

bool IsHardwareThrottle(std::string_view reason_name) {
  return reason_name == "hw_slowdown" || reason_name == "hw_thermal_slowdown" ||
         reason_name == "hw_power_brake_slowdown";
}

}  // namespace fleetwatch::server
