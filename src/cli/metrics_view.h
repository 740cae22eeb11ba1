#pragma once

// `fleetwatch metrics`: the tables drawn from replies of GET /api/project/{p}/metrics/job/{run}
// (see spec/METRICS.md), kept apart from the network so that they can be golden-tested. All
// functions are pure and thread-safe.

#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/clock.h"

namespace fleetwatch::cli {

// One job of a run and its metrics reply, as the command gathered them.
struct JobMetrics {
  std::string run_name;
  int64_t job_num = 0;
  int64_t replica_num = 0;
  std::string status;          // the job's status, e.g. "running"
  boost::json::value metrics;  // the reply: {"metrics": [{"name", "timestamps", "values"}]}
};

// How far back the tables look.
inline constexpr TimeMicros kMetricsWindow = 3600LL * 1'000'000;

// A percentage as "NN%", rounded to a whole number (half away from zero).
std::string FormatPercent(double percent);

// Bytes in at most four digits and a unit: "512B", "12KB", "1.2GB", "16GB", "579GB", "1.5TB".
// Units are powers of 1024 named KB, MB, GB, TB, PB as in FormatBytes (display_format.h); under 10
// units one decimal is kept (dropped when it is 0), from 10 on none.
std::string FormatBytesShort(int64_t bytes);

// "used/total" with FormatBytesShort, e.g. "579GB/960GB".
std::string FormatMemoryUsage(int64_t used, int64_t total);

// The table of one job, as lines ending in '\n': the title "RUN job=J replica=R (status)", then
// a header and a `cpu` row and one `gpu=i` row per GPU, each with a UTILIZATION and a MEMORY
// cell. A cell is a sparkline of the samples of the last hour before `now` (oldest left, newest
// right, averaged down to fit; 0–100 scale) followed by the newest value: "NN%" for utilisation,
// "used/total" for memory. CPU utilisation is cpu_usage_percent / cpus_detected_num; memory
// utilisation is memory_working_set_bytes / memory_total_bytes; GPU i uses
// gpu_util_percent_gpu{i} and gpu_memory_usage_bytes_gpu{i} / gpu_memory_total_bytes. A cell
// whose series are missing (or have no sample in the window) reads "no data". GPU rows are those
// named by a series or counted by gpus_detected_num. Every line is at most `width` display
// columns whenever one block per sparkline fits (from 40 columns for any realistic values; below
// that RenderTable cuts cells with "…"). Text from the server is made terminal-safe.
std::string RenderJobMetrics(const JobMetrics& job, TimeMicros now, size_t width);

// RenderJobMetrics for every job, separated by blank lines.
std::string RenderMetrics(const std::vector<JobMetrics>& jobs, TimeMicros now, size_t width);

// The line above each frame of `metrics -w`: the run and the time span the tables cover,
// "RUN: the last hour, HH:MM:SS–HH:MM:SS UTC (redrawn every 10s; Ctrl-C stops)", or, once the run
// has ended (`ended` is its status message, e.g. "done", "failed (exit 3)"), "... UTC (the run
// ended: ENDED)". Terminal-safe, cut to `width` columns with "…".
std::string WatchHeader(const std::string& run_name, TimeMicros now, const std::string& ended,
                        size_t width);

// The --json document: {"jobs": [{"job_num", "replica_num", "metrics": [...]}]}, each "metrics"
// the reply's array as received (an empty array when the reply has none).
boost::json::value MetricsJson(const std::vector<JobMetrics>& jobs);

}  // namespace fleetwatch::cli
