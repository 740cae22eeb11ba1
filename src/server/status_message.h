#pragma once

#include <optional>
#include <string>

#include "model/entities.h"

namespace fleetwatch::server {

// The `status_message` of jobs and runs in the API: the status, then in parentheses what the
// server knows of why, in its own words, e.g. "done", "running",
// "submitted (waiting: 0 of 8 CPUs free on local)",
// "failed (no capacity: no instance of project ml has a GPU named banana)", "failed (exit 3)",
// "terminated (max duration 20s)", "terminated (stopped by admin)". Built from the status,
// termination reason, exit code and Job::status_detail. Pure functions; thread-safe.
std::string JobStatusMessage(const model::Job& job);
// The run's status with the words of the job that explains it best: for a failed run its first
// failed job, for a waiting run its first waiting job, else the first job that has words.
std::string RunStatusMessage(const model::Run& run);

// A whole number of seconds as a run configuration would say it: "20s", "90s" → "1m 30s",
// "2h", "1d 2h"; units that are zero are left out.
std::string DurationWords(int64_t seconds);

}  // namespace fleetwatch::server
