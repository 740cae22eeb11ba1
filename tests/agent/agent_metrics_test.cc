// The agent's own exposition: health families, and the host's DCGM text appended only when it
// cannot break the scrape.
#include "agent/agent_metrics.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/process.h"

namespace fleetwatch::agent {
namespace {

const std::string kDcgm =
    "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
    "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-0\",Hostname=\"h\\\"\\n\"} 81\n";

AgentMetricsInput Input() {
  AgentMetricsInput in;
  in.version = "0.1.0";
  in.agent_id = "a\"\n}";  // escaped like any label value
  in.hostname = "node-1";
  in.cgroup = "v2";
  in.started_at = 1'700'000'000'500'000;
  in.gpus = 4;
  in.jobs_running = 2;
  in.jobs_exited = 1;
  in.dcgm_enabled = true;
  in.dcgm_fresh = true;
  in.dcgm_restarts = 3;
  in.dcgm_scrape_errors = 5;
  in.dcgm_collected_at = 1'700'000'010'000'000;
  in.dcgm_text = std::make_shared<const std::string>(kDcgm);
  return in;
}

TEST(AgentMetrics, HealthThenTheHostsDcgmTextAndPromtoolAcceptsIt) {
  std::string text = RenderAgentMetrics(Input());
  EXPECT_NE(text.find("fleetwatch_agent_info{version=\"0.1.0\",agent_id=\"a\\\"\\n}\","
                      "hostname=\"node-1\",cgroup=\"v2\"} 1.0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("fleetwatch_agent_start_time_seconds 1700000000.5\n"), std::string::npos);
  EXPECT_NE(text.find("fleetwatch_agent_jobs{state=\"exited\"} 1.0\n"), std::string::npos);
  EXPECT_NE(text.find("fleetwatch_agent_dcgm_up 1.0\n"), std::string::npos);
  EXPECT_NE(text.find("fleetwatch_agent_dcgm_text_valid 1.0\n"), std::string::npos);
  EXPECT_NE(text.find("fleetwatch_agent_dcgm_exporter_restarts_total 3.0\n"), std::string::npos);
  EXPECT_NE(text.find("fleetwatch_agent_dcgm_last_scrape_timestamp_seconds 1700000010.0\n"),
            std::string::npos);
  ASSERT_GE(text.size(), kDcgm.size());
  EXPECT_EQ(text.substr(text.size() - kDcgm.size()), kDcgm);  // unfiltered, last

  ASSERT_TRUE(std::filesystem::exists("/usr/bin/promtool")) << "Debian's prometheus is missing";
  testing::ProcessResult check =
      testing::RunProcess("/usr/bin/promtool", {"check", "metrics"}, {}, text);
  // Lint findings only for DCGM's own camelCase labels.
  EXPECT_TRUE(check.exit_code == 0 || check.exit_code == 3) << check.out << check.err;
  EXPECT_EQ((check.out + check.err).find("fleetwatch_"), std::string::npos)
      << check.out << check.err;
}

TEST(AgentMetrics, TextThatWouldBreakTheScrapeIsLeftOutAndSaidSo) {
  for (const std::string& bad :
       {std::string("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\" 81\n"),
        std::string("# TYPE fleetwatch_agent_gpus gauge\nfleetwatch_agent_gpus 99\n")}) {
    AgentMetricsInput in = Input();
    in.dcgm_text = std::make_shared<const std::string>(bad);
    std::string text = RenderAgentMetrics(in);
    EXPECT_NE(text.find("fleetwatch_agent_dcgm_text_valid 0.0\n"), std::string::npos) << text;
    EXPECT_EQ(text.find(bad), std::string::npos) << text;
  }
  AgentMetricsInput stale = Input();
  stale.dcgm_fresh = false;
  stale.dcgm_text.reset();
  std::string text = RenderAgentMetrics(stale);
  EXPECT_NE(text.find("fleetwatch_agent_dcgm_up 0.0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("DCGM_FI_"), std::string::npos);
  AgentMetricsInput off = Input();
  off.dcgm_enabled = false;
  EXPECT_EQ(RenderAgentMetrics(off).find("dcgm"), std::string::npos);
}

}  // namespace
}  // namespace fleetwatch::agent
