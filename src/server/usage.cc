#include "server/usage.h"

#include <algorithm>

namespace fleetwatch::server {

std::vector<store::UsageCharge> UsageChargesAt(const std::vector<store::UnaccountedJob>& jobs,
                                               TimeMicros now) {
  std::vector<store::UsageCharge> charges;
  for (const store::UnaccountedJob& job : jobs) {
    TimeMicros from = std::max(job.started_at, job.accounted_until.value_or(job.started_at));
    TimeMicros until = job.finished_at ? std::min(*job.finished_at, now) : now;
    if (until <= from && !job.finished_at) continue;  // clock at or behind what is accounted
    TimeMicros mark = job.finished_at ? std::max(*job.finished_at, from) : until;
    double seconds = static_cast<double>(std::max<TimeMicros>(0, until - from)) / 1e6;
    store::UsageCharge charge;
    charge.job_id = job.job_id;
    charge.accounted_until = job.accounted_until;
    charge.new_accounted_until = mark;
    charge.project_name = job.project_name;
    charge.user_name = job.user_name;
    charge.cost_dollars = std::max(0.0, job.price.value_or(0.0)) * seconds / 3600.0;
    charge.gpu_seconds = job.gpu_count * seconds;
    charges.push_back(std::move(charge));
  }
  return charges;
}

Status UsageAccountant::Account() {
  FW_ASSIGN_OR_RETURN(std::vector<store::UnaccountedJob> jobs, store_.ListUnaccountedJobs());
  FW_ASSIGN_OR_RETURN(int applied, store_.ChargeUsage(UsageChargesAt(jobs, clock_.Now())));
  (void)applied;
  return Status::Ok();
}

}  // namespace fleetwatch::server
