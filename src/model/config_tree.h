#pragma once

// Private to model/: turns YAML or JSON configuration text into one JSON tree, so that run and
// fleet validation is written once for both formats. Included only by model/ .cc files.

#include <cstddef>
#include <string_view>

#include <boost/json/object.hpp>

#include "model/run_spec.h"
#include "util/status.h"

namespace fleetwatch::model::config {

// Limits that keep hostile input cheap: nesting, total nodes (aliases count each time they are
// expanded, which defuses "billion laughs"), input size, and the size of the configuration as
// JSON: of the tree while it is built (aliases expanded; YAML stops as soon as it is passed) and
// of the normalized form that is stored (checked by the run and fleet parsers).
inline constexpr std::size_t kMaxDepth = 64;
inline constexpr std::size_t kMaxNodes = 100'000;
inline constexpr std::size_t kMaxInputBytes = 16u << 20;
inline constexpr std::size_t kMaxConfigurationBytes = 1u << 20;

// InvalidArgument "configuration is too large (over 1 MiB as normalized JSON)" when
// `normalized_bytes` (the size of ToJson, or a lower bound of it) is over kMaxConfigurationBytes.
Status CheckNormalizedSize(std::size_t normalized_bytes);

// Parses `text` into a tree whose top level is a mapping.
//  - JSON: RFC 8259 (valid UTF-8, no comments), duplicate keys refused.
//  - YAML: the first and only document; mapping keys must be unique scalars; plain (untagged)
//    scalars are typed by the YAML 1.2 core schema (null, bool, int, float); quoted scalars and
//    `!!str` are strings; other tags are refused. Anchors and aliases are expanded.
// Errors are InvalidArgument: "malformed JSON: ... at line L, column C", "malformed YAML at line
// L, column C: ...", "empty configuration", "configuration must be a mapping", or a limit above
// ("configuration is too large (over 1 MiB as JSON, aliases expanded)").
// Messages never contain raw input bytes. Thread-safe.
Result<boost::json::object> ParseConfigTree(std::string_view text, ConfigFormat format);

}  // namespace fleetwatch::model::config
