#include "agent/agent_metrics.h"

#include <array>
#include <string_view>

#include "expose/dcgm.h"
#include "expose/family.h"
#include "expose/text_format.h"

namespace fleetwatch::agent {
namespace {

using expose::AppendSample;
using expose::Format;
using expose::MetricType;

void Family(std::string& out, std::string name, MetricType type, std::string help,
            std::string_view samples) {
  expose::AppendFamily(out, expose::FamilyHeader(std::move(name), type, std::move(help)), samples,
                       Format::kText004);
}

std::string One(std::string_view name, double value, std::string_view pairs = {}) {
  std::string line;
  AppendSample(line, name, pairs, value);
  return line;
}

double Seconds(TimeMicros micros) { return static_cast<double>(micros) / 1e6; }

}  // namespace

std::string RenderAgentMetrics(const AgentMetricsInput& in) {
  std::string out;
  const std::array<expose::Label, 4> info = {{{"version", in.version},
                                              {"agent_id", in.agent_id},
                                              {"hostname", in.hostname},
                                              {"cgroup", in.cgroup}}};
  Family(out, "fleetwatch_agent_info", MetricType::kGauge,
         "The agent's version and identity (always 1)",
         One("fleetwatch_agent_info", 1, expose::RenderLabelPairs(info)));
  Family(out, "fleetwatch_agent_start_time_seconds", MetricType::kGauge,
         "When the agent started, seconds since the epoch",
         One("fleetwatch_agent_start_time_seconds", Seconds(in.started_at)));
  Family(out, "fleetwatch_agent_gpus", MetricType::kGauge, "GPUs the agent found on the host",
         One("fleetwatch_agent_gpus", in.gpus));
  std::string jobs;
  AppendSample(jobs, "fleetwatch_agent_jobs", "state=\"running\"",
               static_cast<double>(in.jobs_running));
  AppendSample(jobs, "fleetwatch_agent_jobs", "state=\"exited\"",
               static_cast<double>(in.jobs_exited));
  AppendSample(jobs, "fleetwatch_agent_jobs", "state=\"failed_to_start\"",
               static_cast<double>(in.jobs_failed_to_start));
  AppendSample(jobs, "fleetwatch_agent_jobs", "state=\"lost\"", static_cast<double>(in.jobs_lost));
  Family(out, "fleetwatch_agent_jobs", MetricType::kGauge,
         "Jobs the agent holds (not yet acknowledged by the server), by state", jobs);
  if (!in.dcgm_enabled) return out;

  bool valid = false;
  if (in.dcgm_fresh && in.dcgm_text) {
    Result<expose::DcgmText> parsed = expose::ParseDcgmText(*in.dcgm_text);
    valid = parsed.ok();
    for (const expose::DcgmFamily& f :
         valid ? parsed->families : std::vector<expose::DcgmFamily>{}) {
      if (f.name.starts_with("fleetwatch_")) valid = false;
    }
  }
  Family(out, "fleetwatch_agent_dcgm_up", MetricType::kGauge,
         "Whether the agent has a recent scrape of the host's dcgm-exporter",
         One("fleetwatch_agent_dcgm_up", in.dcgm_fresh ? 1 : 0));
  Family(out, "fleetwatch_agent_dcgm_text_valid", MetricType::kGauge,
         "Whether the host's DCGM text parses and is appended below",
         One("fleetwatch_agent_dcgm_text_valid", valid ? 1 : 0));
  Family(
      out, "fleetwatch_agent_dcgm_exporter_restarts_total", MetricType::kCounter,
      "Times the agent restarted the dcgm-exporter it runs",
      One("fleetwatch_agent_dcgm_exporter_restarts_total", static_cast<double>(in.dcgm_restarts)));
  Family(
      out, "fleetwatch_agent_dcgm_scrape_errors_total", MetricType::kCounter,
      "Scrapes of dcgm-exporter that failed",
      One("fleetwatch_agent_dcgm_scrape_errors_total", static_cast<double>(in.dcgm_scrape_errors)));
  if (in.dcgm_collected_at) {
    Family(
        out, "fleetwatch_agent_dcgm_last_scrape_timestamp_seconds", MetricType::kGauge,
        "When dcgm-exporter was last scraped successfully, seconds since the epoch",
        One("fleetwatch_agent_dcgm_last_scrape_timestamp_seconds", Seconds(*in.dcgm_collected_at)));
  }
  if (valid) {
    out += *in.dcgm_text;
    if (!out.empty() && out.back() != '\n') out += '\n';
  }
  return out;
}

}  // namespace fleetwatch::agent
