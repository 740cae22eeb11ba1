#pragma once

#include <string_view>

namespace fleetwatch {

// What this binary was built from, for `GET /api/server/info`, the agent's inventory and the
// `fleetwatch_build_info` family. Constants; thread-safe.
std::string_view BuildVersion();   // the project's version ("0.1.0")
std::string_view BuildRevision();  // the git commit built (12 hex digits), or "unknown"

}  // namespace fleetwatch
