#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/status.h"
#include "util/status.h"

namespace fleetwatch::model {

// The run configuration a user submits (dstack-style YAML, or the same as JSON), after
// validation and normalization. See DESIGN.md "Run configuration".

enum class ConfigFormat { kYaml, kJson };

struct GpuRequest {
  int count = 0;                        // 0: no GPUs
  std::optional<std::string> name;      // e.g. "A100", matched case-insensitively later
  std::optional<int64_t> memory_bytes;  // per GPU, at least this much
};

struct ResourcesRequest {
  int cpus = 1;
  std::optional<int64_t> memory_bytes;  // a limit for the job's cgroup; none: no limit
  GpuRequest gpu;
};

struct UtilizationPolicy {
  int min_gpu_utilization = 0;  // percent, 0..100
  int64_t time_window_seconds = 0;
};

struct RunConfiguration {
  RunType type = RunType::kTask;
  std::optional<std::string> name;  // absent: the server picks one
  std::vector<std::string> commands;
  std::vector<std::string> init;                         // dev-environment only
  std::vector<std::pair<std::string, std::string>> env;  // in the order given
  std::optional<std::string> working_dir;
  int nodes = 1;
  int replicas = 1;
  std::optional<int> port;  // service only (required there)
  ResourcesRequest resources;
  std::optional<int64_t> max_duration_seconds;
  std::optional<UtilizationPolicy> utilization_policy;
};

// Parses and validates a run configuration. Errors are InvalidArgument with a message that names
// the offending key (e.g. "resources.memory: ..."), never echoing raw input that could hold
// control characters. Unknown or unsupported keys (such as `image`) are refused. Thread-safe.
Result<RunConfiguration> ParseRunConfiguration(std::string_view text, ConfigFormat format);

// The normalized configuration as compact JSON; ParseRunConfiguration(ToJson(c), kJson) == c.
std::string ToJson(const RunConfiguration& config);

// "16GB", "512MB", "1.5TB", "80GiB" or a bare number of GB → bytes. Used by the CLI too.
Result<int64_t> ParseMemorySize(std::string_view text);

// "2h", "30m", "45s", "1d", or a bare number of seconds → seconds.
Result<int64_t> ParseDurationSeconds(std::string_view text);

// "A100:2", "2", "A100", "A100:80GB:2", "24GB:1" → GpuRequest. Used by the CLI too.
Result<GpuRequest> ParseGpuSpec(std::string_view text);

}  // namespace fleetwatch::model
