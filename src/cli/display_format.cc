#include "cli/display_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

std::string Plural(int64_t n, const char* unit) {
  return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
}

// "%.*f" without trailing zeros (and without a trailing '.').
std::string TrimmedDecimal(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  std::string text = buf;
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  return text;
}

}  // namespace

std::string FormatAge(std::string_view timestamp, TimeMicros now) {
  if (timestamp.empty()) return "-";
  Result<TimeMicros> then = ParseTimestamp(timestamp);
  if (!then.ok()) return std::string(timestamp);
  TimeMicros age = now - *then;
  constexpr TimeMicros kSecond = 1'000'000, kMinute = 60 * kSecond, kHour = 60 * kMinute,
                       kDay = 24 * kHour;
  if (age < 0 || age >= 7 * kDay) return FormatTimestampSeconds(*then);
  if (age < kSecond) return "now";
  if (age < kMinute) return std::to_string(age / kSecond) + " sec ago";
  if (age < kHour) return std::to_string(age / kMinute) + " min ago";
  if (age < kDay) return Plural(age / kHour, "hour");
  return Plural(age / kDay, "day");
}

std::string FormatBytes(int64_t bytes) {
  constexpr double kMiB = 1024.0 * 1024.0, kGiB = 1024.0 * kMiB, kTiB = 1024.0 * kGiB;
  double b = static_cast<double>(bytes);
  if (b >= kTiB) return TrimmedDecimal(b / kTiB, 1) + "TB";
  if (b >= kGiB) return TrimmedDecimal(b / kGiB, 1) + "GB";
  if (b >= kMiB) return TrimmedDecimal(b / kMiB, 0) + "MB";
  return std::to_string(bytes) + "B";
}

std::string FormatPrice(std::optional<double> price) {
  if (!price) return "-";
  return "$" + TrimmedDecimal(*price, 4);
}

std::string FormatDollars(double dollars) {
  if (!std::isfinite(dollars)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "$%.2f", std::clamp(dollars, -1e15, 1e15));
  return buf;
}

}  // namespace fleetwatch::cli
