#include "model/gpu_reading.h"

#include <array>
#include <string_view>

namespace fleetwatch::model {

std::vector<std::string> ThrottleReasonNames(int64_t mask) {
  // Bit i of NVML's nvmlClocksEventReason* / nvmlClocksThrottleReason* masks.
  static constexpr std::array<std::string_view, 9> kNames = {"gpu_idle",
                                                             "applications_clocks_setting",
                                                             "sw_power_cap",
                                                             "hw_slowdown",
                                                             "sync_boost",
                                                             "sw_thermal_slowdown",
                                                             "hw_thermal_slowdown",
                                                             "hw_power_brake_slowdown",
                                                             "display_clock_setting"};
  std::vector<std::string> names;
  for (size_t bit = 0; bit < kNames.size(); ++bit) {
    if ((static_cast<uint64_t>(mask) >> bit) & 1u) names.emplace_back(kNames[bit]);
  }
  return names;
}

}  // namespace fleetwatch::model
