#include "cli/table.h"

#include <gtest/gtest.h>

#include "cli/terminal_text.h"

namespace fleetwatch::cli {
namespace {

Table Runs() {
  return Table{{"run", "status", "gpu"},
               {{"train-llama", "running", "A100:2"}, {"eval", "submitted", "-"}}};
}

TEST(RenderTable, AlignsColumnsWithTwoSpacesAndUpperCaseHeaders) {
  EXPECT_EQ(RenderTable(Runs(), 100),
            "RUN          STATUS     GPU\n"
            "train-llama  running    A100:2\n"
            "eval         submitted  -\n");
}

TEST(RenderTable, HasNoTrailingSpacesWhenLastCellsAreEmpty) {
  Table table{{"a", "b"}, {{"x", ""}, {"longer"}}};
  EXPECT_EQ(RenderTable(table, 100),
            "A       B\n"
            "x\n"
            "longer\n");
}

TEST(RenderTable, NarrowsTheWidestColumnFirstToFitTheWidth) {
  Table table{{"name", "description"},
              {{"a", "a rather long description that will not fit"}, {"b", "short"}}};
  EXPECT_EQ(RenderTable(table, 20),
            "NAME  DESCRIPTION\n"
            "a     a rather long…\n"
            "b     short\n");
}

TEST(RenderTable, ShrinksColumnsInTurnUntilTheTableFits) {
  Table table{{"instance", "submitted"}, {{"instance-number-one", "2026-11-30T03:04:25Z"}}};
  std::string out = RenderTable(table, 24);
  EXPECT_EQ(out,
            "INSTANCE     SUBMITTED\n"
            "instance-n…  2026-11-30…\n");
  size_t newline = out.find('\n', out.find('\n') + 1);
  EXPECT_EQ(DisplayWidth(out.substr(out.find('\n') + 1, newline - out.find('\n') - 1)), 24u);
}

TEST(RenderTable, TruncatesHeadersButStopsAtTheMinimumColumnWidth) {
  Table table{{"aaaaaaaa", "bbbbbbbb"}, {{"12345678", "12345678"}, {"12", "1"}}};
  EXPECT_EQ(RenderTable(table, 3),
            "AAA…  BBB…\n"
            "123…  123…\n"
            "12    1\n");
}

TEST(RenderTable, SanitizesCellsSoNothingMovesTheCursorOrBreaksLines) {
  Table table{{"gpu", "status"}, {{"evil\x1b[2J\nname", "ok\r"}}};
  EXPECT_EQ(RenderTable(table, 100),
            "GPU            STATUS\n"
            "evil?[2J?name  ok?\n");
}

TEST(RenderTable, EmptyTableIsEmpty) { EXPECT_EQ(RenderTable(Table{}, 100), ""); }

}  // namespace
}  // namespace fleetwatch::cli
