#include "agent/shell_commands.h"

#include <gtest/gtest.h>

namespace fleetwatch::agent {
namespace {

TEST(JoinShellCommands, JoinsWithAndSoTheFirstFailureStopsTheScript) {
  EXPECT_EQ(JoinShellCommands({"true", "exit 3", "echo never"}), "true && exit 3 && echo never");
}

TEST(JoinShellCommands, OneCommandIsItself) {
  EXPECT_EQ(JoinShellCommands({"python3 train.py"}), "python3 train.py");
}

TEST(JoinShellCommands, TrimsEachCommand) {
  EXPECT_EQ(JoinShellCommands({"  echo a \n", "\techo b"}), "echo a && echo b");
}

TEST(JoinShellCommands, WrapsABackgroundCommandInBraces) {
  EXPECT_EQ(JoinShellCommands({"sleep 100 &", "echo b"}), "{ sleep 100 & } && echo b");
  EXPECT_EQ(JoinShellCommands({"echo a", "server & "}), "echo a && { server & }");
}

TEST(JoinShellCommands, KeepsACommandsOwnSeparators) {
  EXPECT_EQ(JoinShellCommands({"a; b", "c\nd"}), "a; b && c\nd");
}

TEST(JoinShellCommands, LeavesOutBlankCommands) {
  EXPECT_EQ(JoinShellCommands({"a", "  ", "b"}), "a && b");
  EXPECT_EQ(JoinShellCommands({}), "");
}

}  // namespace
}  // namespace fleetwatch::agent
