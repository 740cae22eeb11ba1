// A real Prometheus (Debian's) scraping three `fleetwatch server` replicas on one PostgreSQL
// database through one address, as behind a load balancer (docs/scale-out.md "/metrics on every
// replica"): a round-robin proxy sends each scrape to the next replica, while runs start, finish
// and are submitted, jobs report points and hosts' DCGM counters climb. No counter may go back
// between two scrapes: resets() of every counter family is 0 and no raw sample is below the one
// before it. Real agents on the fake NVML, a fake dcgm-exporter (the hardware edge).
#include <signal.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/message.h"
#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "integration/replica_support.h"
#include "support/process.h"
#include "support/round_robin_proxy.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr int kReplicas = 3;
constexpr int kHosts = 3;
constexpr int kScrapeSeconds = 30;

// Host `host`'s DCGM text: its one fake GPU's energy counter at `joules`, climbing.
std::string DcgmText(int host, int64_t joules) {
  const std::string labels =
      "{gpu=\"0\",UUID=\"GPU-fake-0\",device=\"nvidia0\",modelName=\"NVIDIA "
      "A100-SXM4-80GB\",Hostname=\"host-" +
      std::to_string(host) + "\"}";
  return "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in "
         "mJ).\n"
         "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
         "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" +
         labels + " " + std::to_string(joules) +
         "\n"
         "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
         "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
         "DCGM_FI_DEV_GPU_UTIL" +
         labels + " 40\n";
}

// The names of the families `body` types as counters.
std::set<std::string> CounterFamilies(const std::string& body) {
  std::set<std::string> names;
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("# TYPE ") || !line.ends_with(" counter")) continue;
    names.insert(line.substr(7, line.size() - 7 - 8));
  }
  return names;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t at = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(at, values.size() - 1)];
}

class ReplicaPrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = CreateReplicaDatabase();
    if (url_.empty()) return;  // skipped, or failed
    ASSERT_TRUE(fs::exists("/usr/bin/prometheus")) << "Debian's prometheus is missing";
    for (int i = 0; i < kHosts; ++i) {
      AgentProcessOptions options = AgentProcessOptions::FakeGpus(2, FAKE_NVML_LIBRARY);
      UseFakeDcgm(options, dir_.path() / ("host-" + std::to_string(i)), DcgmText(i, 1000));
      agents_.push_back(std::make_unique<AgentProcess>(std::move(options)));
      ASSERT_GT(agents_.back()->port(), 0) << agents_.back()->Output();
    }
    for (int r = 0; r < kReplicas; ++r) {
      data_.push_back(std::make_unique<TempDir>());
      replicas_.push_back(
          StartReplica(url_, data_.back()->str(), home_.str(), kAdminToken,
                       {// Ticks longer than the scrape interval: without the barrier, replicas'
                        // snapshots are up to 2 s apart, and scrapes in turn see counters go back.
                        {"FLEETWATCH_POLL_INTERVAL_MS", "2000"},
                        {"FLEETWATCH_LEASE_SECONDS", "5"},
                        // Under Prometheus' 1 s scrape timeout.
                        {"FLEETWATCH_METRICS_BARRIER_MS", "900"}}));
      ASSERT_TRUE(replicas_.back()->started()) << replicas_.back()->Output();
    }
  }

  void TearDown() override {
    if (prometheus_) prometheus_->Stop(SIGTERM);
  }

  // PromQL through Prometheus' HTTP API: the result's list (empty, and a failure, on an error).
  json::array Query(const std::string& promql) {
    Result<http::Client> client =
        http::Client::Create("http://127.0.0.1:" + std::to_string(prometheus_port_));
    EXPECT_TRUE(client.ok());
    if (!client.ok()) return {};
    Result<http::Response> r =
        client->Send("GET", "/api/v1/query?query=" + http::UrlEncode(promql), {}, {});
    if (!r.ok() || r->status != 200) {
      ADD_FAILURE() << promql << ": " << (r.ok() ? r->body : r.status().ToString());
      return {};
    }
    return json::parse(r->body).at("data").at("result").as_array();
  }

  std::string url_;
  TempDir dir_, home_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  std::vector<std::unique_ptr<TempDir>> data_;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
  std::unique_ptr<ChildProcess> prometheus_;
  uint16_t prometheus_port_ = 0;
};

TEST_F(ReplicaPrometheusTest, CountersNeverGoBackWhenScrapesGoToEachReplicaInTurn) {
  ApiClient admin(replicas_[0]->url(), kAdminToken);
  std::vector<uint16_t> agent_ports;
  std::vector<std::string> urls;
  for (const auto& agent : agents_) agent_ports.push_back(agent->port());
  for (const auto& replica : replicas_) urls.push_back(replica->url());
  ASSERT_EQ(
      admin.Send("POST", "/api/project/main/fleets", PoolFleetYaml(agent_ports), "application/yaml")
          .status,
      201);
  // Every replica holds one host.
  ASSERT_TRUE(WaitUntilEachLeases(urls, kAdminToken, 1));
  // Long runs on one GPU of each host.
  for (int i = 0; i < kHosts; ++i) {
    ApiReply r = admin.Send("POST", "/api/project/main/runs",
                            "type: task\nname: long-" + std::to_string(i) +
                                "\ncommands: ['sleep 300']\nresources: {gpu: 1}\n",
                            "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  // Meanwhile: short runs submitted through every replica in turn, and each host's DCGM energy
  // counter climbing.
  std::atomic<bool> moving{true};
  std::thread mover([&] {
    int64_t joules = 1000;
    int n = 0;
    while (moving) {
      joules += 500;
      for (int i = 0; i < kHosts; ++i) {
        WriteFile(dir_.path() / ("host-" + std::to_string(i)) / "dcgm.txt", DcgmText(i, joules));
      }
      if (n % 4 == 0) {
        ApiClient client(replicas_[static_cast<size_t>(n / 4) % kReplicas]->url(), kAdminToken);
        client.Send("POST", "/api/project/main/runs",
                    "type: task\nname: short-" + std::to_string(n) +
                        "\ncommands: ['sleep 1']\nresources: {gpu: 1}\n",
                    "application/yaml");
      }
      ++n;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });

  std::vector<uint16_t> ports;
  for (const auto& replica : replicas_) ports.push_back(replica->port());
  RoundRobinProxy proxy(ports);
  prometheus_port_ = FreePort();
  WriteFile(dir_.path() / "prometheus.yml",
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
            "  - job_name: fleetwatch\n    static_configs:\n      - targets: ['127.0.0.1:" +
                std::to_string(proxy.port()) + "']\n");
  const auto started = steady_clock::now();
  prometheus_ = std::make_unique<ChildProcess>(
      "/usr/bin/prometheus",
      std::vector<std::string>{"--config.file=" + (dir_.path() / "prometheus.yml").string(),
                               "--storage.tsdb.path=" + (dir_.path() / "tsdb").string(),
                               "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port_),
                               "--log.level=warn"},
      std::map<std::string, std::string>{});
  std::this_thread::sleep_for(std::chrono::seconds(kScrapeSeconds));
  moving = false;
  mover.join();

  // Which replica each scrape reached, and what the barrier cost each replica.
  const std::vector<uint64_t> connections = proxy.connections();
  for (size_t r = 0; r < connections.size(); ++r) {
    std::printf("replica %zu: %llu scrapes through the proxy\n", r,
                static_cast<unsigned long long>(connections[r]));
    EXPECT_GE(connections[r], 3u) << "scrapes did not alternate";
    Result<http::Client> client = http::Client::Create(replicas_[r]->url());
    ASSERT_TRUE(client.ok());
    Result<http::Response> own = client->Send("GET", "/metrics/replica", {}, {});
    ASSERT_TRUE(own.ok());
    for (const char* name :
         {"fleetwatch_scrape_barrier_scrapes_total", "fleetwatch_scrape_barrier_expired_total",
          "fleetwatch_scrape_barrier_wait_seconds_total"}) {
      const size_t at = own->body.find(std::string("\n") + name + " ");
      std::printf("  %s\n",
                  at == std::string::npos
                      ? (std::string(name) + " absent").c_str()
                      : own->body.substr(at + 1, own->body.find('\n', at + 1) - at - 1).c_str());
    }
  }

  // Scrape latency (the barrier, the render and the proxy) as Prometheus measured it.
  std::vector<double> durations;
  int failed = 0;
  const json::array scrape_durations = Query("scrape_duration_seconds{job=\"fleetwatch\"}[5m]");
  for (const json::value& series : scrape_durations) {
    for (const json::value& v : series.at("values").as_array()) {
      durations.push_back(std::stod(std::string(v.as_array()[1].as_string())));
    }
  }
  const json::array ups = Query("up{job=\"fleetwatch\"}[5m]");
  for (const json::value& series : ups) {
    for (const json::value& v : series.at("values").as_array()) {
      if (v.as_array()[1].as_string() != "1") ++failed;
    }
  }
  std::printf(
      "%zu scrapes in %.0f s (%d failed): duration median %.1f ms, p99 %.1f ms, max %.1f ms\n",
      durations.size(), std::chrono::duration<double>(steady_clock::now() - started).count(),
      failed, 1e3 * Percentile(durations, 0.5), 1e3 * Percentile(durations, 0.99),
      1e3 * Percentile(durations, 1.0));
  ASSERT_GE(durations.size(), 10u);

  // Every counter family /metrics has now.
  Result<http::Client> client = http::Client::Create(replicas_[0]->url());
  ASSERT_TRUE(client.ok());
  Result<http::Response> body = client->Send("GET", "/metrics", {}, {});
  ASSERT_TRUE(body.ok());
  const std::set<std::string> counters = CounterFamilies(body->body);
  for (const char* expected :
       {"dstack_job_duration_seconds_total", "dstack_project_gpu_seconds_total",
        "fleetwatch_gpu_state_seconds_total", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"}) {
    EXPECT_TRUE(counters.contains(expected)) << expected;
  }
  double resets = 0;
  size_t samples = 0, series_count = 0;
  std::vector<std::string> decreases;
  for (const std::string& family : counters) {
    const json::array result = Query("sum(resets(" + family + "[5m]))");
    for (const json::value& s : result) {
      const double n = std::stod(std::string(s.at("value").as_array()[1].as_string()));
      if (n != 0) std::printf("resets(%s) = %g\n", family.c_str(), n);
      resets += n;
    }
    // The raw samples, series by series: none below the one before it.
    const json::array raw = Query(family + "[5m]");
    for (const json::value& s : raw) {
      ++series_count;
      double last = -1;
      for (const json::value& v : s.at("values").as_array()) {
        const double value = std::stod(std::string(v.as_array()[1].as_string()));
        ++samples;
        if (value < last) {
          decreases.push_back(json::serialize(s.at("metric")) + ": " + std::to_string(last) +
                              " then " + std::to_string(value));
        }
        last = value;
      }
    }
  }
  std::printf(
      "%zu counter families, %zu series, %zu samples: resets() summed = %g, %zu raw "
      "decreases\n",
      counters.size(), series_count, samples, resets, decreases.size());
  EXPECT_EQ(resets, 0);
  EXPECT_TRUE(decreases.empty()) << ::testing::PrintToString(decreases);
  EXPECT_GT(samples, counters.size() * 10);
}

}  // namespace
}  // namespace fleetwatch::testing
