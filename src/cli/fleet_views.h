#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <string>

#include "cli/table.h"
#include "util/clock.h"

namespace fleetwatch::cli {

// The fleet table for fleets as the server returns them (docs/api.md "A fleet"): one row per
// instance with columns FLEET, INSTANCE, BACKEND, HOST, GPU, PRICE, STATUS, CREATED; a fleet
// without instances gets one row with its own status. CREATED is relative to `now`. Pure.
Table FleetsTable(const boost::json::array& fleets, TimeMicros now);

// An instance's resources.gpus as "2xA100 (80GB)" (one group per kind, ", "-separated); "-" when
// none are known yet. Pure.
std::string FormatInstanceGpus(const boost::json::value& instance);

}  // namespace fleetwatch::cli
