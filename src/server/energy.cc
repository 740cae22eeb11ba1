#include "server/energy.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

namespace fleetwatch::server {

EnergyStep EnergyBetween(const std::optional<EnergySample>& previous, const EnergySample& current,
                         TimeMicros max_gap) {
  EnergyStep step;
  if (!previous || current.at <= previous->at) return step;
  if (previous->energy_mj && current.energy_mj) {
    if (*current.energy_mj >= *previous->energy_mj) {
      step.joules = static_cast<double>(*current.energy_mj - *previous->energy_mj) / 1e3;
    } else {
      step.reset = true;
      step.joules = static_cast<double>(std::max<int64_t>(0, *current.energy_mj)) / 1e3;
    }
    return step;
  }
  if (current.power_mw) {
    const TimeMicros span = std::min(current.at - previous->at, max_gap);
    step.joules = static_cast<double>(std::max<int64_t>(0, *current.power_mw)) / 1e3 *
                  static_cast<double>(std::max<TimeMicros>(0, span)) / 1e6;
    step.estimated = true;
  }
  return step;
}

double CarbonGrams(double joules, double grams_per_kwh) { return joules / 3.6e6 * grams_per_kwh; }

Result<double> ParseCarbonIntensity(std::string_view text) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value, std::chars_format::fixed);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value) || value < 0 ||
      value > 10'000) {
    return InvalidArgument("must be a number of grams of CO2e per kWh from 0 to 10000 (got '" +
                           std::string(text.substr(0, 32)) + "')");
  }
  return value;
}

}  // namespace fleetwatch::server
