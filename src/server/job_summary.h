#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/gpu_reading.h"
#include "model/metrics.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// A job's running aggregates and the summary made from them (docs/job-summaries.md). The
// aggregates are updated as the job's metrics points and its GPUs' readings arrive, never by
// reading its points back, and persisted as JSON (store::JobAggregate) so that they survive a
// server restart. Plain data and pure functions; thread-safe.

// One GPU the job holds.
struct GpuAggregate {
  int index = 0;                   // in the host's inventory
  std::string uuid;                // as last read; a new one restarts the energy baseline
  int64_t memory_total_bytes = 0;  // the GPU's size (0: unknown)
  // From the job's metrics points: one sample per point.
  int64_t samples = 0;
  int64_t util_sum = 0;      // percent, summed over the samples
  int64_t util_max = 0;      // percent
  int64_t idle_samples = 0;  // samples below kIdleUtilPercent
  // Time-weighted: each sample covers the interval since the job's previous point (at most
  // kMaxChargedGap), as busy_gpu_seconds does; the first point's covers none.
  double covered_seconds = 0;       // the time the samples cover
  double util_percent_seconds = 0;  // utilization × the time it covers
  double idle_seconds = 0;          // covered by samples below kIdleUtilPercent
  int64_t memory_peak_bytes = 0;
  // From the host's GPU readings.
  std::optional<TimeMicros> last_reading_at;  // the energy baseline's time
  std::optional<int64_t> last_energy_mj;      // the energy baseline's counter
  double energy_joules = 0;
  bool energy_estimated = false;          // some of it is power × time
  std::optional<int64_t> last_xid_total;  // the XID events the agent had counted then
  int64_t xid_events = 0;                 // seen while the job held the GPU
};

// Below this utilization a GPU sample counts as idle.
inline constexpr int64_t kIdleUtilPercent = 5;

struct JobAggregates {
  // Who the job is (so that a restarted server can finish its summary from this alone).
  std::string job_id;
  std::string run_id;
  std::string run_name;
  std::string run_type;  // "task", "service", "dev-environment"
  std::string job_name;
  int job_num = 0;
  int replica_num = 0;
  std::string project_name;
  std::string user_name;
  std::string instance_id;
  std::optional<double> price;     // USD/hour of its instance
  double carbon_intensity = 0;     // gCO2e/kWh of its fleet's grid
  int cpus = 0;                    // of its instance
  int64_t memory_limit_bytes = 0;  // its cgroup's limit, else its instance's memory (0: unknown)
  std::optional<TimeMicros> started_at;
  // From its metrics points.
  int64_t points = 0;
  std::optional<TimeMicros> last_point_at;
  int64_t last_cpu_micro = 0;
  double cpu_core_seconds = 0;  // CPU time between the points it has seen
  double cpu_span_seconds = 0;  // the time those were measured over
  double cpu_peak_cores = 0;    // the highest CPU use between two points, in cores
  int64_t memory_peak_bytes = 0;
  // Totals.
  double energy_joules = 0;
  double busy_gpu_seconds = 0;  // GPU seconds weighted by utilization
  double carbon_grams = 0;
  std::vector<GpuAggregate> gpus;  // the job's GPUs, in the order of its gpu_indices
};

// What an update adds to the job's (project, user) totals.
struct AggregateDelta {
  double energy_joules = 0;
  double busy_gpu_seconds = 0;
  double carbon_grams = 0;
  bool changed = false;  // the aggregates changed (they must be stored)
};

// Gaps longer than this between two points or two readings are not charged at the older
// figures (utilization, power): a host out of reach is not assumed busy.
inline constexpr TimeMicros kMaxChargedGap = 60'000'000;

// Adds one of the job's metrics points (its GPU vectors follow the job's GPUs). A point not newer
// than the last one is ignored.
AggregateDelta AddPoint(JobAggregates& job, const model::JobMetricsPoint& point);
// The last reading of a GPU, whoever held it then (nobody, another job): what the energy drawn
// between a job's start and its first reading of the GPU is charged from.
struct GpuBaseline {
  TimeMicros at = 0;
  std::optional<int64_t> energy_mj;
  std::string uuid;  // empty: not reported
};

// Adds a reading of one of the job's GPUs (matched by index), taken at `at`. A reading of a GPU
// the job does not hold, or not newer than the last one, is ignored. The job's first reading of
// a GPU also charges what the GPU drew since the job started: with `before` (the GPU's previous
// reading, of the same GPU, older than `at`), the energy between the two shared by time (the
// part after max(job start, before's time)); without it, the first reading's power × (at − job
// start), at most kMaxChargedGap, marked estimated. The part of the interval before the job
// started is nobody's (the previous holder was charged up to its own last reading only).
AggregateDelta AddReading(JobAggregates& job, const model::GpuReading& reading, TimeMicros at,
                          const std::optional<GpuBaseline>& before = std::nullopt);

std::string ToJson(const JobAggregates& job);
// InvalidArgument when `text` is not what ToJson writes.
Result<JobAggregates> JobAggregatesFromJson(std::string_view text);

// --- summaries ---

struct GpuSummary {
  int index = 0;
  int64_t memory_total_bytes = 0;
  int64_t samples = 0;
  double util_mean = 0;  // percent, time-weighted (per sample while no interval is covered)
  int64_t util_max = 0;
  int64_t memory_peak_bytes = 0;
  double energy_joules = 0;
  bool energy_estimated = false;
  double idle_share = 0;  // 0..1: the share of that time (or samples) below kIdleUtilPercent
  int64_t xid_events = 0;
};

struct SummaryNote {
  std::string rule;  // summary_notes.h
  std::string text;

  bool operator==(const SummaryNote&) const = default;
};

// How the job ended, from its stored record.
struct JobEnd {
  std::string status;                             // model::ToString(JobStatus)
  std::optional<std::string> termination_reason;  // model::ToString(JobTerminationReason)
  std::optional<TimeMicros> finished_at;          // none: still running
};

struct JobSummary {
  std::string job_id;
  std::string job_name;
  int job_num = 0;
  int replica_num = 0;
  std::string status;
  std::optional<std::string> termination_reason;
  bool final = false;  // the job has ended: the summary will not change
  std::optional<TimeMicros> started_at;
  std::optional<TimeMicros> finished_at;
  double duration_seconds = 0;
  int cpus = 0;
  double cpu_mean_cores = 0;
  double cpu_peak_cores = 0;
  int64_t memory_peak_bytes = 0;
  int64_t memory_limit_bytes = 0;
  std::vector<GpuSummary> gpus;
  double energy_joules = 0;
  bool energy_estimated = false;
  double busy_gpu_seconds = 0;
  double carbon_intensity = 0;
  double carbon_grams = 0;
  double cost_dollars = 0;
  // USD/hour of its instance; none: unknown (no price, or a summary stored before it was kept).
  std::optional<double> price;
  std::vector<SummaryNote> notes;
};

// The summary of `job` as of `now` (its end when it has ended), notes included (summary_notes.h).
JobSummary SummaryOf(const JobAggregates& job, const JobEnd& end, TimeMicros now);

// At most a few KB (a GPU's figures take ~250 bytes).
std::string ToJson(const JobSummary& summary);
Result<JobSummary> JobSummaryFromJson(std::string_view text);

}  // namespace fleetwatch::server
