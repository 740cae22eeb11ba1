// Two controllers as two replicas on one real PostgreSQL database (the tests' private cluster),
// each with its own store connection and its own change listener (FleetController::
// SetChangeListener), a fake clock and agents on loopback: a replica reads what other replicas
// changed from the notifications, without reading everything again; a notification that never
// came is caught by the periodic resync, and by the quiet-tick check of debug builds; a listener
// that reconnects makes its replica read everything.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "server/two_controllers_fixture.h"
#include "store/postgres_listener.h"
#include "store/postgres_store.h"
#include "support/postgres_cluster.h"

namespace fleetwatch::server {
namespace {

using testing_agents::CountingAgent;

// The real listener, with a switch that drops the run keys it delivers (a notification lost
// without the listener knowing: what the periodic resync and the debug check are for).
class DroppingListener final : public store::ChangeListener {
 public:
  explicit DroppingListener(std::unique_ptr<store::PostgresListener> inner)
      : inner_(std::move(inner)) {}
  store::ChangeBatch Take() override {
    store::ChangeBatch batch = inner_->Take();
    if (drop_runs_) batch.keys.erase(store::kRunsChannel);
    return batch;
  }
  void DropRuns(bool drop) { drop_runs_ = drop; }
  store::PostgresListener& inner() { return *inner_; }

 private:
  std::unique_ptr<store::PostgresListener> inner_;
  std::atomic<bool> drop_runs_{false};
};

class FleetControllerNotifyTest : public testing_agents::TwoControllersTest {
 protected:
  void SetUp() override {
    if (testing::PostgresCluster::FindBinDir().empty()) {
      GTEST_SKIP() << "PostgreSQL is not installed: scripts/install-deps.sh installs it";
    }
    std::string error;
    testing::PostgresCluster* cluster = testing::PostgresCluster::Shared(&error);
    ASSERT_NE(cluster, nullptr) << error;
    url_ = cluster->CreateDatabase(&error);
    ASSERT_FALSE(url_.empty()) << error;
  }

  // The replicas "a" and "b", each with a listener of its own; `verify`: the quiet-tick check of
  // debug builds.
  void StartReplicas(bool verify) {
    TwoControllersTest::StartReplicas(
        [&]() -> Result<std::unique_ptr<store::Store>> {
          store::PostgresStoreOptions store_options;
          store_options.secret_key.fill(0x5a);
          return store::OpenPostgresStore(url_, store_options);
        },
        [&](testing_agents::Replica& r, FleetControllerOptions& options) {
          auto listening = store::PostgresListener::Start(
              {.url = url_,
               .channels = {store::kInstancesChannel, store::kRunsChannel},
               .min_backoff = std::chrono::milliseconds(50)});
          ASSERT_TRUE(listening.ok()) << listening.status().ToString();
          auto listener = std::make_unique<DroppingListener>(std::move(listening).value());
          ASSERT_TRUE(testing::WaitUntil([&] { return listener->inner().connected(); }));
          r.listener = std::move(listener);
          options.resync_interval = std::chrono::seconds(60);
          options.verify_quiet_ticks = verify;
        });
  }

  // Replica `replica`'s listener.
  DroppingListener& Listener(size_t replica) {
    return static_cast<DroppingListener&>(*replicas_[replica].listener);
  }

  bool Placed(const std::string& name) { return Stored(name).jobs.at(0).instance_id.has_value(); }

  // b holds the only host (it ticks first), a none; both know each other; the host is up.
  void BHoldsTheHost(CountingAgent& agent) {
    AddFleet({&agent});
    Tick(1);
    Tick(0);
    for (int i = 0; i < 3; ++i) {
      clock_.Advance(kSecond);
      Tick(1);
      Tick(0);
    }
    ASSERT_EQ(replicas_[1].controller->Replica().leased, 1u);
    ASSERT_EQ(replicas_[0].controller->Replica().leased, 0u);
    ASSERT_EQ(replicas_[1].controller->Replica().live_replicas, 2);
  }

  std::string url_;
};

TEST_F(FleetControllerNotifyTest, ARunSubmittedOnOneReplicaIsPlacedByTheHostsHolderAtOnce) {
  StartReplicas(/*verify=*/true);
  CountingAgent agent("agent-1");
  BHoldsTheHost(agent);
  const uint64_t resyncs = replicas_[1].controller->resyncs();
  const uint64_t quiet = replicas_[1].controller->quiet_ticks();
  const std::string job = Submit(0, "train");
  // b ticks until the notification has come (no clock time passes: no resync is due).
  ASSERT_TRUE(testing::WaitUntil([&] {
    Tick(1);
    return Placed("train");
  }));
  EXPECT_EQ(replicas_[1].controller->resyncs(), resyncs);  // read by its key alone
  ASSERT_TRUE(testing::WaitUntil([&] { return agent.starts(job) > 0; }));
  ASSERT_TRUE(testing::WaitUntil([&] {
    clock_.Advance(kSecond);
    Tick(1);
    Tick(0);
    return Stored("train").jobs[0].status == model::JobStatus::kRunning;
  }));
  EXPECT_EQ(agent.all_starts(), 1);
  // Then nothing moves: b takes quiet ticks (checked against the store's rows in debug builds),
  // and a, which holds no host, too.
  const uint64_t quiet_a = replicas_[0].controller->quiet_ticks();
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(kSecond / 10);
    Tick(1);
    Tick(0);
  }
  EXPECT_GT(replicas_[1].controller->quiet_ticks(), quiet);
  EXPECT_GT(replicas_[0].controller->quiet_ticks(), quiet_a);
  EXPECT_EQ(replicas_[1].controller->resyncs(), resyncs);
}

TEST_F(FleetControllerNotifyTest, AMissedNotificationIsCaughtByThePeriodicResync) {
  StartReplicas(/*verify=*/false);  // the debug check would abort first (next test)
  CountingAgent agent("agent-1");
  BHoldsTheHost(agent);
  Listener(1).DropRuns(true);
  Submit(0, "train");
  // A run of a's own write comes back through a's listener: a knows it, b does not.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(kSecond / 10);
    Tick(1);
  }
  EXPECT_FALSE(Placed("train"));
  // The resync is due: b reads everything and places the run.
  const uint64_t resyncs = replicas_[1].controller->resyncs();
  clock_.Advance(60 * kSecond);
  Tick(1);
  EXPECT_EQ(replicas_[1].controller->resyncs(), resyncs + 1);
  EXPECT_TRUE(Placed("train"));
}

TEST_F(FleetControllerNotifyTest, AListenerThatReconnectedMakesItsReplicaReadEverything) {
  StartReplicas(/*verify=*/true);
  CountingAgent agent("agent-1");
  BHoldsTheHost(agent);
  // While b's listener is away, a run comes: its notification is lost with the connection.
  Listener(1).DropRuns(true);
  Submit(0, "train");
  Tick(1);
  EXPECT_FALSE(Placed("train"));
  Listener(1).DropRuns(false);
  const uint64_t resyncs = replicas_[1].controller->resyncs();
  const uint64_t connections = Listener(1).inner().connections();
  store::PostgresListener& listener = Listener(1).inner();
  // Every listening session ends (the one whose last statement was a LISTEN); b's reconnects.
  {
    PGconn* conn = PQconnectdb(url_.c_str());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* result = PQexec(conn,
                              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "datname = current_database() AND query LIKE 'LISTEN fleetwatch_%'");
    EXPECT_EQ(PQresultStatus(result), PGRES_TUPLES_OK) << PQerrorMessage(conn);
    PQclear(result);
    PQfinish(conn);
  }
  ASSERT_TRUE(testing::WaitUntil([&] { return listener.connections() > connections; }));
  Tick(1);
  EXPECT_EQ(replicas_[1].controller->resyncs(), resyncs + 1);
  EXPECT_TRUE(Placed("train"));
}

TEST_F(FleetControllerNotifyTest, TheQuietTickCheckCatchesAChangeThatWasNeverNotified) {
#ifdef NDEBUG
  GTEST_SKIP() << "the check is on by default in debug builds only";
#endif
  // In a child process that runs this test again from its start (the controller has threads).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        StartReplicas(/*verify=*/true);
        CountingAgent agent("agent-1");
        BHoldsTheHost(agent);
        Listener(1).DropRuns(true);
        Submit(0, "train");
        // Long before the resync is due (60 s), a few quiet ticks and 10 s after b first sees
        // the stored run differ from its copy.
        for (int i = 0; i < 40; ++i) {
          clock_.Advance(kSecond);
          Tick(1);
        }
      },
      "no notification named it");
}

}  // namespace
}  // namespace fleetwatch::server
