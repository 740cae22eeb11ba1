#pragma once

#include <map>
#include <string>

#include "model/entities.h"
#include "util/clock.h"

namespace fleetwatch::server {

// USD/hour by instance id, for the instances that have a price.
using InstancePrices = std::map<std::string, double>;

// What a job has cost so far: its instance's price × the time it has been running (until it
// ended, or until `now`). Jobs never started, or on an instance without a price, cost nothing.
double JobCost(const model::Job& job, const InstancePrices& prices, TimeMicros now);

// The sum over the run's jobs. Pure function.
double RunCost(const model::Run& run, const InstancePrices& prices, TimeMicros now);

}  // namespace fleetwatch::server
