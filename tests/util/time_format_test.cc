#include "util/time_format.h"

#include <gtest/gtest.h>

namespace fleetwatch {
namespace {

constexpr TimeMicros k20230102T030425 = 1672628665LL * 1'000'000;

TEST(TimeFormat, FormatsSecondsInUtc) {
  EXPECT_EQ(FormatTimestampSeconds(k20230102T030425 + 999'999), "2023-01-02T03:04:25Z");
  EXPECT_EQ(FormatTimestampSeconds(0), "1970-01-01T00:00:00Z");
}

TEST(TimeFormat, FormatsMicroseconds) {
  EXPECT_EQ(FormatTimestamp(k20230102T030425 + 42), "2023-01-02T03:04:25.000042Z");
}

TEST(TimeFormat, ParsesWhatItFormatsAndOffsets) {
  EXPECT_EQ(*ParseTimestamp("2023-01-02T03:04:25Z"), k20230102T030425);
  EXPECT_EQ(*ParseTimestamp("2023-01-02T03:04:25.5Z"), k20230102T030425 + 500'000);
  EXPECT_EQ(*ParseTimestamp("2023-01-02T05:04:25+02:00"), k20230102T030425);
  EXPECT_EQ(*ParseTimestamp("2023-01-02 03:04:25.000042Z"), k20230102T030425 + 42);
}

TEST(TimeFormat, RejectsMalformedText) {
  for (const char* bad : {"", "2023-01-02", "2023-13-02T03:04:25Z", "2023-02-30T03:04:25Z",
                          "2023-01-02T03:04:25", "2023-01-02T03:04:25Zjunk", "2023-01-02T25:00:00Z",
                          "2023-01-02T03:04:25.Z", "yyyy-01-02T03:04:25Z"}) {
    EXPECT_FALSE(ParseTimestamp(bad).ok()) << bad;
  }
}

TEST(TimeFormat, FormatsDurations) {
  EXPECT_EQ(FormatDuration(45'000'000), "45s");
  EXPECT_EQ(FormatDuration(125'000'000), "2m 5s");
  EXPECT_EQ(FormatDuration(3'725'000'000), "1h 2m");
  EXPECT_EQ(FormatDuration(90'000'000'000), "1d 1h");
  EXPECT_EQ(FormatDuration(-5), "0s");
}

}  // namespace
}  // namespace fleetwatch
