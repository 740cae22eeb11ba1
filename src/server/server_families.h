#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
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

// The index of the bucket `seconds` falls in (per-bucket, not cumulative): the first upper bound
// >= seconds, kSubmitToProvisionBuckets.size() for +Inf. What store::RunEvent::bucket holds.
int SubmitToProvisionBucket(double seconds);

// What the server's own families (spec/METRICS.md: instance, run, job, server) are rendered from.
struct ExpositionState {
  std::vector<model::Instance> instances;                       // of all projects
  std::vector<model::Run> unfinished_runs;                      // with their jobs
  std::map<std::string, model::JobMetricsPoint> newest_points;  // job id → its newest point
  std::vector<store::RunCount> run_counts;
  std::vector<store::UsageTotal> usage;  // persisted cost and GPU seconds per (project, user)
  // Persisted counts of run events (store::RunEvent): the provisioning histogram and the pending
  // runs, per (project, run type), whichever server saw them.
  std::vector<store::RunEventTotal> run_events;
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
  // fleetwatch_replica_info's replica_id: this process' replica id (empty: the only server).
  std::string replica_id;
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
// GET /metrics: the fleet's families, the same whichever server replica renders them (fleet state
// from the database; ages and durations as time-valued samples).
const std::vector<ServerFamily>& ServerFamilies();
// GET /metrics/replica: what one server process (replica) saw itself: fleetwatch_replica_info,
// fleetwatch_agent_poll_errors_total (the instances it polled), fleetwatch_dcgm_text_errors_total
// and fleetwatch_dcgm_families_dropped_total (the DCGM texts it received), since it started.
const std::vector<ServerFamily>& ReplicaFamilies();

// Registers `families` in `snapshot`, in order, and returns their ids in the same order. The
// names are the program's constants: one that cannot be registered (already there, invalid) is
// a programming error and aborts (FW_CHECK).
std::vector<expose::FamilyId> RegisterFamilies(expose::ExpositionSnapshot& snapshot,
                                               std::span<const ServerFamily> families);

// What the replica families are rendered from: this process' own counts.
struct ReplicaState {
  std::string replica_id;  // empty: the only server (SQLite)
  // Instance id → its unusable poll replies since this server started (TickReport::bad_replies
  // summed); instances without any are absent and read 0.
  std::map<std::string, uint64_t> agent_poll_errors;
  uint64_t dcgm_text_errors = 0;       // hosts' DCGM texts that did not parse
  uint64_t dcgm_families_dropped = 0;  // expose::DropForeignDcgmFamilies, all texts so far
};

// Sample lines (text 0.0.4, which OpenMetrics shares here: no timestamps) of every family of
// ServerFamilies() as of `now` (the durations as a snapshot renders their time-valued samples at
// `now`), by family name; a family without samples maps to "". Instances
// with status provisioning, idle, busy or terminating, ordered by project name and instance name;
// run counters per (project, user) that has runs; jobs with status provisioning, pulling,
// running or terminating, ordered by project name and job name, point families from the newest
// point only when it is not stale. Pure function; thread-safe. Made of the pieces below, which
// ExpositionUpdater uses to render only what changed.
std::map<std::string, std::string> RenderServerFamilies(const ExpositionState& state,
                                                        TimeMicros now,
                                                        const ExpositionOptions& options);

// The pieces, all pure functions. Each Append* appends complete sample lines.

// Instance families. dstack_instance_duration_seconds_total, _price_ and _gpu_count for the
// instances InstanceExported (provisioning, idle, busy, terminating); dstack_instance_status,
// dstack_instance_unreachable and fleetwatch_agent_poll_errors_total for those
// InstanceStatusExported (all but terminated); both ordered by InstanceBefore.
bool InstanceExported(model::InstanceStatus s);
bool InstanceStatusExported(model::InstanceStatus s);
bool InstanceBefore(const model::Instance& a, const model::Instance& b);
// The label pairs of the instance families.
std::string InstancePairs(const model::Instance& instance);
// Its dstack_instance_duration_seconds_total sample (the family of the instance's age), valued
// when a scrape renders it: now − created_at.
expose::TimedSample InstanceDuration(std::string_view pairs, TimeMicros created_at);
// The instance families other than the duration, in ServerFamilies() order.
inline constexpr size_t kInstanceSampleFamilies = 4;
const std::array<const char*, kInstanceSampleFamilies>& InstanceSampleFamilyNames();
// Appends the instance's samples of those families to *out[k] (family k of
// InstanceSampleFamilyNames()); `pairs` is InstancePairs(instance).
void AppendInstanceSamples(const model::Instance& instance, std::string_view pairs,
                           const std::array<std::string*, kInstanceSampleFamilies>& out);
// The label pairs of fleetwatch_agent_poll_errors_total (a replica family), and its sample.
std::string PollErrorPairs(const model::Instance& instance);
void AppendPollErrors(std::string& out, std::string_view pairs, uint64_t errors);

// Job families, of the jobs JobExported, ordered by JobKey.
// The key the snapshot orders a job's fragments by (its job families' and its DCGM samples):
// project name, '\0', job name, '\0', job id, which sorts like the spec orders jobs.
std::string JobKey(const model::Run& run, const model::Job& job);
// The label pairs of the job families: JobLabelValuesOf's, rendered.
std::string JobPairs(const model::Run& run, const model::Job& job, const model::Instance* instance);
// Its dstack_job_duration_seconds_total sample, valued when a scrape renders it: now −
// submitted_at.
expose::TimedSample JobDuration(std::string_view pairs, TimeMicros submitted_at);
// The job families other than the duration, in ServerFamilies() order: price, GPU count, CPU
// count and memory total come from the job, its run and its instance, the others from its point.
inline constexpr size_t kJobSampleFamilies = 10;
const std::array<const char*, kJobSampleFamilies>& JobSampleFamilyNames();
// Appends the job's samples of those families to *out[k] (family k of JobSampleFamilyNames()).
// `instance` (may be null) is the one it is placed on, `resources` what its run requests
// (RunResources), `fresh_point` its newest point when that is not stale (else null), and `pairs`
// JobPairs(run, job, instance).
void AppendJobSamples(const model::Job& job, const model::Instance* instance,
                      const model::ResourcesRequest& resources,
                      const model::JobMetricsPoint* fresh_point, std::string_view pairs,
                      const std::array<std::string*, kJobSampleFamilies>& out);

// The run families (dstack_run_count_*, dstack_runs) from the run counts.
void RenderRunFamilies(const std::vector<store::RunCount>& run_counts,
                       std::map<std::string, std::string>& out);
// The server-section families, from `state`'s persisted counters (run_events, usage) and the
// build.
void RenderServerCounters(const ExpositionState& state, const ExpositionOptions& options,
                          std::map<std::string, std::string>& out);
// The replica families but fleetwatch_agent_poll_errors_total (whose samples follow the
// instances: AppendPollErrors), by family name.
void RenderReplicaCounters(const ReplicaState& state, const ExpositionOptions& options,
                           std::map<std::string, std::string>& out);

// Whether a job in this status has job samples (provisioning, pulling, running, terminating).
bool JobExported(model::JobStatus s);

// The resources `run`'s stored configuration requests; empty when it does not parse.
model::ResourcesRequest RunResources(const model::Run& run);

// The instance's GPU with this index; nullptr when it has none.
const model::Gpu* FindGpu(const model::Instance& instance, int index);

}  // namespace fleetwatch::server
