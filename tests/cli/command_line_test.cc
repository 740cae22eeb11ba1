#include "cli/command_line.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/command_support.h"
#include "cli/commands.h"

namespace fleetwatch::cli {
namespace {

using Words = std::vector<std::string>;

class CommandLineTest : public ::testing::Test {
 protected:
  CommandLineTest() { AddClientCommands(app_, exit_code_); }

  Words Resolve(Words words) {
    Result<CommandWords> resolved = ResolveCommandWords(app_, std::move(words));
    EXPECT_TRUE(resolved.ok()) << resolved.status().message();
    if (!resolved.ok()) return {"<error>"};
    EXPECT_EQ(resolved->help_of, nullptr);
    return resolved->words;
  }

  std::string Error(Words words) {
    Result<CommandWords> resolved = ResolveCommandWords(app_, std::move(words));
    EXPECT_FALSE(resolved.ok());
    return resolved.ok() ? "" : resolved.status().message();
  }

  int exit_code_ = 0;
  CLI::App app_{"test", "fleetwatch"};
};

TEST_F(CommandLineTest, NoWordsShowTheHelp) {
  Result<CommandWords> resolved = ResolveCommandWords(app_, {});
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->help_of, &app_);
}

TEST_F(CommandLineTest, AGroupAloneLists) {
  EXPECT_EQ(Resolve({"fleet"}), (Words{"fleet", "list"}));
  EXPECT_EQ(Resolve({"project"}), (Words{"project", "list"}));
  EXPECT_EQ(Resolve({"user"}), (Words{"user", "list"}));
  // Options after the group go to `list`; help stays the group's.
  EXPECT_EQ(Resolve({"fleet", "--project", "ml"}), (Words{"fleet", "list", "--project", "ml"}));
  EXPECT_EQ(Resolve({"fleet", "--help"}), (Words{"fleet", "--help"}));
  EXPECT_EQ(Resolve({"user", "-h"}), (Words{"user", "-h"}));
}

TEST_F(CommandLineTest, KnownCommandsAndTheirArgumentsPassUnchanged) {
  EXPECT_EQ(Resolve({"fleet", "list"}), (Words{"fleet", "list"}));
  EXPECT_EQ(Resolve({"logs", "foo", "-f"}), (Words{"logs", "foo", "-f"}));
  EXPECT_EQ(Resolve({"--version"}), (Words{"--version"}));
  EXPECT_EQ(Resolve({"run", "--", "fleet"}), (Words{"run", "--", "fleet"}));
}

TEST_F(CommandLineTest, AnUnknownCommandIsNamedWithTheClosestOne) {
  EXPECT_EQ(Error({"fleets"}), "unknown command `fleets`; did you mean `fleet`?");
  EXPECT_EQ(Error({"stpo", "x"}), "unknown command `stpo`; did you mean `stop`?");
  EXPECT_EQ(Error({"fleet", "lst"}), "unknown command `fleet lst`; did you mean `fleet list`?");
  EXPECT_EQ(Error({"user", "refresh"}),
            "unknown command `user refresh`; did you mean `user refresh-token`?");
  const std::string far = Error({"foo"});
  EXPECT_EQ(far.rfind("unknown command `foo`; the commands are: config, project, user, fleet", 0),
            0u)
      << far;
  EXPECT_NE(far.find("(fleetwatch --help describes them)"), std::string::npos) << far;
}

TEST(ClosestName, PicksTheNearestWithinReach) {
  const Words names = {"fleet", "project", "user", "ps", "logs", "metrics"};
  EXPECT_EQ(ClosestName("fleets", names), "fleet");
  EXPECT_EQ(ClosestName("projet", names), "project");
  EXPECT_EQ(ClosestName("metric", names), "metrics");
  EXPECT_EQ(ClosestName("proj", names), "project");  // a prefix
  EXPECT_EQ(ClosestName("pss", names), "ps");
  EXPECT_EQ(ClosestName("zzzzzz", names), "");
  EXPECT_EQ(ClosestName("", names), "ps");  // within 2 edits
}

// `--env` must stop at `--` and at the next option; the words after `--` are the command's.
TEST(RepeatableOption, StopsAtTheDoubleDashAndAtTheNextOption) {
  auto parse = [](Words words) {
    CLI::App app{"test", "fleetwatch"};
    CLI::App* run = app.add_subcommand("run");
    auto values = std::make_shared<std::pair<Words, Words>>();
    std::string name;
    AddRepeatableOption(*run, "-e,--env", values->first, "env");
    run->add_option("--name", name);
    run->add_option("command", values->second);
    std::vector<std::string> reversed(words.rbegin(), words.rend());
    app.parse(reversed);
    return *values;
  };
  auto [env, command] = parse({"run", "--env", "K=V", "--", "cmd", "-x"});
  EXPECT_EQ(env, (Words{"K=V"}));
  EXPECT_EQ(command, (Words{"cmd", "-x"}));

  std::tie(env, command) =
      parse({"run", "-e", "A=1", "--name", "n", "--env", "B=2", "--", "cmd", "--env", "C=3"});
  EXPECT_EQ(env, (Words{"A=1", "B=2"}));
  EXPECT_EQ(command, (Words{"cmd", "--env", "C=3"}));

  std::tie(env, command) = parse({"run", "--env=A=1", "--", "--help"});
  EXPECT_EQ(env, (Words{"A=1"}));
  EXPECT_EQ(command, (Words{"--help"}));

  EXPECT_THROW(parse({"run", "--env"}), CLI::ParseError);
}

}  // namespace
}  // namespace fleetwatch::cli
