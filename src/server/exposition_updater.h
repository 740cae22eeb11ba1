#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "expose/snapshot.h"
#include "model/entities.h"
#include "model/metrics.h"
#include "server/fleet_controller.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// dstack_submit_to_provision_duration_seconds' upper bounds (the spec's), +Inf implied.
inline constexpr std::array<double, 17> kSubmitToProvisionBuckets = {
    15, 30, 45, 60, 90, 120, 180, 240, 300, 360, 420, 480, 540, 600, 900, 1200, 1800};

// Observations of one (project, run type): per-bucket (not cumulative) counts, +Inf last.
struct DurationHistogram {
  std::array<uint64_t, kSubmitToProvisionBuckets.size() + 1> counts{};
  double sum = 0;
  uint64_t count = 0;
  void Observe(double seconds);
};

// What the server's own families (spec/METRICS.md: instance, run, job, server) are rendered from.
struct ExpositionState {
  std::vector<model::Instance> instances;                       // of all projects
  std::vector<model::Run> unfinished_runs;                      // with their jobs
  std::map<std::string, model::JobMetricsPoint> newest_points;  // job id → its newest point
  std::vector<store::RunCount> run_counts;
  std::vector<store::UsageTotal> usage;  // persisted cost and GPU seconds per (project, user)
  // By (project name, run type text): since this server started, like dstack's.
  std::map<std::pair<std::string, std::string>, DurationHistogram> submit_to_provision;
  std::map<std::pair<std::string, std::string>, uint64_t> pending_runs;
  uint64_t agent_poll_errors = 0;      // FleetController::bad_replies()
  uint64_t dcgm_text_errors = 0;       // hosts' DCGM texts that did not parse
  uint64_t dcgm_families_dropped = 0;  // expose::DropForeignDcgmFamilies, all texts so far
};

struct ExpositionOptions {
  // A job's newest point older than this is stale and not exported: 3 metrics intervals.
  TimeMicros stale_after = 30'000'000;
  // A job's DCGM samples are exported this long after their host's exporter was scraped.
  TimeMicros dcgm_max_age = 600'000'000;
};

// What a controller tick hands the updater besides the store's state.
struct ExpositionInputs {
  uint64_t agent_poll_errors = 0;  // FleetController::bad_replies()
  std::vector<DcgmReport> dcgm;    // FleetController::TakeDcgmReports()
  RunEvents run_events;            // FleetController::TakeRunEvents()
};

// The 11 job labels' values of `job` of `run`, placed on `instance` (may be null).
expose::JobLabelValues JobLabelValuesOf(const model::Run& run, const model::Job& job,
                                        const model::Instance* instance);

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
// (instances, unfinished runs, each active job's newest point, run counts, usage totals) and
// replaces the families whose samples changed, all at once; it relabels each host's new DCGM
// text for the jobs on that host's GPUs (once per text) and drops the DCGM samples of jobs that
// ended. Scrapes never touch the store.
// Thread-safe (Update calls are serialized); meant to run after each FleetController tick.
class ExpositionUpdater {
 public:
  // Registers ServerFamilies() in `snapshot`, which must not hold families of those names yet
  // (a clash is a programming error and aborts). `store`, `clock` and `snapshot` must outlive it.
  ExpositionUpdater(store::Store& store, const Clock& clock, expose::ExpositionSnapshot& snapshot,
                    ExpositionOptions options);

  // Errors: the store's; the snapshot then keeps its previous samples and the DCGM texts of
  // `inputs` are dropped (hosts send new ones every metrics interval); events still count.
  Status Update(ExpositionInputs inputs);

 private:
  Status Load(ExpositionState& state);
  // Frees each report's raw text once it is parsed.
  void IngestDcgm(std::vector<DcgmReport>& reports, const ExpositionState& state);

  store::Store& store_;
  const Clock& clock_;
  expose::ExpositionSnapshot& snapshot_;
  ExpositionOptions options_;
  std::mutex mu_;
  std::map<std::string, expose::FamilyId> ids_;  // family name → id
  std::map<std::pair<std::string, std::string>, DurationHistogram> submit_to_provision_;
  std::map<std::pair<std::string, std::string>, uint64_t> pending_runs_;
  uint64_t dcgm_text_errors_ = 0;
  uint64_t dcgm_families_dropped_ = 0;
  std::vector<std::string_view> server_family_names_;  // constant after construction
  std::map<std::string, std::string> dcgm_keys_;       // snapshot DCGM key → job id
};

}  // namespace fleetwatch::server
