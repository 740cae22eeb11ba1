#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "expose/snapshot.h"
#include "model/entities.h"
#include "model/metrics.h"
#include "model/run_spec.h"
#include "store/store.h"
#include "util/clock.h"

namespace fleetwatch::server {

// The server's own metric families (spec/METRICS.md: instance, run, job, server): their names,
// types and help, and their samples rendered from the server's state. Pure functions; thread-safe.

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
  // Instance id → its unusable poll replies since this server started (TickReport::bad_replies
  // summed); instances without any are absent and read 0.
  std::map<std::string, uint64_t> agent_poll_errors;
  uint64_t dcgm_text_errors = 0;       // hosts' DCGM texts that did not parse
  uint64_t dcgm_families_dropped = 0;  // expose::DropForeignDcgmFamilies, all texts so far
  // Run id → RunResources(run), for the runs whose configuration was parsed before (a run's
  // configuration never changes); runs missing here are parsed while rendering.
  std::map<std::string, model::ResourcesRequest> run_resources;
};

struct ExpositionOptions {
  // A job's newest point older than this is stale and not exported: 3 metrics intervals.
  TimeMicros stale_after = 30'000'000;
  // A job's DCGM samples are exported this long after their host's exporter was scraped.
  TimeMicros dcgm_max_age = 600'000'000;
  // fleetwatch_build_info's labels: what the server was built from (util/build_info.h).
  std::string version;
  std::string revision;
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

// Whether a job in this status has job samples (provisioning, pulling, running, terminating).
bool JobExported(model::JobStatus s);

// The resources `run`'s stored configuration requests; empty when it does not parse.
model::ResourcesRequest RunResources(const model::Run& run);

// The instance's GPU with this index; nullptr when it has none.
const model::Gpu* FindGpu(const model::Instance& instance, int index);

}  // namespace fleetwatch::server
