// Two controllers as two replicas (FleetControllerOptions::replica_id) on one real SQLite file,
// each through a store connection of its own, a fake clock and agents on loopback (HTTP servers
// that answer the agent API from memory and count what they are asked): each host is polled by
// the replica that leases it, each job is started once, and a result decided on a lease lost
// during the tick is dropped with its commands.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/two_controllers_fixture.h"
#include "store/sqlite_store.h"

namespace fleetwatch::server {
namespace {

using testing_agents::CountingAgent;

class FleetControllerLeasesTest : public testing_agents::TwoControllersTest {
 protected:
  void SetUp() override {
    const std::string path = (dir_.path() / "fleetwatch.db").string();
    StartReplicas([&] { return store::OpenSqliteStore(path); });
  }
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
