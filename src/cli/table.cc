#include "cli/table.h"

#include <algorithm>
#include <cctype>

#include "cli/terminal_text.h"

namespace fleetwatch::cli {
namespace {

constexpr size_t kMinColumnWidth = 4;
constexpr size_t kColumnGap = 2;

std::string UpperCase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

void AppendLine(const std::vector<std::string>& cells, const std::vector<size_t>& widths,
                std::string& out) {
  std::string line;
  for (size_t i = 0; i < widths.size(); ++i) {
    std::string cell = TruncateToWidth(cells[i], widths[i]);
    line += cell;
    if (i + 1 < widths.size()) line.append(widths[i] - DisplayWidth(cell) + kColumnGap, ' ');
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out += line;
  out += '\n';
}

}  // namespace

std::string RenderTable(const Table& table, size_t max_width) {
  size_t columns = table.headers.size();
  for (const auto& row : table.rows) columns = std::max(columns, row.size());
  if (columns == 0) return "";

  // Sanitize once; every row gets exactly `columns` cells.
  std::vector<std::vector<std::string>> lines;
  lines.reserve(table.rows.size() + 1);
  auto add = [&](const std::vector<std::string>& cells, bool header) {
    std::vector<std::string> clean(columns);
    for (size_t i = 0; i < cells.size(); ++i) {
      clean[i] = SanitizeForTerminal(header ? UpperCase(cells[i]) : cells[i]);
    }
    lines.push_back(std::move(clean));
  };
  add(table.headers, true);
  for (const auto& row : table.rows) add(row, false);

  std::vector<size_t> widths(columns, 0);
  for (const auto& cells : lines) {
    for (size_t i = 0; i < columns; ++i) widths[i] = std::max(widths[i], DisplayWidth(cells[i]));
  }
  std::vector<size_t> minimum(columns);
  for (size_t i = 0; i < columns; ++i) minimum[i] = std::min(widths[i], kMinColumnWidth);

  size_t total = kColumnGap * (columns - 1);
  for (size_t w : widths) total += w;
  while (total > max_width) {
    // The widest column that can still shrink; on a tie the rightmost, so names on the left
    // stay readable longest.
    size_t widest = columns;
    for (size_t i = 0; i < columns; ++i) {
      if (widths[i] > minimum[i] && (widest == columns || widths[i] >= widths[widest])) widest = i;
    }
    if (widest == columns) break;
    --widths[widest];
    --total;
  }

  std::string out;
  for (const auto& cells : lines) AppendLine(cells, widths, out);
  return out;
}

}  // namespace fleetwatch::cli
