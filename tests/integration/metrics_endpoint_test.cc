// GET /metrics end to end: the real server with a job running on its embedded local fleet.
#include <signal.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http/client.h"
#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

using std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr char kScrapeToken[] = "scrape-token-for-tests";

std::map<std::string, std::string> ServerEnv(bool enabled) {
  std::map<std::string, std::string> env = {
      {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
      {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
      {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"},
      {"DSTACK_PROMETHEUS_AUTH_TOKEN", kScrapeToken},
      {"FLEETWATCH_OPENMETRICS", "1"},
  };
  env["DSTACK_ENABLE_PROMETHEUS_METRICS"] = enabled ? "" : "\x01unset";
  return env;
}

std::string Gunzip(const std::string& data) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return "<inflateInit2 failed>";
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "<inflate failed: " + std::to_string(rc) + ">";
}

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::filesystem::path candidate = std::filesystem::path(dirs.substr(start, end - start)) / name;
    std::error_code ec;
    if (!candidate.parent_path().empty() && std::filesystem::is_regular_file(candidate, ec)) {
      return candidate.string();
    }
    start = end + 1;
  }
  return "";
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void StartServer(bool enabled) {
    server_ = std::make_unique<ServerProcess>(data_.str(), home_.str(), kAdminToken,
                                              std::vector<std::string>{}, ServerEnv(enabled));
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
  }

  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  http::Response Scrape(const Headers& headers, const std::string& path = "/metrics") {
    Result<http::Client> client = http::Client::Create(server_->url());
    EXPECT_TRUE(client.ok());
    Result<http::Response> r = client->Send("GET", path, {}, headers);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : http::Response{};
  }

  static std::string Header(const http::Response& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return "";
  }

  static Headers Bearer(const std::string& token, Headers more = {}) {
    more.emplace_back("Authorization", "Bearer " + token);
    return more;
  }

  TempDir data_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

TEST_F(MetricsEndpointTest, NotFoundWithoutTheSwitchButTheTokenIsCheckedFirst) {
  StartServer(false);
  EXPECT_EQ(server_->Output().find("/metrics"), std::string::npos) << server_->Output();
  EXPECT_EQ(Scrape(Bearer(kScrapeToken)).status, 404);
  http::Response no_token = Scrape({});
  EXPECT_EQ(no_token.status, 403);
  EXPECT_NE(no_token.body.find("Access denied"), std::string::npos) << no_token.body;
  // The replica's own figures follow the same rules.
  EXPECT_EQ(Scrape(Bearer(kScrapeToken), "/metrics/replica").status, 404);
  EXPECT_EQ(Scrape({}, "/metrics/replica").status, 403);
}

TEST_F(MetricsEndpointTest, ServesTheRunningJobToTheRightTokenOnly) {
  StartServer(true);
  EXPECT_NE(server_->Output().find(server_->url() + "/metrics"), std::string::npos)
      << server_->Output();
  EXPECT_NE(server_->Output().find("UI:    " + server_->url() + "/\n"), std::string::npos)
      << server_->Output();

  http::Response none = Scrape({});
  EXPECT_EQ(none.status, 403);
  EXPECT_NE(none.body.find("Access denied"), std::string::npos) << none.body;
  http::Response basic = Scrape({{"Authorization", "Basic YWRtaW46YWRtaW4="}});
  EXPECT_EQ(basic.status, 403);
  EXPECT_NE(basic.body.find("Access denied"), std::string::npos) << basic.body;
  http::Response wrong = Scrape(Bearer("not-the-token"));
  EXPECT_EQ(wrong.status, 403);
  EXPECT_NE(wrong.body.find("Invalid token"), std::string::npos) << wrong.body;
  // The API's user tokens are not scrape tokens.
  EXPECT_EQ(Scrape(Bearer(kAdminToken)).status, 403);

  ApiReply submitted =
      admin_->Send("POST", "/api/project/main/runs",
                   "type: task\nname: busy\ncommands: ['sleep 60']\n", "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;

  // Wait for the running job's first point to reach the exposition.
  const std::string run_counter =
      "dstack_run_count_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"} 1.0\n";
  http::Response ok;
  auto deadline = steady_clock::now() + std::chrono::seconds(30);
  while (steady_clock::now() < deadline) {
    ok = Scrape(Bearer(kScrapeToken));
    if (ok.status == 200 && ok.body.find("dstack_job_cpu_time_seconds_total{") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Header(ok, "content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(ok.body.find(run_counter), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("dstack_job_cpu_time_seconds_total{dstack_project_name=\"main\","
                         "dstack_user_name=\"admin\",dstack_run_name=\"busy\","),
            std::string::npos)
      << ok.body;
  EXPECT_NE(ok.body.find("dstack_instance_duration_seconds_total{dstack_project_name=\"main\","
                         "dstack_fleet_name=\"local\","),
            std::string::npos)
      << ok.body;
  // What this server process saw itself is on /metrics/replica, not /metrics.
  EXPECT_EQ(ok.body.find("fleetwatch_agent_poll_errors_total"), std::string::npos) << ok.body;
  EXPECT_EQ(Scrape({}, "/metrics/replica").status, 403);
  EXPECT_EQ(Scrape(Bearer("not-the-token"), "/metrics/replica").status, 403);
  http::Response own = Scrape(Bearer(kScrapeToken), "/metrics/replica");
  ASSERT_EQ(own.status, 200) << own.body;
  EXPECT_EQ(Header(own, "content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(own.body.find("\nfleetwatch_agent_poll_errors_total{dstack_project_name=\"main\","
                          "dstack_fleet_name=\"local\",dstack_instance_name=\"local-0\"} "),
            std::string::npos)
      << own.body;
  EXPECT_NE(own.body.find("fleetwatch_replica_info{replica_id=\"\",version=\"0.1.0\","),
            std::string::npos)
      << own.body;
  EXPECT_EQ(own.body.find("dstack_run_count_total"), std::string::npos) << own.body;
  EXPECT_NE(ok.body.find("\nfleetwatch_build_info{version=\"0.1.0\",revision=\""),
            std::string::npos)
      << ok.body;
  EXPECT_EQ(ok.body.find("# EOF"), std::string::npos);

  // Prometheus' own parser accepts the scrape.
  std::string promtool = FindOnPath("promtool");
  if (!promtool.empty()) {
    ProcessResult check = RunProcess(promtool, {"check", "metrics"}, {}, ok.body);
    std::string report = check.out + check.err;
    EXPECT_EQ(report.find("error while linting"), std::string::npos) << report << ok.body;
    EXPECT_EQ(report.find("parse"), std::string::npos) << report << ok.body;
    // Findings only for dstack's own names, never for ours.
    EXPECT_EQ(report.find("fleetwatch_"), std::string::npos) << report;
    EXPECT_EQ(report.find("dstack_runs "), std::string::npos) << report;
    EXPECT_EQ(report.find("dstack_instance_status "), std::string::npos) << report;
  }

  // gzip: the same exposition (the body is cached until the next change, so ask for both
  // forms back to back and compare the families that do not move).
  http::Response gz = Scrape(Bearer(kScrapeToken, {{"Accept-Encoding", "gzip, deflate"}}));
  ASSERT_EQ(gz.status, 200);
  EXPECT_EQ(Header(gz, "content-encoding"), "gzip");
  std::string inflated = Gunzip(gz.body);
  EXPECT_EQ(inflated.rfind("# HELP dstack_instance_duration_seconds_total ", 0), 0u) << inflated;
  EXPECT_NE(inflated.find(run_counter), std::string::npos) << inflated;
  http::Response plain = Scrape(Bearer(kScrapeToken));
  http::Response gz2 = Scrape(Bearer(kScrapeToken, {{"Accept-Encoding", "gzip"}}));
  // Equal unless a tick changed the snapshot in between; then one more pair must match.
  if (Gunzip(gz2.body) != plain.body) {
    plain = Scrape(Bearer(kScrapeToken));
    gz2 = Scrape(Bearer(kScrapeToken, {{"Accept-Encoding", "gzip"}}));
  }
  EXPECT_EQ(Gunzip(gz2.body), plain.body);

  // OpenMetrics when asked.
  http::Response om = Scrape(Bearer(
      kScrapeToken, {{"Accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"}}));
  ASSERT_EQ(om.status, 200);
  EXPECT_EQ(Header(om, "content-type"),
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
  ASSERT_GE(om.body.size(), 6u);
  EXPECT_EQ(om.body.substr(om.body.size() - 6), "# EOF\n");
  EXPECT_NE(om.body.find("# TYPE dstack_run_count counter\n"), std::string::npos) << om.body;

  admin_->PostJson("/api/project/main/runs/busy/stop", boost::json::object());
}

}  // namespace
}  // namespace fleetwatch::testing
