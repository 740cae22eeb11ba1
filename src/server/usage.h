#pragma once

#include <vector>

#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// The charges that bring every job's running time up to `now` (a finished job: up to its end):
// price × hours and GPUs × seconds since what is already accounted. A job without a price costs
// nothing but still counts GPU time. A finished job with nothing left to charge still gets a
// (zero) charge that marks it accounted. Pure function; thread-safe.
std::vector<store::UsageCharge> UsageChargesAt(const std::vector<store::UnaccountedJob>& jobs,
                                               TimeMicros now);

// Accumulates project cost and GPU time into the store's persisted totals
// (dstack_project_cost_dollars_total, dstack_project_gpu_seconds_total). Safe with several
// server replicas: each job's time is charged once (store::Store::ChargeUsage). Not thread-safe;
// meant to run on the controller's thread.
class UsageAccountant {
 public:
  UsageAccountant(store::Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // One pass over the jobs with unaccounted time. Errors: the store's (nothing charged then).
  Status Account();

 private:
  store::Store& store_;
  const Clock& clock_;
};

}  // namespace fleetwatch::server
