#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace fleetwatch::cli {

// A table for the terminal: headers and rows of cells, as plain (possibly untrusted) text.
struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;  // a short row is padded with empty cells
};

// Renders `table` as lines ending in '\n': the header in upper case, then one line per row;
// left-aligned columns separated by two spaces, no trailing spaces. Every cell is passed through
// SanitizeForTerminal first. When the table is wider than `max_width` columns, the widest column
// is narrowed one step at a time (never below 4 columns, or its natural width if smaller) and
// cells that no longer fit end in "…"; a table that cannot be narrowed enough stays wider. Pure.
std::string RenderTable(const Table& table, size_t max_width);

}  // namespace fleetwatch::cli
