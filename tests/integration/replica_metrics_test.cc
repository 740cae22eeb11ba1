// GET /metrics of three `fleetwatch server` replicas on one PostgreSQL database (docs/scale-out.md,
// docs/api.md): real server processes, real agents on 127.0.0.1, the ctest run's PostgreSQL, a
// run holding a GPU. All serve the whole fleet: scraped at the same moment, the same series with
// the same values but for the durations, which the scrape computes from the stored times and
// which never go back from one replica to another. What each process saw itself is on its own
// GET /metrics/replica.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "integration/replica_support.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr int kHosts = 3;

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
    url_ = CreateReplicaDatabase();
    if (url_.empty()) return;  // skipped, or failed
    for (int i = 0; i < kHosts; ++i) {
      agents_.push_back(
          std::make_unique<AgentProcess>(AgentProcessOptions::FakeGpus(2, FAKE_NVML_LIBRARY)));
      ASSERT_GT(agents_.back()->port(), 0) << agents_.back()->Output();
    }
  }

  std::unique_ptr<ServerProcess> StartReplica(TempDir& data) {
    return testing::StartReplica(
        url_, data.str(), home_.str(), kAdminToken,
        {{"FLEETWATCH_POLL_INTERVAL_MS", "200"}, {"FLEETWATCH_LEASE_SECONDS", "3"}});
  }

  std::string url_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  TempDir data_a_, data_b_, data_c_, home_;
};

TEST_F(ReplicaMetricsTest, EveryReplicaServesTheSameFleetAndEachItsOwnFigures) {
  std::unique_ptr<ServerProcess> a = StartReplica(data_a_);
  ASSERT_TRUE(a->started()) << a->Output();
  std::unique_ptr<ServerProcess> b = StartReplica(data_b_);
  ASSERT_TRUE(b->started()) << b->Output();
  std::unique_ptr<ServerProcess> c = StartReplica(data_c_);
  ASSERT_TRUE(c->started()) << c->Output();
  ApiClient admin_a(a->url(), kAdminToken), admin_b(b->url(), kAdminToken),
      admin_c(c->url(), kAdminToken);
  std::vector<ApiClient*> admins = {&admin_a, &admin_b, &admin_c};
  std::vector<uint16_t> ports;
  for (const auto& agent : agents_) ports.push_back(agent->port());
  ASSERT_EQ(
      admin_a.Send("POST", "/api/project/main/fleets", PoolFleetYaml(ports), "application/yaml")
          .status,
      201);
  // Each replica holds one host.
  ASSERT_TRUE(WaitUntilEachLeases({a->url(), b->url(), c->url()}, kAdminToken, 1))
      << a->Output() << b->Output() << c->Output();
  // A run holding a GPU: its GPU ledger, energy and cost counters move while the test compares.
  ApiReply run = admin_b.Send("POST", "/api/project/main/runs",
                              "type: task\nname: train\ncommands: ['sleep 300']\n"
                              "resources: {gpu: 1}\n",
                              "application/yaml");
  ASSERT_EQ(run.status, 201) << run.body;

  // The three scraped at the same moment (one thread each): the same series with the same values,
  // durations aside. Every family is compared, the GPU ledger's and the energy families included:
  // each replica renders them from the store. A change committed between two of the scrapes makes
  // them differ, so they are scraped again until no change fell between.
  std::vector<std::string> bodies(admins.size());
  std::vector<std::map<std::string, std::string>> samples(admins.size());
  const auto differences = [&] {
    std::vector<std::string> out;
    for (size_t r = 1; r < samples.size(); ++r) {
      const std::string name(1, static_cast<char>('A' + r));
      for (const auto& [series, value] : samples[0]) {
        auto it = samples[r].find(series);
        if (it == samples[r].end()) {
          out.push_back("only on A, not " + name + ": " + series);
        } else if (!kTimeValued.contains(FamilyOf(series)) && it->second != value) {
          out.push_back(series + ": A " + value + ", " + name + " " + it->second);
        }
      }
      for (const auto& [series, value] : samples[r]) {
        if (!samples[0].contains(series)) out.push_back("only on " + name + ": " + series);
      }
    }
    return out;
  };
  const auto ready = [](const std::string& body) {
    size_t up = 0;
    for (const char* status : {"status=\"idle\"} 1.0", "status=\"busy\"} 1.0"}) {
      for (size_t at = body.find(status); at != std::string::npos; at = body.find(status, at + 1)) {
        ++up;
      }
    }
    return up == kHosts && body.find("fleetwatch_run_gpu_idle_ratio{") != std::string::npos &&
           body.find("fleetwatch_run_gpu_energy_joules{") != std::string::npos &&
           body.find("fleetwatch_project_gpu_busy_seconds_total{") != std::string::npos &&
           body.find("dstack_job_cpu_time_seconds_total{") != std::string::npos;
  };
  int rounds = 0;
  const bool same = WaitUntil(
      [&] {
        ++rounds;
        std::vector<std::thread> scrapes;
        for (size_t r = 0; r < admins.size(); ++r) {
          scrapes.emplace_back([&, r] { bodies[r] = admins[r]->Get("/metrics").body; });
        }
        for (std::thread& t : scrapes) t.join();
        for (size_t r = 0; r < admins.size(); ++r) samples[r] = Samples(bodies[r]);
        return std::all_of(bodies.begin(), bodies.end(), ready) && differences().empty();
      },
      std::chrono::seconds(90));
  EXPECT_TRUE(same) << ::testing::PrintToString(differences()) << "\nA:\n"
                    << bodies[0] << "\nB:\n"
                    << bodies[1] << "\nC:\n"
                    << bodies[2];
  std::printf("A, B and C: %zu series each, the same values but for the durations (%d rounds)\n",
              samples[0].size(), rounds);
  const std::string body_a = bodies[0];
  // The instances' ages, scraped from A then B, never go back.
  std::map<std::string, std::string> later = Samples(admin_b.Get("/metrics").body);
  for (const auto& [series, value] : Samples(body_a)) {
    if (FamilyOf(series) != "dstack_instance_duration_seconds_total") continue;
    EXPECT_GE(std::stod(later.at(series)), std::stod(value)) << series;
  }
  // Nothing of one process' own on /metrics; each one's on its /metrics/replica.
  for (const std::string& body : bodies) {
    EXPECT_EQ(body.find("fleetwatch_agent_poll_errors_total"), std::string::npos) << body;
    EXPECT_EQ(body.find("fleetwatch_replica_info"), std::string::npos) << body;
    EXPECT_EQ(body.find("fleetwatch_gpu_health"), std::string::npos) << body;
  }
  for (ApiClient* admin : admins) {
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
