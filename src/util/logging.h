#pragma once

#include <string_view>

namespace fleetwatch {

// Configures the process-wide spdlog logger: stderr, UTC timestamps, the given level
// ("debug", "info", "warn", "error"; unknown means "info"). Call once, early in main().
void SetupLogging(std::string_view level);

}  // namespace fleetwatch
