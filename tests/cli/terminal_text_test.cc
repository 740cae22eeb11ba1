#include "cli/terminal_text.h"

#include <gtest/gtest.h>

namespace fleetwatch::cli {
namespace {

TEST(SanitizeForTerminal, KeepsPrintableAsciiAndUtf8) {
  EXPECT_EQ(SanitizeForTerminal("NVIDIA H100 80GB HBM3"), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(SanitizeForTerminal("Grüße … 日本"), "Grüße … 日本");
}

TEST(SanitizeForTerminal, ReplacesEveryControlCharacter) {
  EXPECT_EQ(SanitizeForTerminal("a\nb\rc\td"), "a?b?c?d");
  EXPECT_EQ(SanitizeForTerminal("\x1b[2J\x1b]0;pwned\x07"), "?[2J?]0;pwned?");
  EXPECT_EQ(SanitizeForTerminal(std::string("nul\0byte", 8)), "nul?byte");
  EXPECT_EQ(SanitizeForTerminal("del\x7f"), "del?");
  // C1 controls such as U+009B (CSI) act like ESC [ on some terminals.
  EXPECT_EQ(SanitizeForTerminal("x\xc2\x9b"
                                "31m"),
            "x?31m");
}

TEST(SanitizeForTerminal, ReplacesInvalidUtf8ByteByByte) {
  EXPECT_EQ(SanitizeForTerminal("\xff\xfe"), "??");
  EXPECT_EQ(SanitizeForTerminal("cut \xe2\x80"), "cut ??");  // truncated sequence
  EXPECT_EQ(SanitizeForTerminal("\xc0\xaf"), "??");          // overlong '/'
  EXPECT_EQ(SanitizeForTerminal("\xed\xa0\x80"), "???");     // surrogate
}

TEST(DisplayWidth, CountsCodePoints) {
  EXPECT_EQ(DisplayWidth(""), 0u);
  EXPECT_EQ(DisplayWidth("abc"), 3u);
  EXPECT_EQ(DisplayWidth("a…b"), 3u);
  EXPECT_EQ(DisplayWidth("Grüße"), 5u);
}

TEST(TruncateToWidth, CutsWithAnEllipsisAndNeverSplitsASequence) {
  EXPECT_EQ(TruncateToWidth("abcdef", 6), "abcdef");
  EXPECT_EQ(TruncateToWidth("abcdef", 5), "abcd…");
  EXPECT_EQ(TruncateToWidth("abcdef", 1), "…");
  EXPECT_EQ(TruncateToWidth("abcdef", 0), "");
  EXPECT_EQ(TruncateToWidth("üüüüü", 3), "üü…");
  EXPECT_EQ(DisplayWidth(TruncateToWidth("üüüüü", 3)), 3u);
}

}  // namespace
}  // namespace fleetwatch::cli
