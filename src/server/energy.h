#pragma once

#include <cstdint>
#include <optional>

#include <string_view>

#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// Energy drawn by one GPU, from the readings its agent reports (model/gpu_reading.h). Pure
// functions; thread-safe.

// What one reading says about energy.
struct EnergySample {
  TimeMicros at = 0;                 // when the agent took it (its clock)
  std::optional<int64_t> energy_mj;  // cumulative counter (NVML; AMD where the driver has one)
  std::optional<int64_t> power_mw;   // current draw
};

// The energy between two readings of the same GPU.
struct EnergyStep {
  double joules = 0;       // >= 0, always
  bool estimated = false;  // from power × time: the GPU has no counter
  bool reset = false;      // the counter went backwards (driver reload, agent restart)
};

// The energy drawn between `previous` (the last reading used; none: `current` is the first,
// which only sets the baseline) and `current`. With a counter in both: its increase; a counter
// lower than before was reset and has counted from zero since, so its value is what was drawn
// after `previous` (never negative, never counted twice). Without one: `current`'s power × the
// time between them, at most `max_gap` (a host that was out of reach is not charged its gap at
// the last power), marked estimated. `current` not after `previous`: nothing.
EnergyStep EnergyBetween(const std::optional<EnergySample>& previous, const EnergySample& current,
                         TimeMicros max_gap);

// Grams of CO2e for `joules` drawn from a grid at `grams_per_kwh` (1 kWh = 3.6 MJ).
double CarbonGrams(double joules, double grams_per_kwh);

// A grid carbon intensity as the operator writes it (FLEETWATCH_CARBON_INTENSITY): a decimal
// number of gCO2e per kWh, 0..10000. InvalidArgument, saying so, otherwise.
Result<double> ParseCarbonIntensity(std::string_view text);

}  // namespace fleetwatch::server
