#include "cli/shell_quote.h"

#include <gtest/gtest.h>

namespace fleetwatch::cli {
namespace {

TEST(ShellQuote, LeavesPlainWordsBare) {
  EXPECT_EQ(ShellQuote("python"), "python");
  EXPECT_EQ(ShellQuote("--lr=0.1"), "--lr=0.1");
  EXPECT_EQ(ShellQuote("/data/set-1,a:b@c%d+e_f"), "/data/set-1,a:b@c%d+e_f");
}

TEST(ShellQuote, QuotesSpacesAndShellCharacters) {
  EXPECT_EQ(ShellQuote("hello world"), "'hello world'");
  EXPECT_EQ(ShellQuote("$HOME"), "'$HOME'");
  EXPECT_EQ(ShellQuote("a;rm -rf /"), "'a;rm -rf /'");
  EXPECT_EQ(ShellQuote("*.txt"), "'*.txt'");
  EXPECT_EQ(ShellQuote("~"), "'~'");
  EXPECT_EQ(ShellQuote("`id`"), "'`id`'");
  EXPECT_EQ(ShellQuote("a\"b"), "'a\"b'");
  EXPECT_EQ(ShellQuote("line\nbreak"), "'line\nbreak'");
}

TEST(ShellQuote, WritesSingleQuotesAsCloseEscapeReopen) {
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("'"), "''\\'''");
}

TEST(ShellQuote, EmptyArgumentBecomesTwoQuotes) { EXPECT_EQ(ShellQuote(""), "''"); }

TEST(ShellJoin, JoinsWithSpacesQuotingWhereNeeded) {
  EXPECT_EQ(ShellJoin({"echo", "hi"}), "echo hi");
  EXPECT_EQ(ShellJoin({"python", "train.py", "--name", "my run", ""}),
            "python train.py --name 'my run' ''");
  EXPECT_EQ(ShellJoin({"sh", "-c", "echo $X && exit 1"}), "sh -c 'echo $X && exit 1'");
}

TEST(ShellJoin, QuotesAFirstWordThatLooksLikeAnAssignment) {
  EXPECT_EQ(ShellJoin({"A=1", "B=2"}), "'A=1' B=2");
}

}  // namespace
}  // namespace fleetwatch::cli
