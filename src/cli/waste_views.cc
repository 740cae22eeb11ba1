#include "cli/waste_views.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "cli/display_format.h"
#include "cli/json_fields.h"
#include "cli/metrics_view.h"
#include "cli/terminal_text.h"

namespace fleetwatch::cli {
namespace {

std::string Hours(std::optional<double> seconds) {
  if (!seconds) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f", *seconds / 3600.0);
  return buf;
}

std::vector<std::string> Figures(const boost::json::value& item) {
  std::optional<double> ratio = NumberField(item, "idle_ratio");
  std::optional<double> cost = NumberField(item, "idle_cost");
  return {Hours(NumberField(item, "held_seconds")), Hours(NumberField(item, "idle_seconds")),
          ratio ? FormatPercent(std::clamp(*ratio, 0.0, 1.0) * 100.0) : "-",
          cost ? FormatDollars(*cost) : "-"};
}

}  // namespace

Table WasteTable(const boost::json::value& report) {
  const std::string by = StringField(report, "by");
  std::vector<std::string> names = {"project_name"};
  if (by == "user" || by == "run") names.push_back("user_name");
  if (by == "run") names.push_back("run_name");
  Table table;
  for (const std::string& n : names) table.headers.push_back(n.substr(0, n.find('_')));
  for (const char* h : {"gpu hours", "idle hours", "idle %", "idle cost"}) {
    table.headers.push_back(h);
  }
  for (const boost::json::value& item : ArrayField(report, "items")) {
    std::vector<std::string> row;
    for (const std::string& n : names) row.push_back(SanitizeForTerminal(StringField(item, n)));
    for (std::string& f : Figures(item)) row.push_back(std::move(f));
    table.rows.push_back(std::move(row));
  }
  std::vector<std::string> total(names.size());
  total[0] = "total";
  const boost::json::value* t = Field(report, "total");
  for (std::string& f : Figures(t != nullptr ? *t : boost::json::value())) {
    total.push_back(std::move(f));
  }
  table.rows.push_back(std::move(total));
  return table;
}

}  // namespace fleetwatch::cli
