#include "model/names.h"

#include <gtest/gtest.h>

#include <string>

namespace fleetwatch::model {
namespace {

TEST(ValidateName, AcceptsShortLowercaseIdentifiers) {
  const std::string accepted[] = {"a", "my-run-1", "z9", "a-", "a" + std::string(40, 'b')};
  for (const std::string& name : accepted) {
    EXPECT_TRUE(ValidateName("run name", name).ok()) << name;
    EXPECT_TRUE(IsValidName(name)) << name;
  }
}

TEST(ValidateName, RefusesAnythingElse) {
  const std::string refused[] = {
      "",
      std::string(42, 'a'),
      std::string(2000, 'a'),
      "My-run",
      "RUN",
      "1run",
      "-run",
      "run'",
      "run\"",
      "a\\b",
      "a\nb",
      "<script>",
      "x'; DROP TABLE runs;--",
      "ранок",
      std::string("a\0b", 3),
      "a b",
      "a_b",
      "a.b",
  };
  for (const std::string& name : refused) {
    Status status = ValidateName("run name", name);
    EXPECT_FALSE(status.ok()) << name;
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message().rfind("run name", 0), 0u) << status.message();
    EXPECT_EQ(status.message().find(name.empty() ? std::string("\x01") : name), std::string::npos)
        << "echoes the input: " << status.message();
    EXPECT_FALSE(IsValidName(name)) << name;
  }
}

TEST(ValidateName, SaysWhyForEmptyAndLongNames) {
  EXPECT_NE(ValidateName("fleet name", "").message().find("must not be empty"), std::string::npos);
  EXPECT_NE(ValidateName("fleet name", std::string(42, 'a')).message().find("too long"),
            std::string::npos);
}

}  // namespace
}  // namespace fleetwatch::model
