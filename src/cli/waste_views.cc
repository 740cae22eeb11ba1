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

std::string RenderWasteNotes(const boost::json::value& report, size_t width) {
  const boost::json::value* notes = Field(report, "notes");
  if (notes == nullptr || !notes->is_array()) return "";
  int64_t jobs = 0;
  Table table;
  table.headers = {"project", "note", "jobs", "runs", "gpu hours", "cost", "example runs"};
  for (const boost::json::value& project : notes->get_array()) {
    jobs += IntField(project, "jobs").value_or(0);
    for (const boost::json::value& item : ArrayField(project, "items")) {
      const int64_t note_jobs = IntField(item, "jobs").value_or(0);
      if (note_jobs <= 0) continue;
      std::string examples;
      for (const boost::json::value& run : ArrayField(item, "example_runs")) {
        if (!run.is_string()) continue;
        if (!examples.empty()) examples += ", ";
        examples += std::string(run.get_string());
      }
      const std::optional<double> cost = NumberField(item, "cost");
      table.rows.push_back(
          {StringField(project, "project_name"), StringField(item, "rule"),
           std::to_string(note_jobs), std::to_string(IntField(item, "runs").value_or(0)),
           Hours(NumberField(item, "held_seconds")), cost ? FormatDollars(*cost) : "-", examples});
    }
  }
  const std::string ended =
      std::to_string(jobs) + (jobs == 1 ? " job" : " jobs") + " that ended in the window";
  if (table.rows.empty()) return "\nno right-sizing notes on the " + ended + "\n";
  return "\nright-sizing notes of the " + ended + ":\n" + RenderTable(table, width);
}

}  // namespace fleetwatch::cli
