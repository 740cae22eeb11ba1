#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/status.h"

namespace boost::json {
class value;
}

namespace fleetwatch::model {

// Compact JSON text of `value`, like boost::json::serialize but with numbers written the way
// people and other JSON tools expect: doubles in their shortest round-trip form with a ".0" on
// whole numbers (`1.5`, `0.0`, `1e+16`) instead of Boost 1.81's `1.5E0`. Non-finite doubles
// become null. Thread-safe.
std::string SerializeJson(const boost::json::value& value);

// Bounds of ParseStrictJson, and what its messages call the text ("configuration", "the JSON
// body").
struct JsonLimits {
  std::size_t max_depth = 64;
  std::size_t max_nodes = 100'000;  // containers and scalars
  std::string_view subject = "JSON";
};

// The one JSON reader for untrusted text: RFC 8259 (valid UTF-8, no comments, nothing after the
// value), like boost::json::parse but refusing duplicate object keys (which the DOM parser keeps
// silently, last one winning) and bounding depth and values. Errors are InvalidArgument:
// "malformed JSON: duplicate key 'k'" (the key shown only when short and plain), "malformed JSON:
// <why> at line L, column C", "<subject> is nested too deeply (at most N levels)", "<subject> has
// too many values (at most N)". Messages never contain raw input bytes. Numbers are converted
// rounded correctly (a double's shortest text reads back as that double), which Boost 1.81's own
// conversion is not. Thread-safe.
Result<boost::json::value> ParseStrictJson(std::string_view text, const JsonLimits& limits = {});

}  // namespace fleetwatch::model
