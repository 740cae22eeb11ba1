// Three `fleetwatch server` replicas on one PostgreSQL database (docs/scale-out.md), 200 simulated
// hosts (fleetwatch-sim-agents, which records every start it accepts and every poll it answers,
// with the polling replica's User-Agent) and 500 runs submitted round-robin to the replicas. Half
// way one replica is SIGKILLed; later PostgreSQL itself is restarted under that load, and the
// killed replica comes back. Then: every run is done, no job was started twice, at no moment did
// two replicas poll one host, the dead replica's hosts were taken over within twice the lease
// time, and the GPU seconds charged equal the accounted stretches of every job (nothing charged
// twice by two replicas).
#include <signal.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "integration/replica_support.h"
#include "support/postgres_cluster.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr char kSimToken[] = "sim-agent-token-0123456789abcdef";
constexpr int kHosts = 200;
constexpr int kRuns = 500;
constexpr int kReplicas = 3;
constexpr int kLeaseSeconds = 4;
constexpr double kPricePerHour = 3.6;  // a GPU-second costs $0.001

// One answered poll as the simulator recorded it.
struct Poll {
  int64_t begun = 0;
  int64_t answered = 0;
  std::string replica;  // from "fleetwatch replica <id>"
};

// What the simulator's --record file says: the starts per job id, the polls per host in order.
struct Record {
  std::map<std::string, int> starts;
  std::map<std::string, std::vector<Poll>> polls;
};

Record ReadRecord(const std::filesystem::path& path) {
  Record record;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string kind, host;
    fields >> kind >> host;
    if (kind == "start") {
      std::string job;
      fields >> job;
      ++record.starts[job];
    } else if (kind == "poll") {
      Poll poll;
      std::string product, word;
      fields >> poll.begun >> poll.answered >> product >> word >> poll.replica;
      if (word != "replica") poll.replica = "(not a replica: " + product + ")";
      record.polls[host].push_back(poll);
    }
  }
  for (auto& [host, polls] : record.polls) {
    std::sort(polls.begin(), polls.end(),
              [](const Poll& a, const Poll& b) { return a.begun < b.begun; });
  }
  return record;
}

class ReplicaChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (PostgresCluster::FindBinDir().empty()) {
      GTEST_SKIP() << "PostgreSQL is not installed: scripts/install-deps.sh installs it";
    }
    // A cluster of this test's own: it is restarted half way.
    std::string error;
    cluster_ = PostgresCluster::StartPrivate(&error);
    ASSERT_NE(cluster_, nullptr) << error;
    url_ = cluster_->CreateDatabase(&error);
    ASSERT_FALSE(url_.empty()) << error;

    const std::filesystem::path ports_file = sim_dir_.path() / "ports";
    sim_ = std::make_unique<ChildProcess>(
        FLEETWATCH_SIM_AGENTS,
        std::vector<std::string>{"--hosts", std::to_string(kHosts), "--token", kSimToken,
                                 "--ports-file", ports_file.string(), "--job-seconds", "2",
                                 "--record", record_path().string(), "--threads", "2"},
        std::map<std::string, std::string>{});
    ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(ports_file); })) << sim_->Output();
    std::istringstream ports(ReadFile(ports_file));
    for (std::string port; std::getline(ports, port);) ports_.push_back(port);
    ASSERT_EQ(ports_.size(), static_cast<size_t>(kHosts));
  }

  std::filesystem::path record_path() const { return sim_dir_.path() / "record"; }

  std::unique_ptr<ServerProcess> StartReplica(int i) {
    std::map<std::string, std::string> env{
        {"FLEETWATCH_DATABASE_URL", url_},
        {"FLEETWATCH_ENCRYPTION_KEY", std::string(64, 'a')},
        {"FLEETWATCH_POLL_INTERVAL_MS", "500"},
        {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "2"},
        {"FLEETWATCH_LEASE_SECONDS", std::to_string(kLeaseSeconds)},
        {"FLEETWATCH_INSTANCE_UNREACHABLE_SECONDS", "120"},
        {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"},
        // /metrics on: each replica also listens for the others' changes (shared render state)
        // through the PostgreSQL restart.
        {"DSTACK_ENABLE_PROMETHEUS_METRICS", ""}};
    return std::make_unique<ServerProcess>(data_[i].str(), home_.str(), kAdminToken,
                                           std::vector<std::string>{"--no-local-fleet"}, env);
  }

  static json::value Info(const ApiClient& client) { return client.Get("/api/server/info").json; }

  std::string url_;
  std::unique_ptr<PostgresCluster> cluster_;
  TempDir sim_dir_;
  std::unique_ptr<ChildProcess> sim_;
  std::vector<std::string> ports_;
  TempDir data_[kReplicas];
  TempDir home_;
};

TEST_F(ReplicaChaosTest, FiveHundredRunsThroughAKilledReplicaAndAPostgresRestart) {
  std::vector<std::unique_ptr<ServerProcess>> replicas;
  for (int i = 0; i < kReplicas; ++i) {
    replicas.push_back(StartReplica(i));
    ASSERT_TRUE(replicas.back()->started()) << replicas.back()->Output();
  }
  std::vector<ApiClient> admins;
  for (const auto& r : replicas) admins.emplace_back(r->url(), kAdminToken);
  auto outputs = [&] {
    std::string out;
    for (const auto& r : replicas) out += r->Output() + "\n----\n";
    return out;
  };

  std::ostringstream fleet;
  fleet << "type: fleet\nname: sim\nssh_config:\n  tls: false\n  price: " << kPricePerHour
        << "\n  token: " << kSimToken << "\n  hosts:\n";
  for (const std::string& port : ports_)
    fleet << "    - hostname: 127.0.0.1\n      port: " << port << "\n";
  ApiReply created =
      admins[0].Send("POST", "/api/project/main/fleets", fleet.str(), "application/yaml");
  ASSERT_EQ(created.status, 201) << created.body;

  // Every replica live and holding some hosts, every host up.
  ASSERT_TRUE(WaitUntil(
      [&] {
        int64_t leased = 0;
        for (const ApiClient& admin : admins) {
          json::value info = Info(admin);
          if (JsonInt(info, "replicas") != kReplicas || JsonInt(info, "leased_instances") < 1)
            return false;
          leased += JsonInt(info, "leased_instances");
        }
        return leased == kHosts &&
               QueryColumn(url_, "SELECT COUNT(*) FROM instances WHERE status = 'idle'") ==
                   std::vector<std::string>{std::to_string(kHosts)};
      },
      std::chrono::seconds(120)))
      << outputs();

  // 500 runs of one GPU, round-robin over the live replicas; the last replica is SIGKILLed half
  // way, PostgreSQL restarted at three quarters.
  const std::string killed_id =
      json::value_to<std::string>(Info(admins[kReplicas - 1]).at("replica_id"));
  int64_t killed_at_micros = 0;  // the simulator's clock (the system's)
  int live = kReplicas;
  int refused_while_down = 0;
  for (int i = 0; i < kRuns; ++i) {
    if (i == kRuns / 2) {
      ASSERT_EQ(replicas[kReplicas - 1]->Stop(SIGKILL), 128 + SIGKILL);
      killed_at_micros = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
      live = kReplicas - 1;
    }
    if (i == kRuns * 3 / 4) {
      cluster_->Stop(SIGINT);  // fast shutdown: every replica's connections are cut
      std::this_thread::sleep_for(std::chrono::seconds(2));
      std::string error;
      ASSERT_TRUE(cluster_->Start(&error)) << error;
    }
    const std::string body = "type: task\nname: chaos-" + std::to_string(i) +
                             "\nresources: {gpu: 1}\ncommands:\n  - sleep 2\n";
    ApiReply r;
    // A submission that meets the database restarting is refused (503) and tried again.
    for (int attempt = 0; attempt < 100; ++attempt) {
      r = admins[static_cast<size_t>(i % live)].Send("POST", "/api/project/main/runs", body,
                                                     "application/yaml");
      if (r.status != 503 && r.status != 500) break;
      ++refused_while_down;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ASSERT_EQ(r.status, 201) << "run " << i << ": " << r.body << "\n" << outputs();
  }
  std::printf("submitted %d runs; %d submissions refused while PostgreSQL restarted\n", kRuns,
              refused_while_down);

  // The survivors took over the killed replica's hosts: its leases expired.
  const bool took_over = WaitUntil(
      [&] {
        int64_t leased = 0;
        for (int i = 0; i < kReplicas - 1; ++i) {
          json::value info = Info(admins[i]);
          if (JsonInt(info, "replicas") != kReplicas - 1) return false;
          leased += JsonInt(info, "leased_instances");
        }
        return leased == kHosts;
      },
      std::chrono::seconds(120));
  ASSERT_TRUE(took_over) << outputs();
  EXPECT_EQ(
      QueryColumn(url_, "SELECT COUNT(*) FROM instances WHERE lock_owner = '" + killed_id + "'"),
      std::vector<std::string>{"0"});

  // The killed replica comes back on its data dir and takes a share again.
  replicas[kReplicas - 1] = StartReplica(kReplicas - 1);
  ASSERT_TRUE(replicas[kReplicas - 1]->started()) << replicas[kReplicas - 1]->Output();
  admins[kReplicas - 1] = ApiClient(replicas[kReplicas - 1]->url(), kAdminToken);

  // Every run done; every job accounted to its end.
  const bool all_done = WaitUntil(
      [&] {
        return QueryColumn(url_, "SELECT COUNT(*) FROM runs WHERE status = 'done'") ==
               std::vector<std::string>{std::to_string(kRuns)};
      },
      std::chrono::seconds(300));
  ASSERT_TRUE(all_done) << QueryColumn(
                               url_,
                               "SELECT string_agg(status || ':' || n, ' ') FROM (SELECT status, "
                               "COUNT(*) AS n FROM runs GROUP BY status) s")
                               .at(0)
                        << "\n"
                        << outputs();
  ASSERT_TRUE(WaitUntil(
      [&] {
        int64_t leased = 0;
        for (const ApiClient& admin : admins) leased += JsonInt(Info(admin), "leased_instances");
        return leased == kHosts && JsonInt(Info(admins[kReplicas - 1]), "leased_instances") >= 1;
      },
      std::chrono::seconds(120)))
      << outputs();
  const std::string pending =
      "SELECT COUNT(*) FROM jobs WHERE started_at IS NOT NULL AND (usage_accounted_until IS NULL "
      "OR usage_accounted_until < finished_at)";
  ASSERT_TRUE(WaitUntil([&] { return QueryColumn(url_, pending) == std::vector<std::string>{"0"}; },
                        std::chrono::seconds(120)))
      << outputs();
  EXPECT_EQ(QueryColumn(url_, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"),
            std::vector<std::string>{std::to_string(kRuns)});
  // Every replica, the two that lived through the restart and the new one, serves /metrics with
  // all 500 runs counted (the new one once it has rendered).
  const std::string done_runs =
      "dstack_run_count_done_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"} "
      "500.0\n";
  for (size_t i = 0; i < admins.size(); ++i) {
    ApiReply metrics;
    EXPECT_TRUE(WaitUntil([&] {
      metrics = admins[i].Get("/metrics");
      return metrics.status == 200 && metrics.body.find(done_runs) != std::string::npos;
    })) << "replica "
        << i << ": " << metrics.status << " "
        << metrics.body.substr(
               std::min(metrics.body.size(), metrics.body.find("dstack_run_count_done_total")),
               600);
  }

  // No job started twice: the simulator accepted exactly one start per job, and only the jobs
  // of these runs.
  const std::vector<std::string> job_ids = QueryColumn(url_, "SELECT id FROM jobs");
  ASSERT_EQ(job_ids.size(), static_cast<size_t>(kRuns));
  // Stop the simulator so that the record is complete and still.
  EXPECT_EQ(sim_->Stop(SIGTERM), 0) << sim_->Output();
  const Record record = ReadRecord(record_path());
  EXPECT_EQ(record.starts.size(), job_ids.size());
  for (const std::string& id : job_ids) {
    auto it = record.starts.find(id);
    EXPECT_TRUE(it != record.starts.end() && it->second == 1)
        << "job " << id << " started " << (it == record.starts.end() ? 0 : it->second) << " times";
  }

  // At no moment did two replicas poll one host: where the poller changes, the last poll of the
  // one had been answered before the first of the next began.
  size_t handovers = 0;
  size_t polls = 0;
  std::set<std::string> pollers;
  for (const auto& [host, host_polls] : record.polls) {
    polls += host_polls.size();
    for (size_t k = 1; k < host_polls.size(); ++k) {
      const Poll& before = host_polls[k - 1];
      const Poll& next = host_polls[k];
      pollers.insert(next.replica);
      EXPECT_EQ(before.replica.find("not a replica"), std::string::npos) << before.replica;
      if (before.replica == next.replica) continue;
      ++handovers;
      EXPECT_LE(before.answered, next.begun)
          << host << ": replica " << next.replica << " polled at " << next.begun
          << " while replica " << before.replica << "'s poll of " << before.begun
          << " was unanswered";
    }
  }
  std::printf("%zu polls of %zu hosts by %zu replicas, %zu handovers between replicas\n", polls,
              record.polls.size(), pollers.size(), handovers);
  EXPECT_EQ(record.polls.size(), static_cast<size_t>(kHosts));
  EXPECT_GE(pollers.size(), static_cast<size_t>(kReplicas));  // the restarted one is new

  // Takeover within twice the lease time: each host the killed replica polled last before the
  // kill was next polled by a survivor at most then.
  double takeover = 0;
  size_t taken_over = 0;
  for (const auto& [host, host_polls] : record.polls) {
    auto after = std::find_if(host_polls.begin(), host_polls.end(),
                              [&](const Poll& p) { return p.begun >= killed_at_micros; });
    if (after == host_polls.begin() || std::prev(after)->replica != killed_id) continue;
    auto next = std::find_if(after, host_polls.end(),
                             [&](const Poll& p) { return p.replica != killed_id; });
    ASSERT_NE(next, host_polls.end()) << host << " was never polled again after the kill";
    ++taken_over;
    takeover = std::max(takeover, static_cast<double>(next->begun - killed_at_micros) / 1e6);
  }
  std::printf(
      "the killed replica's %zu hosts were polled again by a survivor within %.1f s "
      "of the kill (lease %d s)\n",
      taken_over, takeover, kLeaseSeconds);
  EXPECT_GE(taken_over, 1u);
  EXPECT_LE(takeover, 2.0 * kLeaseSeconds);

  // Cost and GPU seconds charged exactly once: each charge moves its job's accounted time on by
  // what it charges, so the totals equal the accounted stretches (one GPU each, $0.001 a
  // second); a charge applied twice would make them more.
  const double accounted = QueryNumber(
      url_,
      "SELECT SUM(usage_accounted_until - started_at) / 1e6 FROM jobs WHERE started_at IS NOT "
      "NULL");
  const double gpu_seconds =
      QueryNumber(url_, "SELECT COALESCE(SUM(gpu_seconds), 0) FROM usage_totals");
  const double cost = QueryNumber(url_, "SELECT COALESCE(SUM(cost_dollars), 0) FROM usage_totals");
  const double ran = QueryNumber(
      url_, "SELECT SUM(finished_at - started_at) / 1e6 FROM jobs WHERE status = 'done'");
  EXPECT_NEAR(gpu_seconds, accounted, 1e-3);
  EXPECT_NEAR(cost, accounted * kPricePerHour / 3600, 1e-6);
  EXPECT_GE(gpu_seconds, ran - 1e-3);
  std::printf("GPU seconds charged %.3f, accounted stretches %.3f, jobs ran %.3f; cost $%.6f\n",
              gpu_seconds, accounted, ran, cost);
}

}  // namespace
}  // namespace fleetwatch::testing
