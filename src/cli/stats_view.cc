#include "cli/stats_view.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "cli/json_fields.h"
#include "cli/metrics_view.h"
#include "cli/table.h"
#include "cli/terminal_text.h"
#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

std::string Fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// Three significant figures at most: "2.52", "12.5", "850".
std::string Short(double value) {
  const double a = std::fabs(value);
  return Fixed(value, a < 10 ? 2 : a < 100 ? 1 : 0);
}

double Number(const boost::json::value& object, std::string_view key) {
  return NumberField(object, key).value_or(0);
}

bool Flag(const boost::json::value& object, std::string_view key) {
  const boost::json::value* v = Field(object, key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

std::string Cores(double cores) { return Fixed(cores, 1); }

}  // namespace

std::string FormatEnergy(double joules, bool estimated) {
  std::string text;
  if (joules < 1e3) {
    text = Fixed(joules, 0) + " J";
  } else if (joules < 1e6) {
    text = Short(joules / 1e3) + " kJ";
  } else if (joules < 1e9) {
    text = Short(joules / 1e6) + " MJ";
  } else {
    text = Short(joules / 1e9) + " GJ";
  }
  return estimated ? "~" + text : text;
}

std::string FormatCarbon(double grams) {
  if (grams < 1e3) return Fixed(grams, grams < 10 ? 1 : 0) + " g";
  if (grams < 1e6) return Short(grams / 1e3) + " kg";
  return Short(grams / 1e6) + " t";
}

std::string RenderStats(const boost::json::value& s, size_t width) {
  std::string out = SanitizeForTerminal(StringField(s, "run_name", "-")) + " (" +
                    SanitizeForTerminal(StringField(s, "status", "-")) + "): GPU energy " +
                    FormatEnergy(Number(s, "energy_joules"), Flag(s, "energy_estimated")) +
                    ", carbon " + FormatCarbon(Number(s, "carbon_grams")) + ", cost $" +
                    Fixed(Number(s, "cost_dollars"), 2) + "\n\n";
  Table jobs{
      {"job", "status", "duration", "cpu mean/peak", "memory peak", "energy", "carbon", "cost"},
      {}};
  Table gpus{{"job", "gpu", "util mean/max", "idle", "memory peak", "energy", "xid"}, {}};
  std::string notes;
  for (const boost::json::value& job : ArrayField(s, "jobs")) {
    const std::string name = StringField(job, "job_name", "-");
    const int64_t limit = IntField(job, "memory_limit_bytes").value_or(0);
    const int64_t peak = IntField(job, "memory_peak_bytes").value_or(0);
    jobs.rows.push_back({
        name,
        StringField(job, "status", "-"),
        FormatDuration(static_cast<TimeMicros>(Number(job, "duration_seconds") * 1e6)),
        Cores(Number(job, "cpu_mean_cores")) + "/" + Cores(Number(job, "cpu_peak_cores")),
        limit > 0 ? FormatMemoryUsage(peak, limit) : FormatBytesShort(peak),
        FormatEnergy(Number(job, "energy_joules"), Flag(job, "energy_estimated")),
        FormatCarbon(Number(job, "carbon_grams")),
        "$" + Fixed(Number(job, "cost_dollars"), 2),
    });
    for (const boost::json::value& gpu : ArrayField(job, "gpus")) {
      const int64_t total = IntField(gpu, "memory_total_bytes").value_or(0);
      const int64_t used = IntField(gpu, "memory_peak_bytes").value_or(0);
      gpus.rows.push_back({
          name,
          std::to_string(IntField(gpu, "index").value_or(0)),
          FormatPercent(Number(gpu, "util_mean_percent")) + "/" +
              FormatPercent(Number(gpu, "util_max_percent")),
          FormatPercent(Number(gpu, "idle_share") * 100),
          total > 0 ? FormatMemoryUsage(used, total) : FormatBytesShort(used),
          FormatEnergy(Number(gpu, "energy_joules"), Flag(gpu, "energy_estimated")),
          std::to_string(IntField(gpu, "xid_events").value_or(0)),
      });
    }
    for (const boost::json::value& note : ArrayField(job, "notes")) {
      notes += "  " + SanitizeForTerminal(name) + ": " +
               SanitizeForTerminal(StringField(note, "text")) + "\n";
    }
  }
  out += RenderTable(jobs, width);
  if (!gpus.rows.empty()) out += "\n" + RenderTable(gpus, width);
  if (!notes.empty()) out += "\nNotes:\n" + notes;
  return out;
}

}  // namespace fleetwatch::cli
