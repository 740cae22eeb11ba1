#include "cli/display_format.h"

#include <gtest/gtest.h>

#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

const TimeMicros kNow = *ParseTimestamp("2026-11-30T12:00:00Z");

TEST(FormatAge, SaysHowLongAgo) {
  EXPECT_EQ(FormatAge("2026-11-30T11:59:59.500000Z", kNow), "now");
  EXPECT_EQ(FormatAge("2026-11-30T11:59:48Z", kNow), "12 sec ago");
  EXPECT_EQ(FormatAge("2026-11-30T11:58:00Z", kNow), "2 min ago");
  EXPECT_EQ(FormatAge("2026-11-30T11:00:00Z", kNow), "1 hour ago");
  EXPECT_EQ(FormatAge("2026-11-30T07:00:00Z", kNow), "5 hours ago");
  EXPECT_EQ(FormatAge("2026-11-27T12:00:00Z", kNow), "3 days ago");
}

TEST(FormatAge, ShowsTheTimestampWhenOldInTheFutureOrUnknown) {
  EXPECT_EQ(FormatAge("2026-11-01T08:30:00.123456Z", kNow), "2026-11-01T08:30:00Z");
  EXPECT_EQ(FormatAge("2026-11-30T12:00:10Z", kNow), "2026-11-30T12:00:10Z");
  EXPECT_EQ(FormatAge("", kNow), "-");
  EXPECT_EQ(FormatAge("yesterday", kNow), "yesterday");
}

TEST(FormatBytes, UsesPowersOf1024) {
  EXPECT_EQ(FormatBytes(80LL << 30), "80GB");
  EXPECT_EQ(FormatBytes(3LL << 29), "1.5GB");
  EXPECT_EQ(FormatBytes(512LL << 20), "512MB");
  EXPECT_EQ(FormatBytes(2LL << 40), "2TB");
  EXPECT_EQ(FormatBytes(100), "100B");
}

TEST(FormatPrice, TrimsZeros) {
  EXPECT_EQ(FormatPrice(1.5), "$1.5");
  EXPECT_EQ(FormatPrice(2.0), "$2");
  EXPECT_EQ(FormatPrice(0.125), "$0.125");
  EXPECT_EQ(FormatPrice(std::nullopt), "-");
}

}  // namespace
}  // namespace fleetwatch::cli
