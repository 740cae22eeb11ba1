// GET /metrics of two `fleetwatch server` replicas on one PostgreSQL database (docs/scale-out.md,
// docs/api.md): real server processes, real agents on 127.0.0.1, the ctest run's PostgreSQL. Both
// serve the whole fleet: the same series, the same values but for the durations, which the scrape
// computes from the stored times and which never go back from one replica to the other. What each
// process saw itself is on its own GET /metrics/replica.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "support/postgres_cluster.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr int kHosts = 2;

// The durations: computed by each scrape, so they may differ between two scrapes.
const std::set<std::string> kTimeValued = {"dstack_instance_duration_seconds_total",
                                           "dstack_job_duration_seconds_total"};

// Series (name and labels) → value text, of every sample line of `body`.
std::map<std::string, std::string> Samples(const std::string& body) {
  std::map<std::string, std::string> samples;
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = line.substr(space + 1);
  }
  return samples;
}

std::string FamilyOf(const std::string& series) { return series.substr(0, series.find('{')); }

class ReplicaMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (PostgresCluster::FindBinDir().empty()) {
      GTEST_SKIP() << "PostgreSQL is not installed: scripts/install-deps.sh installs it";
    }
    std::string error;
    PostgresCluster* cluster = PostgresCluster::Shared(&error);
    ASSERT_NE(cluster, nullptr) << error;
    url_ = cluster->CreateDatabase(&error);
    ASSERT_FALSE(url_.empty()) << error;
    for (int i = 0; i < kHosts; ++i) {
      agents_.push_back(
          std::make_unique<AgentProcess>(AgentProcessOptions::FakeGpus(2, FAKE_NVML_LIBRARY)));
      ASSERT_GT(agents_.back()->port(), 0) << agents_.back()->Output();
    }
  }

  std::unique_ptr<ServerProcess> StartReplica(TempDir& data) {
    return std::make_unique<ServerProcess>(
        data.str(), home_.str(), kAdminToken, std::vector<std::string>{"--no-local-fleet"},
        std::map<std::string, std::string>{
            {"FLEETWATCH_DATABASE_URL", url_},
            {"FLEETWATCH_ENCRYPTION_KEY", std::string(64, 'a')},
            {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
            {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
            {"FLEETWATCH_LEASE_SECONDS", "3"},
            {"DSTACK_ENABLE_PROMETHEUS_METRICS", ""},
            {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}});
  }

  std::string url_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  TempDir data_a_, data_b_, home_;
};

TEST_F(ReplicaMetricsTest, BothReplicasServeTheSameFleetAndEachItsOwnFigures) {
  std::unique_ptr<ServerProcess> a = StartReplica(data_a_);
  ASSERT_TRUE(a->started()) << a->Output();
  std::unique_ptr<ServerProcess> b = StartReplica(data_b_);
  ASSERT_TRUE(b->started()) << b->Output();
  ApiClient admin_a(a->url(), kAdminToken), admin_b(b->url(), kAdminToken);
  std::string fleet = "type: fleet\nname: pool\nssh_config:\n  tls: false\n  token: " +
                      std::string(kTestAgentToken) + "\n  hosts:\n";
  for (const auto& agent : agents_) {
    fleet += "    - hostname: 127.0.0.1\n      port: " + std::to_string(agent->port()) + "\n";
  }
  ASSERT_EQ(admin_a.Send("POST", "/api/project/main/fleets", fleet, "application/yaml").status,
            201);
  // Each replica holds one host; both up.
  ASSERT_TRUE(WaitUntil([&] {
    const json::value info_a = admin_a.Get("/api/server/info").json;
    const json::value info_b = admin_b.Get("/api/server/info").json;
    return info_a.at("leased_instances").to_number<int64_t>() == 1 &&
           info_b.at("leased_instances").to_number<int64_t>() == 1;
  })) << a->Output()
      << b->Output();

  // The fleet at rest: once both replicas have ticked past the last change, A's and B's /metrics
  // are the same series with the same values, durations aside.
  std::map<std::string, std::string> from_a, from_b;
  std::string body_a, body_b;
  const auto differences = [&] {
    std::vector<std::string> out;
    for (const auto& [series, value] : from_a) {
      auto it = from_b.find(series);
      if (it == from_b.end()) {
        out.push_back("only on A: " + series);
      } else if (!kTimeValued.contains(FamilyOf(series)) && it->second != value) {
        out.push_back(series + ": A " + value + ", B " + it->second);
      }
    }
    for (const auto& [series, value] : from_b) {
      if (!from_a.contains(series)) out.push_back("only on B: " + series);
    }
    return out;
  };
  const auto instances_idle = [](const std::string& body) {
    size_t idle = 0;
    for (size_t at = body.find("status=\"idle\"} 1.0"); at != std::string::npos;
         at = body.find("status=\"idle\"} 1.0", at + 1)) {
      ++idle;
    }
    return idle == kHosts;
  };
  // The GPU ledger and energy families move on each replica's own schedule (docs/scale-out.md):
  // compared as series only.
  const auto own_schedule = [](const std::string& family) {
    return family.starts_with("fleetwatch_gpu_state") || family.starts_with("fleetwatch_project_");
  };
  const bool same = WaitUntil(
      [&] {
        body_a = admin_a.Get("/metrics").body;
        body_b = admin_b.Get("/metrics").body;
        from_a = Samples(body_a);
        from_b = Samples(body_b);
        std::erase_if(from_a, [&](const auto& s) { return own_schedule(FamilyOf(s.first)); });
        std::erase_if(from_b, [&](const auto& s) { return own_schedule(FamilyOf(s.first)); });
        return instances_idle(body_a) && instances_idle(body_b) && differences().empty();
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(same) << ::testing::PrintToString(differences()) << "\nA:\n"
                    << body_a << "\nB:\n"
                    << body_b;
  std::printf("A and B: %zu series each, the same values but for the durations\n", from_a.size());
  // The instances' ages, scraped from A then B, never go back.
  for (const auto& [series, value] : Samples(body_a)) {
    if (FamilyOf(series) != "dstack_instance_duration_seconds_total") continue;
    EXPECT_GE(std::stod(Samples(body_b).at(series)), std::stod(value)) << series;
  }
  // Nothing of one process' own on /metrics; each one's on its /metrics/replica.
  for (const std::string& body : {body_a, body_b}) {
    EXPECT_EQ(body.find("fleetwatch_agent_poll_errors_total"), std::string::npos) << body;
    EXPECT_EQ(body.find("fleetwatch_replica_info"), std::string::npos) << body;
    EXPECT_EQ(body.find("fleetwatch_gpu_health"), std::string::npos) << body;
  }
  for (ApiClient* admin : {&admin_a, &admin_b}) {
    const std::string id = Str(admin->Get("/api/server/info").json, "replica_id");
    ASSERT_FALSE(id.empty());
    const std::string own = admin->Get("/metrics/replica").body;
    EXPECT_NE(own.find("fleetwatch_replica_info{replica_id=\"" + id + "\","), std::string::npos)
        << own;
    EXPECT_NE(own.find("fleetwatch_agent_poll_errors_total{dstack_project_name=\"main\","
                       "dstack_fleet_name=\"pool\",dstack_instance_name=\"pool-0\"} "),
              std::string::npos)
        << own;
    EXPECT_EQ(own.find("dstack_instance_status"), std::string::npos) << own;
  }
}

}  // namespace
}  // namespace fleetwatch::testing
