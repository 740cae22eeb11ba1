#pragma once

#include <string>
#include <string_view>

#include "model/entities.h"

namespace fleetwatch::model {

// The short GPU name that dstack puts in its `dstack_gpu` label, from the name a host reports
// ("NVIDIA H100 80GB HBM3" → "H100", "Tesla T4" → "T4", "AMD Instinct MI300X" → "MI300X",
// "HL-225" → "Gaudi2"), so dashboards that filter on dstack's values find fleetwatch's series.
// `vendor` is the host's "nvidia", "amd" or "intel" (any other vendor keeps the name as is).
// Names that follow no known pattern are returned as dstack returns them. The full name stays in
// the instance API and the UI. Pure function; thread-safe; never fails.
std::string ShortGpuName(std::string_view vendor, std::string_view name);
inline std::string ShortGpuName(const Gpu& gpu) { return ShortGpuName(gpu.vendor, gpu.name); }

// Each vendor's rule, for the tests.
std::string ShortNvidiaGpuName(std::string_view name);
std::string ShortAmdGpuName(std::string_view name);
std::string ShortIntelAcceleratorName(std::string_view name);

}  // namespace fleetwatch::model
