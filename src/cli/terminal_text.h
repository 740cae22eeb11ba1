#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fleetwatch::cli {

// Text shown on a terminal often comes from elsewhere (GPU names reported by hosts, server error
// messages), so it is made inert before printing. All functions are pure and thread-safe.

// Replaces every control character — bytes below 0x20 (newline and ESC included), 0x7f, and the
// C1 controls U+0080..U+009F — with '?', as well as every byte that is not part of valid UTF-8.
// Printable UTF-8 is kept, so the result can move no cursor and never spans two lines.
std::string SanitizeForTerminal(std::string_view text);

// The width of sanitized text in terminal columns: one per code point.
size_t DisplayWidth(std::string_view text);

// Cuts sanitized text to at most `width` columns; when something is cut, the last column kept is
// "…". Never splits a UTF-8 sequence.
std::string TruncateToWidth(std::string_view text, size_t width);

// The width of the terminal for tables: a positive COLUMNS from the environment, else the size of
// the terminal on stdout, else 100.
size_t TerminalWidth();

}  // namespace fleetwatch::cli
