#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "agent/gpu_backend.h"

namespace fleetwatch::agent {

// The sysfs root: $FLEETWATCH_SYSFS_ROOT when set, else "/sys".
std::string DefaultSysfsRoot();

// AMD GPUs from the amdgpu driver's sysfs files: every `<root>/class/drm/cardN` (connector
// entries such as "card0-DP-1" are skipped) whose device/vendor is 0x1002, in card-number order.
// Name from device/product_name (else "AMD GPU <device id>"), uuid from device/unique_id (else
// "amd-cardN"), memory from mem_info_vram_total; Sample() reads gpu_busy_percent and
// mem_info_vram_used. Read() adds, from the device's first hwmon directory, power
// (power1_average, else power1_input; microwatts), energy (energy1_input, microjoules) and
// temperature (temp1_input, millidegrees), and the RAS counts of every `ras/<block>_err_count`
// ("ue: N" uncorrectable, "ce: N" correctable); a missing or malformed file leaves its reading
// absent. The card list is read once here. Missing or unreadable files never fail construction.
// The caller owns the result. Thread-safe.
std::unique_ptr<GpuBackend> OpenAmdSysfsBackend(const std::filesystem::path& sysfs_root);

}  // namespace fleetwatch::agent
