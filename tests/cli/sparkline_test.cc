#include "cli/sparkline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace fleetwatch::cli {
namespace {

using ::testing::ElementsAre;

TEST(Sparkline, ZeroIsTheLowestBlockAndHundredTheHighest) {
  EXPECT_EQ(SparkBlock(0), "▁");
  EXPECT_EQ(SparkBlock(100), "▇");
}

TEST(Sparkline, FiftyIsTheMiddleBlock) { EXPECT_EQ(SparkBlock(50), "▄"); }

TEST(Sparkline, StepsAreASixthOfTheScaleAndHalvesRoundUp) {
  EXPECT_EQ(SparkBlock(100.0 / 12 - 0.01), "▁");
  EXPECT_EQ(SparkBlock(100.0 / 12 + 0.01), "▂");
  EXPECT_EQ(SparkBlock(100.0 / 6), "▂");
  EXPECT_EQ(SparkBlock(100.0 / 3), "▃");
  EXPECT_EQ(SparkBlock(66.7), "▅");
  EXPECT_EQ(SparkBlock(83.3), "▆");
  EXPECT_EQ(SparkBlock(99), "▇");
}

TEST(Sparkline, ValuesAboveHundredAreClamped) {
  EXPECT_EQ(SparkBlock(101), "▇");
  EXPECT_EQ(SparkBlock(400), "▇");
}

TEST(Sparkline, NegativeAndNanAreTheLowestBlock) {
  EXPECT_EQ(SparkBlock(-5), "▁");
  EXPECT_EQ(SparkBlock(std::nan("")), "▁");
}

TEST(Sparkline, OneBlockPerValueInOrder) { EXPECT_EQ(Sparkline({0, 50, 100, 250}), "▁▄▇▇"); }

TEST(Sparkline, NoValuesGiveAnEmptyLine) { EXPECT_EQ(Sparkline({}), ""); }

TEST(Downsample, AFittingSeriesIsUnchanged) {
  EXPECT_THAT(Downsample({1, 2, 3}, 3), ElementsAre(1, 2, 3));
  EXPECT_THAT(Downsample({1, 2, 3}, 10), ElementsAre(1, 2, 3));
  EXPECT_THAT(Downsample({}, 10), ElementsAre());
}

TEST(Downsample, ConsecutiveValuesAreAveragedInOrder) {
  EXPECT_THAT(Downsample({0, 10, 20, 30, 40, 50}, 3), ElementsAre(5, 25, 45));
  EXPECT_THAT(Downsample({0, 0, 0, 100}, 2), ElementsAre(0, 50));
}

TEST(Downsample, UnevenBucketsDifferByAtMostOneValue) {
  // 7 values into 3 buckets: [0, 2), [2, 4), [4, 7).
  EXPECT_THAT(Downsample({1, 1, 2, 2, 3, 3, 3}, 3), ElementsAre(1, 2, 3));
  std::vector<double> hour(360, 50.0);
  std::vector<double> small = Downsample(hour, 29);
  EXPECT_EQ(small.size(), 29u);
  for (double v : small) EXPECT_DOUBLE_EQ(v, 50.0);
}

TEST(Downsample, ZeroBucketsGiveNothing) { EXPECT_TRUE(Downsample({1, 2}, 0).empty()); }

}  // namespace
}  // namespace fleetwatch::cli
