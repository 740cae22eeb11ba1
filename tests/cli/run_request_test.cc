#include "cli/run_request.h"

#include <gtest/gtest.h>

namespace fleetwatch::cli {
namespace {

TEST(BuildRunConfigurationJson, MinimalTaskHasTypeAndOneCommandLine) {
  RunFlags flags;
  flags.command = {"echo", "hi"};
  Result<std::string> json = BuildRunConfigurationJson(flags);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(*json, R"({"type":"task","commands":["echo hi"]})");
}

TEST(BuildRunConfigurationJson, CarriesEveryFlagDigitsAsNumbersTheRestAsStrings) {
  RunFlags flags;
  flags.name = "train";
  flags.gpu = "A100:2";
  flags.cpu = "4";
  flags.memory = "16GB";
  flags.nodes = "2";
  flags.max_duration = "2h";
  flags.env = {"A=1", "B=x=y", "EMPTY="};
  flags.command = {"python", "train.py", "--msg", "it's $5"};
  Result<std::string> json = BuildRunConfigurationJson(flags);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(*json,
            R"({"type":"task","name":"train","commands":["python train.py --msg 'it'\\''s $5'"],)"
            R"("resources":{"cpu":4,"memory":"16GB","gpu":"A100:2"},"nodes":2,)"
            R"("env":{"A":"1","B":"x=y","EMPTY":""},"max_duration":"2h"})");
}

TEST(BuildRunConfigurationJson, PassesInvalidValuesThroughForTheServerToJudge) {
  RunFlags flags;
  flags.cpu = "-3";
  flags.gpu = "2";
  flags.nodes = "99999999999999999999";  // too big for int64: stays text
  flags.command = {"true"};
  Result<std::string> json = BuildRunConfigurationJson(flags);
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(*json, R"({"type":"task","commands":["true"],"resources":{"cpu":"-3","gpu":2},)"
                   R"("nodes":"99999999999999999999"})");
}

TEST(BuildRunConfigurationJson, RefusesAnEmptyCommand) {
  RunFlags flags;
  Result<std::string> json = BuildRunConfigurationJson(flags);
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(json.status().message().find("--"), std::string::npos);
}

TEST(BuildRunConfigurationJson, RefusesEnvWithoutKeyOrEquals) {
  for (const char* bad : {"NOEQUALS", "=value"}) {
    RunFlags flags;
    flags.command = {"true"};
    flags.env = {bad};
    EXPECT_FALSE(BuildRunConfigurationJson(flags).ok()) << bad;
  }
}

}  // namespace
}  // namespace fleetwatch::cli
