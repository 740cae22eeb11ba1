#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace fleetwatch::cli {

// What `fleetwatch run` was given. Empty strings mean "not given"; values are passed to the
// server as typed, because the server validates run configurations and words its own errors.
struct RunFlags {
  std::string name;
  std::string gpu;                   // e.g. "A100:2", "2"
  std::string cpu;                   // e.g. "4"
  std::string memory;                // e.g. "16GB"
  std::string nodes;                 // e.g. "2"
  std::string max_duration;          // e.g. "2h"
  std::vector<std::string> env;      // "KEY=VALUE", in the order given
  std::vector<std::string> command;  // the words after "--"
};

// Builds the task configuration that `fleetwatch run` submits, as compact JSON:
// {"type": "task", "name"?, "commands": [ShellJoin(command)], "resources"?: {"cpu"?, "memory"?,
// "gpu"?}, "nodes"?, "env"?: {KEY: VALUE}, "max_duration"?}. Keys that were not given are left
// out. A value made only of decimal digits becomes a JSON number (as YAML would read it); any
// other value stays a string. InvalidArgument when the command is empty or an --env entry is not
// KEY=VALUE with a non-empty KEY. Pure.
Result<std::string> BuildRunConfigurationJson(const RunFlags& flags);

}  // namespace fleetwatch::cli
