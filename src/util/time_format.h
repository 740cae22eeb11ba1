#pragma once

#include <string>
#include <string_view>

#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch {

// "2026-11-30T03:04:25Z": RFC 3339, UTC, whole seconds (fraction truncated).
std::string FormatTimestampSeconds(TimeMicros t);

// "2026-11-30T03:04:25.123456Z": RFC 3339, UTC, microseconds. Used for entity timestamps.
std::string FormatTimestamp(TimeMicros t);

// Parses RFC 3339 text: "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"; a space may stand for 'T'.
Result<TimeMicros> ParseTimestamp(std::string_view text);

// "1h 2m", "45s", "3d 4h": a short human duration for tables.
std::string FormatDuration(TimeMicros d);

}  // namespace fleetwatch
