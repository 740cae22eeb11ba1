// Two controllers as two replicas (FleetControllerOptions::replica_id) on one real SQLite file,
// each through a store connection of its own, a fake clock and agents on loopback (HTTP servers
// that answer the agent API from memory and count what they are asked): each host is polled by
// the replica that leases it, each job is started once, and a result decided on a lease lost
// during the tick is dropped with its commands.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/async_client.h"
#include "server/auth.h"
#include "server/counting_agent_test_support.h"
#include "server/fleet_controller.h"
#include "server/runs.h"
#include "server/users.h"
#include "store/sqlite_store.h"
#include "support/process.h"
#include "util/clock.h"
#include "util/ids.h"

namespace fleetwatch::server {
namespace {

using testing_agents::CountingAgent;
using testing_agents::kAgentToken;

constexpr TimeMicros kStart = 1'800'000'000'000'000;
constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kLease = 10 * kSecond;
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";

// One replica: its own store connection, run service and controller.
struct Replica {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<RunService> runs;
  std::unique_ptr<FleetController> controller;
};

class FleetControllerLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"a", "b"}) {
      auto opened = store::OpenSqliteStore((dir_.path() / "fleetwatch.db").string());
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      Replica r;
      r.store = std::move(opened).value();
      r.runs = std::make_unique<RunService>(*r.store, clock_);
      FleetControllerOptions options;
      options.tick_budget = std::chrono::milliseconds(10'000);  // every poll is used at once
      options.metrics_interval = std::chrono::hours(1);
      options.log_dir = (dir_.path() / "logs").string();
      options.replica_id = id;
      options.lease_time = std::chrono::seconds(10);
      r.controller = std::make_unique<FleetController>(*r.store, clock_, r.runs->mutex(), client_,
                                                       std::move(options));
      ASSERT_TRUE(r.store->RegisterReplica({id, kStart, "test"}).ok());
      replicas_.push_back(std::move(r));
    }
    store::Store& store = *replicas_[0].store;
    AuthService auth(store);
    ASSERT_TRUE(UserService(store, clock_).Bootstrap(std::string(kAdminToken)).ok());
    admin_ = *auth.Authenticate(std::string("Bearer ") + kAdminToken);
    access_ = *auth.AccessProject(admin_, "main");
  }

  // A fleet with one instance per agent, written straight to the store.
  void AddFleet(const std::vector<CountingAgent*>& agents) {
    model::Fleet fleet{NewId(), access_.project.id, "main", "pool", model::FleetStatus::kActive,
                       "{}",    clock_.Now()};
    std::vector<model::Instance> instances;
    for (size_t i = 0; i < agents.size(); ++i) {
      model::Instance instance;
      instance.id = NewId();
      instance.project_id = access_.project.id;
      instance.fleet_id = fleet.id;
      instance.name = "pool-" + std::to_string(i);
      instance.instance_num = static_cast<int>(i);
      instance.backend = "remote";
      instance.hostname = "127.0.0.1";
      instance.agent_port = agents[i]->port();
      instance.agent_token = kAgentToken;
      instance.created_at = clock_.Now();
      instances.push_back(instance);
    }
    ASSERT_TRUE(replicas_[0].store->CreateFleet(fleet, instances).ok());
  }

  TickReport Tick(size_t replica) {
    Result<TickReport> report = replicas_[replica].controller->Tick();
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? std::move(report).value() : TickReport{};
  }

  std::string Submit(size_t replica, const std::string& name) {
    auto submitted = replicas_[replica].runs->Submit(
        access_, admin_, "type: task\nname: " + name + "\ncommands: [sleep 1000]\n",
        model::ConfigFormat::kYaml);
    EXPECT_TRUE(submitted.ok()) << submitted.status().ToString();
    return submitted.ok() ? submitted->jobs.at(0).id : "";
  }

  model::Run Stored(const std::string& name) {
    auto run = replicas_[0].runs->Get(access_, name);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : model::Run{};
  }

  testing::TempDir dir_;
  FakeClock clock_{kStart};
  http::AsyncClient client_{1};
  std::vector<Replica> replicas_;
  model::User admin_;
  ProjectAccess access_;
};

TEST_F(FleetControllerLeasesTest, EachHostIsPolledByItsReplicaAndEachJobStartedOnce) {
  CountingAgent first("agent-1"), second("agent-2");
  AddFleet({&first, &second});
  Tick(0);
  Tick(1);
  EXPECT_EQ(replicas_[0].controller->Replica().leased, 1u);
  EXPECT_EQ(replicas_[1].controller->Replica().leased, 1u);
  EXPECT_EQ(replicas_[0].controller->Replica().live_replicas, 2);
  // A tick polls its own host only.
  for (size_t r = 0; r < 2; ++r) {
    const int before_first = first.polls(), before_second = second.polls();
    Tick(r);
    EXPECT_EQ((first.polls() - before_first) + (second.polls() - before_second), 1) << r;
  }
  // Runs submitted through either replica: placed by the holders of hosts with room, started
  // once each whichever replicas tick.
  std::vector<std::string> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(Submit(i % 2, "train-" + std::to_string(i)));
  auto both_ticks = [&](int rounds) {
    for (int round = 0; round < rounds; ++round) {
      clock_.Advance(kSecond);
      Tick(round % 2);
      Tick((round + 1) % 2);
    }
  };
  both_ticks(2);
  // Starts go out asynchronously after a tick; the runs are running once a poll has seen them.
  ASSERT_TRUE(testing::WaitUntil([&] { return first.all_starts() + second.all_starts() >= 4; },
                                 std::chrono::seconds(30)));
  both_ticks(2);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Stored("train-" + std::to_string(i)).jobs[0].status, model::JobStatus::kRunning) << i;
    EXPECT_EQ(first.starts(jobs[i]) + second.starts(jobs[i]), 1) << i;
  }
}

TEST_F(FleetControllerLeasesTest, AResultDecidedOnALeaseLostDuringTheTickIsDroppedWithItsStart) {
  CountingAgent agent("agent-1");
  AddFleet({&agent});
  Tick(0);  // a takes the only host; it comes up
  EXPECT_EQ(replicas_[0].controller->Replica().leased, 1u);
  const std::string job = Submit(0, "train");
  // While a polls, its lease expires and b takes the host over (a was paused past the lease
  // time, say): what a then decides about it must not be stored or sent.
  agent.OnNextPoll([&] {
    auto took = replicas_[1].store->TakeLeases(
        {.owner = "b", .now = kStart + 2 * kLease, .lease_micros = kLease, .slack = 1});
    ASSERT_TRUE(took.ok()) << took.status().ToString();
    EXPECT_EQ(took->held.size(), 1u);
  });
  Tick(0);
  EXPECT_EQ(Stored("train").jobs[0].status, model::JobStatus::kSubmitted);
  EXPECT_EQ(agent.all_starts(), 0);
  // The next tick of a knows it lost the host; b, its holder now, places and starts the job.
  clock_.Set(kStart + 2 * kLease + kSecond);
  Tick(0);
  EXPECT_EQ(replicas_[0].controller->Replica().leased, 0u);
  Tick(1);
  ASSERT_TRUE(testing::WaitUntil([&] { return agent.starts(job) > 0; }, std::chrono::seconds(30)));
  Tick(1);
  EXPECT_EQ(Stored("train").jobs[0].status, model::JobStatus::kRunning);
  EXPECT_EQ(agent.starts(job), 1);
  EXPECT_EQ(agent.all_starts(), 1);
}

}  // namespace
}  // namespace fleetwatch::server
