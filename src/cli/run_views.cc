#include "cli/run_views.h"

#include <algorithm>
#include <boost/json.hpp>

#include "cli/display_format.h"
#include "cli/json_fields.h"
#include "cli/metrics_view.h"
#include "cli/terminal_text.h"
#include "model/status.h"
#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

// "1h 2m" from submitted_at to finished_at, or to `now` while unfinished; "-" when unknown.
std::string DurationText(const boost::json::value& entity, bool finished, TimeMicros now) {
  Result<TimeMicros> start = ParseTimestamp(StringField(entity, "submitted_at"));
  if (!start.ok()) return "-";
  std::string finished_at = StringField(entity, "finished_at");
  if (!finished_at.empty()) {
    Result<TimeMicros> end = ParseTimestamp(finished_at);
    return end.ok() ? FormatDuration(*end - *start) : "-";
  }
  return finished ? "-" : FormatDuration(now - *start);
}

bool RunFinished(const std::string& status) {
  std::optional<model::RunStatus> parsed = model::Parse<model::RunStatus>(status);
  return parsed && model::IsFinished(*parsed);
}

bool JobFinished(const std::string& status) {
  std::optional<model::JobStatus> parsed = model::Parse<model::JobStatus>(status);
  return parsed && model::IsFinished(*parsed);
}

std::string OrDash(std::string text) { return text.empty() ? "-" : text; }

// The run's idle GPU share ("37%") and its cost ("$1.20"); "-" when the server says none.
std::string IdleShareText(const boost::json::value& run) {
  std::optional<double> ratio = NumberField(run, "gpu_idle_ratio");
  return ratio ? FormatPercent(std::clamp(*ratio, 0.0, 1.0) * 100.0) : "-";
}
std::string IdleCostText(const boost::json::value& run) {
  std::optional<double> cost = NumberField(run, "idle_cost");
  return cost ? FormatDollars(*cost) : "-";
}

}  // namespace

std::string FormatGpuRequest(const boost::json::value* gpu) {
  if (gpu == nullptr || gpu->is_null()) return "-";
  if (gpu->is_string()) return gpu->as_string().empty() ? "-" : std::string(gpu->as_string());
  if (gpu->is_int64() || gpu->is_uint64()) {
    std::string count = boost::json::serialize(*gpu);
    return count == "0" ? "-" : count;
  }
  if (!gpu->is_object()) return "-";
  std::optional<int64_t> count = IntField(*gpu, "count");
  if (count && *count == 0) return "-";
  std::string text = StringField(*gpu, "name");
  std::optional<int64_t> memory = IntField(*gpu, "memory_bytes");
  if (!memory) memory = IntField(*gpu, "memory");
  std::string memory_text = memory ? FormatBytes(*memory) : StringField(*gpu, "memory");
  if (!memory_text.empty()) text += (text.empty() ? "" : ":") + memory_text;
  if (count) text += (text.empty() ? "" : ":") + std::to_string(*count);
  return OrDash(text);
}

Table RunsTable(const boost::json::array& runs, TimeMicros now, size_t status_width) {
  auto cell = [status_width](const std::string& message) {
    return TruncateToWidth(SanitizeForTerminal(message), status_width);
  };
  Table table;
  table.headers = {"run", "user",      "type",     "status", "instance",
                   "gpu", "submitted", "duration", "idle",   "idle cost"};
  for (const boost::json::value& run : runs) {
    // Lists carry "resources" and leave "configuration" out; older servers sent only the latter.
    const boost::json::value* configuration = Field(run, "configuration");
    const boost::json::value* resources = Field(run, "resources");
    if ((resources == nullptr || resources->is_null()) && configuration != nullptr) {
      resources = Field(*configuration, "resources");
    }
    std::string type = StringField(run, "run_type");
    if (type.empty() && configuration != nullptr) type = StringField(*configuration, "type");
    std::string status = StringField(run, "status");
    const boost::json::array& jobs = ArrayField(run, "jobs");
    std::string instance = jobs.size() == 1 ? OrDash(StringField(jobs[0], "instance_name")) : "";

    table.rows.push_back({
        StringField(run, "run_name"),
        StringField(run, "user_name"),
        OrDash(type),
        cell(RunStatusMessage(run)),
        instance,
        FormatGpuRequest(resources != nullptr ? Field(*resources, "gpu") : nullptr),
        FormatAge(StringField(run, "submitted_at"), now),
        DurationText(run, RunFinished(status), now),
        IdleShareText(run),
        IdleCostText(run),
    });
    if (jobs.size() < 2) continue;
    for (const boost::json::value& job : jobs) {
      std::optional<int64_t> job_num = IntField(job, "job_num");
      std::optional<int64_t> replica_num = IntField(job, "replica_num");
      std::string job_status = StringField(job, "status");
      table.rows.push_back({
          "  job=" + (job_num ? std::to_string(*job_num) : "?") +
              " replica=" + (replica_num ? std::to_string(*replica_num) : "?"),
          "",
          "",
          cell(JobStatusMessage(job)),
          OrDash(StringField(job, "instance_name")),
          "",
          FormatAge(StringField(job, "submitted_at"), now),
          DurationText(job, JobFinished(job_status), now),
          "",
          "",
      });
    }
  }
  return table;
}

}  // namespace fleetwatch::cli
