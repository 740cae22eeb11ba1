#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::cli {

// A run or fleet configuration read for `apply -f FILE`, sent to the server unchanged (the
// server parses and validates it; the CLI only looks at `type` to pick the endpoint).
struct ConfigurationFile {
  std::string text;
  std::string content_type;  // "application/yaml" or "application/json"
  std::string type;          // the top-level `type`, "" when absent
};

// The server refuses bodies above 1 MiB, so larger files are refused before sending.
inline constexpr size_t kMaxConfigurationBytes = 1 << 20;

// Reads `path` ("-": stdin) and parses it with ParseConfigurationText. InvalidArgument naming the
// file when it cannot be read or is too large.
Result<ConfigurationFile> ReadConfigurationFile(const std::string& path);

// JSON when `json` is set, YAML otherwise. InvalidArgument (naming `source`) when the text does not
// parse or is not a mapping, or `type` is not a string. Pure.
Result<ConfigurationFile> ParseConfigurationText(std::string text, bool json,
                                                 std::string_view source);

}  // namespace fleetwatch::cli
