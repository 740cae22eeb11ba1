#include "server/run_cost.h"

#include <algorithm>

namespace fleetwatch::server {

double JobCost(const model::Job& job, const InstancePrices& prices, TimeMicros now) {
  if (!job.instance_id || !job.started_at) return 0;
  auto price = prices.find(*job.instance_id);
  if (price == prices.end()) return 0;
  TimeMicros end = job.finished_at.value_or(now);
  TimeMicros running = std::max<TimeMicros>(0, end - *job.started_at);
  return price->second * static_cast<double>(running) / 3'600'000'000.0;
}

double RunCost(const model::Run& run, const InstancePrices& prices, TimeMicros now) {
  double cost = 0;
  for (const model::Job& job : run.jobs) cost += JobCost(job, prices, now);
  return cost;
}

}  // namespace fleetwatch::server
