#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "expose/snapshot.h"
#include "model/entities.h"
#include "model/metrics.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// What the server's own families (spec/METRICS.md: instance, run, job, server) are rendered from.
struct ExpositionState {
  std::vector<model::Instance> instances;                       // of all projects
  std::vector<model::Run> unfinished_runs;                      // with their jobs
  std::map<std::string, model::JobMetricsPoint> newest_points;  // job id → its newest point
  std::vector<store::RunCount> run_counts;
  uint64_t agent_poll_errors = 0;  // FleetController::bad_replies()
};

struct ExpositionOptions {
  // A job's newest point older than this is stale and not exported: 3 metrics intervals.
  TimeMicros stale_after = 30'000'000;
};

// The families ExpositionUpdater registers, in registration (= render) order within sections.
struct ServerFamily {
  expose::Section section;
  const char* name;
  expose::MetricType type;
  const char* help;
};
const std::vector<ServerFamily>& ServerFamilies();

// Sample lines (text 0.0.4, which OpenMetrics shares here: no timestamps) of every family of
// ServerFamilies() as of `now`, by family name; a family without samples maps to "". Instances
// with status provisioning, idle, busy or terminating, ordered by project name and instance name;
// run counters per (project, user) that has runs; jobs with status provisioning, pulling,
// running or terminating, ordered by project name and job name, point families from the newest
// point only when it is not stale. Pure function; thread-safe.
std::map<std::string, std::string> RenderServerFamilies(const ExpositionState& state,
                                                        TimeMicros now,
                                                        const ExpositionOptions& options);

// Keeps the server's families in an ExpositionSnapshot current: Update reads the store once
// (instances, unfinished runs, each active job's newest point, run counts) and replaces the
// families whose samples changed, all at once. Scrapes never touch the store.
// Thread-safe (Update calls are serialized); meant to run after each FleetController tick.
class ExpositionUpdater {
 public:
  // Registers ServerFamilies() in `snapshot`, which must not hold families of those names yet
  // (a clash is a programming error and aborts). `store`, `clock` and `snapshot` must outlive it.
  ExpositionUpdater(store::Store& store, const Clock& clock, expose::ExpositionSnapshot& snapshot,
                    ExpositionOptions options);

  // Errors: the store's; the snapshot then keeps its previous samples.
  Status Update(uint64_t agent_poll_errors);

 private:
  Result<ExpositionState> Load(uint64_t agent_poll_errors);

  store::Store& store_;
  const Clock& clock_;
  expose::ExpositionSnapshot& snapshot_;
  ExpositionOptions options_;
  std::mutex mu_;
  std::map<std::string, expose::FamilyId> ids_;  // family name → id
  std::map<std::string, std::string> last_;      // family name → samples last set
};

}  // namespace fleetwatch::server
