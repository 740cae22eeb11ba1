#pragma once

#include <chrono>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "agent/inventory.h"
#include "agent/job_metrics.h"
#include "agent/job_runtime.h"
#include "model/entities.h"
#include "util/status.h"

namespace fleetwatch::agent {

// Parses and validates a POST /api/jobs body against this host's GPUs. InvalidArgument with a
// message naming the field for: malformed JSON, a body that is not an object, unknown keys,
// wrong types, a job_id that is not 1..64 of [A-Za-z0-9-], commands that are not a non-empty
// list of strings, env names not matching ^[A-Za-z_][A-Za-z0-9_]*$ or values that are not
// strings, gpu_indices that are repeated or not on this host, NUL characters in text that
// reaches the job, non-positive limits, and a cluster that does not add up. Thread-safe.
Result<JobSpec> ParseStartJobRequest(std::string_view body, const std::vector<model::Gpu>& gpus);

// The grace period of a POST /api/jobs/{id}/stop body: empty body or no "grace_seconds" → 10 s;
// an integer 0..300 otherwise. InvalidArgument for anything else.
Result<std::chrono::seconds> ParseStopJobRequest(std::string_view body);

// {"job_id", "state", "pid", "exit_code", "signal", "stop_requested", "started_at",
//  "finished_at", "error"}, as docs/agent-api.md shows.
boost::json::object JobStateJson(const JobState& state);

// {"timestamp_micro", "cpu_usage_micro", "memory_usage_bytes", "memory_working_set_bytes",
//  "gpus": [{"gpu_memory_usage_bytes", "gpu_util_percent"}]}: spec/METRICS.md's metrics point.
boost::json::object MetricsPointJson(const JobMetricsPoint& point);

// {"agent_id", "hostname", "cpus", "memory_bytes", "cgroup", "gpus": [...]}.
boost::json::object InventoryJson(const HostInventory& inventory, std::string_view agent_id);

}  // namespace fleetwatch::agent
