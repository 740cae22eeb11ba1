#include "cli/configuration_file.h"

#include <gtest/gtest.h>

namespace fleetwatch::cli {
namespace {

TEST(ParseConfigurationText, ReadsTheTypeOfYaml) {
  Result<ConfigurationFile> file =
      ParseConfigurationText("type: fleet\nname: f\n", /*json=*/false, "fleet.yml");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->type, "fleet");
  EXPECT_EQ(file->content_type, "application/yaml");
  EXPECT_EQ(file->text, "type: fleet\nname: f\n");  // sent unchanged
}

TEST(ParseConfigurationText, ReadsTheTypeOfJson) {
  Result<ConfigurationFile> file =
      ParseConfigurationText(R"({"type": "task", "commands": ["true"]})", true, "run.json");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->type, "task");
  EXPECT_EQ(file->content_type, "application/json");
}

TEST(ParseConfigurationText, AbsentTypeIsEmpty) {
  Result<ConfigurationFile> file = ParseConfigurationText("commands: [true]\n", false, "x");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->type, "");
}

TEST(ParseConfigurationText, RefusesWhatIsNotAConfiguration) {
  EXPECT_FALSE(ParseConfigurationText("- a\n- b\n", false, "x").ok());
  EXPECT_FALSE(ParseConfigurationText("type: [unclosed\n", false, "x").ok());
  EXPECT_FALSE(ParseConfigurationText("", false, "x").ok());
  EXPECT_FALSE(ParseConfigurationText("type: {a: b}\n", false, "x").ok());
  EXPECT_FALSE(ParseConfigurationText("[1]", true, "x").ok());
  EXPECT_FALSE(ParseConfigurationText("{\"type\": 3}", true, "x").ok());
  Status bad = ParseConfigurationText("{nope", true, "run.json").status();
  EXPECT_NE(bad.message().find("run.json"), std::string::npos);
}

TEST(ReadConfigurationFile, MissingFileNamesIt) {
  Status s = ReadConfigurationFile("/nonexistent/run.yml").status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("/nonexistent/run.yml"), std::string::npos);
}

}  // namespace
}  // namespace fleetwatch::cli
