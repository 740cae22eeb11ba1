#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "server/auth.h"
#include "server/job_summary.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// A run's summary: each job's (job_summary.h) and the run's totals.
struct RunSummary {
  model::Run run;                // without its jobs' records
  std::vector<JobSummary> jobs;  // by job_num, replica_num
  double energy_joules = 0;
  bool energy_estimated = false;  // some of it is power × time
  double carbon_grams = 0;
  double cost_dollars = 0;  // its jobs' running time × their instances' price
};

// GET /api/project/{p}/runs/{run}/summary: an ended job's stored summary; a running job's so far,
// made from its stored aggregates; a job that never ran, its status alone. Thread-safe.
class JobSummaryService {
 public:
  // `store` and `clock` must outlive it.
  JobSummaryService(store::Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // The newest run of that name in the project. NotFound for an unknown run.
  Result<RunSummary> Get(const ProjectAccess& access, std::string_view run_name);

 private:
  store::Store& store_;
  const Clock& clock_;
};

// The API's JSON of `summary` (docs/api.md "Run summary").
std::string ToJson(const RunSummary& summary);

}  // namespace fleetwatch::server
