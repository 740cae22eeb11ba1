#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/clock.h"

namespace fleetwatch::cli {

// Short texts for table cells. All pure.

// How long ago `timestamp` (RFC 3339 text from the server) was, seen at `now`: "now" (under a
// second), "12 sec ago", "2 min ago", "1 hour ago", "3 days ago"; from a week on, or in the
// future, the timestamp itself ("2026-11-30T03:04:25Z"). "-" for an empty timestamp; unparseable
// text is shown as given.
std::string FormatAge(std::string_view timestamp, TimeMicros now);

// Bytes as "80GB", "1.5GB", "512MB" (powers of 1024, as run configurations read them).
std::string FormatBytes(int64_t bytes);

// A price per hour: "$1.5", "$0.125"; "-" when absent.
std::string FormatPrice(std::optional<double> price);

// An amount of money: "$1.20", "$0.00".
std::string FormatDollars(double dollars);

}  // namespace fleetwatch::cli
