#include "util/time_format.h"

#include <charconv>
#include <chrono>
#include <cstdio>

namespace fleetwatch {
namespace {

struct Civil {
  int year;
  unsigned month, day, hour, minute, second;
  int64_t micros;
};

Civil ToCivil(TimeMicros t) {
  using namespace std::chrono;
  sys_time<microseconds> tp{microseconds{t}};
  auto day = floor<days>(tp);
  year_month_day ymd{day};
  auto rest = tp - day;
  auto h = duration_cast<hours>(rest);
  rest -= h;
  auto m = duration_cast<minutes>(rest);
  rest -= m;
  auto s = duration_cast<seconds>(rest);
  rest -= s;
  return {static_cast<int>(ymd.year()),
          static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()),
          static_cast<unsigned>(h.count()),
          static_cast<unsigned>(m.count()),
          static_cast<unsigned>(s.count()),
          duration_cast<microseconds>(rest).count()};
}

bool ParseFixed(std::string_view s, size_t pos, size_t len, int& out) {
  if (pos + len > s.size()) return false;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  auto r = std::from_chars(s.data() + pos, s.data() + pos + len, out);
  return r.ec == std::errc();
}

}  // namespace

std::string FormatTimestampSeconds(TimeMicros t) {
  Civil c = ToCivil(t);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02u:%02u:%02uZ", c.year, c.month, c.day, c.hour,
                c.minute, c.second);
  return buf;
}

std::string FormatTimestamp(TimeMicros t) {
  Civil c = ToCivil(t);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02u:%02u:%02u.%06lldZ", c.year, c.month, c.day,
                c.hour, c.minute, c.second, static_cast<long long>(c.micros));
  return buf;
}

Result<TimeMicros> ParseTimestamp(std::string_view s) {
  auto bad = [&] { return InvalidArgument("not an RFC 3339 timestamp: '" + std::string(s) + "'"); };
  int year, month, day, hour, minute, second;
  if (s.size() < 19 || !ParseFixed(s, 0, 4, year) || s[4] != '-' || !ParseFixed(s, 5, 2, month) ||
      s[7] != '-' || !ParseFixed(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ParseFixed(s, 11, 2, hour) || s[13] != ':' || !ParseFixed(s, 14, 2, minute) ||
      s[16] != ':' || !ParseFixed(s, 17, 2, second)) {
    return bad();
  }
  using namespace std::chrono;
  year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                     std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) return bad();
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 6) micros = micros * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad();
    for (int i = digits; i < 6; ++i) micros *= 10;
  }
  int64_t offset_seconds = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!ParseFixed(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ParseFixed(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return bad();
    }
    offset_seconds = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != s.size()) return bad();
  int64_t days_since_epoch = sys_days{ymd}.time_since_epoch().count();
  int64_t secs = days_since_epoch * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return TimeMicros{secs * 1'000'000 + micros};
}

std::string FormatDuration(TimeMicros d) {
  if (d < 0) d = 0;
  int64_t s = d / 1'000'000;
  int64_t days = s / 86400, hours = s % 86400 / 3600, minutes = s % 3600 / 60, secs = s % 60;
  char buf[48];
  if (days > 0) {
    std::snprintf(buf, sizeof(buf), "%lldd %lldh", static_cast<long long>(days),
                  static_cast<long long>(hours));
  } else if (hours > 0) {
    std::snprintf(buf, sizeof(buf), "%lldh %lldm", static_cast<long long>(hours),
                  static_cast<long long>(minutes));
  } else if (minutes > 0) {
    std::snprintf(buf, sizeof(buf), "%lldm %llds", static_cast<long long>(minutes),
                  static_cast<long long>(secs));
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(secs));
  }
  return buf;
}

}  // namespace fleetwatch
