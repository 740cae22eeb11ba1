#include "store/postgres_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "store/change_keys.h"
#include "store/postgres_listener.h"
#include "store/postgres_migrations.h"
#include "store/store_contract.h"
#include "support/postgres_cluster.h"
#include "support/process.h"

namespace fleetwatch::store {
namespace {

using testing::PostgresCluster;

PostgresStoreOptions Options(uint8_t key_byte = 0x17) {
  PostgresStoreOptions options;
  options.secret_key.fill(key_byte);
  return options;
}

// Direct libpq access to a database, for what the Store interface cannot show.
class RawPg {
 public:
  explicit RawPg(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
  }
  ~RawPg() { PQfinish(conn_); }
  RawPg(const RawPg&) = delete;
  RawPg& operator=(const RawPg&) = delete;

  void Exec(const std::string& sql) {
    PGresult* result = PQexec(conn_, sql.c_str());
    EXPECT_TRUE(PQresultStatus(result) == PGRES_COMMAND_OK ||
                PQresultStatus(result) == PGRES_TUPLES_OK)
        << sql << ": " << PQerrorMessage(conn_);
    PQclear(result);
  }
  // The first column of the first row as text ("" when there is none).
  std::string QueryText(const std::string& sql) {
    PGresult* result = PQexec(conn_, sql.c_str());
    EXPECT_EQ(PQresultStatus(result), PGRES_TUPLES_OK) << sql << ": " << PQerrorMessage(conn_);
    std::string out;
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
      out = PQgetvalue(result, 0, 0);
    }
    PQclear(result);
    return out;
  }
  int64_t QueryInt(const std::string& sql) {
    const std::string text = QueryText(sql);
    return text.empty() ? -1 : std::stoll(text);
  }

 private:
  PGconn* conn_;
};

// Migrates the database at `url` with `steps` (a newer binary's list), as that binary would.
Status MigrateWith(const std::string& url, std::span<const SchemaStep> steps) {
  PGconn* conn = PQconnectdb(url.c_str());
  Status migrated = PQstatus(conn) == CONNECTION_OK
                        ? MigratePostgresSchema(conn, steps)
                        : Unavailable(std::string("cannot connect: ") + PQerrorMessage(conn));
  PQfinish(conn);
  return migrated;
}

// A database of its own in the process' private cluster. Skips only when PostgreSQL is not
// installed; a cluster that is installed but does not start is a failure. `newer`: the database
// is first migrated by a newer binary whose extra step is additive, then used by this one (the
// old replicas of a rolling upgrade).
class PostgresFactory : public StoreFactory {
 public:
  explicit PostgresFactory(bool newer = false) : newer_(newer) {
    if (PostgresCluster::FindBinDir().empty()) {
      unavailable_ =
          "PostgreSQL is not installed (no initdb/postgres under /usr/lib/postgresql/*/bin): "
          "scripts/install-deps.sh installs it";
      return;
    }
    std::string error;
    PostgresCluster* cluster = PostgresCluster::Shared(&error);
    if (cluster != nullptr) url_ = cluster->CreateDatabase(&error);
    if (url_.empty()) {
      ADD_FAILURE() << error;
      unavailable_ = "the test PostgreSQL cluster failed: " + error;
    }
  }

  std::string Unavailable() const override { return unavailable_; }
  bool StoresAnyBytes() const override { return false; }
  Result<std::unique_ptr<Store>> Open() override {
    if (newer_ && !migrated_) {
      FW_RETURN_IF_ERROR(MigrateWith(url_, WithFutureStep(PostgresSchemaSteps(), true)));
      migrated_ = true;
    }
    return OpenPostgresStore(url_, Options());
  }
  void Exec(const std::string& sql) override { RawPg(url_).Exec(sql); }
  int64_t QueryInt(const std::string& sql) override { return RawPg(url_).QueryInt(sql); }
  const std::string& url() const { return url_; }

 private:
  std::string unavailable_;
  std::string url_;
  const bool newer_;
  bool migrated_ = false;
};

INSTANTIATE_TEST_SUITE_P(
    Postgres, StoreContract,
    ::testing::Values(StoreKind{"postgres", [] { return std::make_unique<PostgresFactory>(); }},
                      StoreKind{"postgres_migrated_by_a_newer_version",
                                [] { return std::make_unique<PostgresFactory>(/*newer=*/true); }}),
    KindName);

// What only PostgreSQL has: migrations under an advisory lock, its catalog, its text.
class PostgresStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = factory_.Unavailable(); !why.empty()) GTEST_SKIP() << why;
  }

  // Opens store_ on the test's database and makes the user alice_ and her project project_
  // ("main") in it. A failure is fatal: call it under ASSERT_NO_FATAL_FAILURE.
  void OpenWithAlice() {
    auto opened = factory_.Open();
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
    alice_ = MakeUser("alice");
    ASSERT_TRUE(store_->CreateUser(alice_, "hash-alice").ok());
    project_ = MakeProject("main", alice_);
    ASSERT_TRUE(store_->CreateProject(project_).ok());
  }

  PostgresFactory factory_;
  std::unique_ptr<Store> store_;
  model::User alice_;
  model::Project project_;
};

TEST_F(PostgresStore, ReplicasStartingTogetherMigrateOnce) {
  constexpr int kReplicas = 6;
  std::vector<std::optional<Result<std::unique_ptr<Store>>>> results(kReplicas);
  std::vector<std::thread> threads;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back(
        [&, r] { results[r].emplace(OpenPostgresStore(factory_.url(), Options())); });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<std::unique_ptr<Store>> opened;
  for (auto& result : results) {
    ASSERT_TRUE(result->ok()) << result->status().ToString();
    opened.push_back(std::move(*result).value());
  }
  RawPg raw(factory_.url());
  // One row per step: a second application would have failed on its CREATE TABLE or on the
  // version's primary key.
  EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM schema_migrations"), LatestPostgresSchemaVersion());
  EXPECT_EQ(raw.QueryInt("SELECT MAX(version) FROM schema_migrations"),
            LatestPostgresSchemaVersion());
  // Every replica works on the one schema.
  for (int r = 0; r < kReplicas; ++r) {
    const std::string name = "user-" + std::to_string(r);
    EXPECT_TRUE(opened[r]->CreateUser(MakeUser(name), "hash-" + name).ok());
  }
  EXPECT_EQ(opened[0]->ListUsers()->size(), static_cast<size_t>(kReplicas));
}

TEST_F(PostgresStore, ReopeningAMigratedDatabaseAppliesNothing) {
  ASSERT_TRUE(factory_.Open().ok());
  RawPg raw(factory_.url());
  const std::string applied_at = raw.QueryText("SELECT MAX(applied_at) FROM schema_migrations");
  auto again = factory_.Open();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(raw.QueryText("SELECT MAX(applied_at) FROM schema_migrations"), applied_at);
}

TEST_F(PostgresStore, TooNewSchemaVersionIsRefusedWithAClearMessage) {
  ASSERT_TRUE(factory_.Open().ok());
  const int newer = LatestPostgresSchemaVersion() + 7;
  factory_.Exec("INSERT INTO schema_migrations (version) VALUES (" + std::to_string(newer) + ")");
  auto opened = factory_.Open();
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("database schema version " + std::to_string(newer) +
                                           " is newer than this fleetwatch (" +
                                           std::to_string(LatestPostgresSchemaVersion()) + ")"),
            std::string::npos)
      << opened.status().message();
  // The lock was released: a fixed database opens again at once.
  factory_.Exec("DELETE FROM schema_migrations WHERE version = " + std::to_string(newer));
  EXPECT_TRUE(factory_.Open().ok());
}

TEST_F(PostgresStore, ReplicasOfTheVersionBeforeAnAdditiveStepKeepWorking) {
  // A replica of this version runs; a newer one starts and migrates; this version's replicas
  // still start and work, beside the newer one.
  auto old_replica = factory_.Open();
  ASSERT_TRUE(old_replica.ok()) << old_replica.status().ToString();
  ASSERT_TRUE(MigrateWith(factory_.url(), WithFutureStep(PostgresSchemaSteps(), true)).ok());
  const int newer = LatestPostgresSchemaVersion() + 1;
  RawPg raw(factory_.url());
  EXPECT_EQ(raw.QueryInt("SELECT MAX(version) FROM schema_migrations"), newer);
  EXPECT_EQ(raw.QueryInt("SELECT oldest_binary_version FROM schema_migrations WHERE version = " +
                         std::to_string(newer)),
            OldestCompatibleVersion(PostgresSchemaSteps(), LatestPostgresSchemaVersion()));
  auto restarted = factory_.Open();
  ASSERT_TRUE(restarted.ok()) << restarted.status().ToString();
  model::User user = MakeUser("bob");
  ASSERT_TRUE((*old_replica)->CreateUser(user, "hash-bob").ok());
  model::Project project = MakeProject("main", user);
  ASSERT_TRUE((*restarted)->CreateProject(project).ok());
  model::Run run = MakeRun(project, user, "train", 100, RunStatus::kDone);
  ASSERT_TRUE((*restarted)->CreateRun(run).ok());
  EXPECT_EQ(raw.QueryInt("SELECT future_priority FROM runs WHERE id = '" + run.id + "'"), 0);
  EXPECT_EQ(raw.QueryInt("SELECT MAX(version) FROM schema_migrations"), newer);
  EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM schema_migrations"), newer);
}

TEST_F(PostgresStore, AStepThatIsNotAdditiveMakesOlderReplicasRefuseClearly) {
  ASSERT_TRUE(factory_.Open().ok());
  ASSERT_TRUE(MigrateWith(factory_.url(), WithFutureStep(PostgresSchemaSteps(), false)).ok());
  const int newer = LatestPostgresSchemaVersion() + 1;
  auto opened = factory_.Open();
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find(
                "database schema version " + std::to_string(newer) +
                " is newer than this fleetwatch (" + std::to_string(LatestPostgresSchemaVersion()) +
                ") and needs a fleetwatch of schema version " + std::to_string(newer) +
                " or newer: upgrade this server"),
            std::string::npos)
      << opened.status().message();
  // The newer binary itself opens it, applying nothing.
  EXPECT_TRUE(MigrateWith(factory_.url(), WithFutureStep(PostgresSchemaSteps(), false)).ok());
}

TEST_F(PostgresStore, EveryForeignKeyLeadsAnIndex) {
  ASSERT_TRUE(factory_.Open().ok());
  RawPg raw(factory_.url());
  // Foreign keys (all single-column) with no index whose first column is the key.
  const std::string unindexed = raw.QueryText(
      "SELECT COALESCE(string_agg(c.conrelid::regclass || '.' || a.attname, ', '), '') "
      "FROM pg_constraint c JOIN pg_attribute a "
      "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
      "WHERE c.contype = 'f' AND NOT EXISTS (SELECT 1 FROM pg_index i "
      "WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])");
  EXPECT_EQ(unindexed, "");
  EXPECT_GE(raw.QueryInt("SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f'"), 10);
  EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f' "
                         "AND array_length(conkey, 1) <> 1"),
            0);
}

TEST_F(PostgresStore, AgentTokensAreStoredOnlyEncryptedAndAWrongKeyIsRefused) {
  ASSERT_NO_FATAL_FAILURE(OpenWithAlice());
  CreateFleetWithInstance(*store_, project_, "gpus");
  RawPg raw(factory_.url());
  EXPECT_TRUE(raw.QueryText("SELECT agent_token FROM instances").starts_with("enc:v1:"));
  EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM instances WHERE agent_token LIKE '%agent-token%'"),
            0);

  auto wrong = OpenPostgresStore(factory_.url(), Options(0x42));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("FLEETWATCH_ENCRYPTION_KEY"), std::string::npos)
      << wrong.status().message();

  // Tokens stored in clear are encrypted at open.
  raw.Exec("UPDATE instances SET agent_token = 'clear-token'");
  auto reopened = factory_.Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_TRUE(raw.QueryText("SELECT agent_token FROM instances").starts_with("enc:v1:"));
  EXPECT_EQ((*reopened)->ListInstances(project_.id)->front().agent_token, "clear-token");
}

TEST_F(PostgresStore, TextThatIsNotUtf8IsInvalidArgumentAndStoresNothing) {
  auto opened = factory_.Open();
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Status status = (*opened)->CreateUser(MakeUser("bad\xff\xfe"), "hash-bad");
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_TRUE((*opened)->ListUsers()->empty());
}

// Every statement of the per-tick paths, planned with sequential scans priced out
// (enable_seqscan off): a "Seq Scan" on a table that grows then means that no index can serve the
// statement. The plans come from auto_explain in the server's log, so these are the store's own
// statements, not copies of them.
TEST_F(PostgresStore, HotQueriesUseAnIndexOnEveryTableThatGrows) {
  PostgresCluster* cluster = PostgresCluster::Shared();
  ASSERT_NE(cluster, nullptr);
  const std::string url = factory_.url() +
                          "&options=-c%20enable_seqscan%3Doff%20-c%20session_preload_libraries%3D"
                          "auto_explain%20-c%20auto_explain.log_min_duration%3D0";
  auto opened = OpenPostgresStore(url, Options());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& store = **opened;
  model::User owner = MakeUser("alice");
  ASSERT_TRUE(store.CreateUser(owner, "hash-alice").ok());
  model::Project project = MakeProject("main", owner);
  ASSERT_TRUE(store.CreateProject(project).ok());
  auto [fleet, instance] = CreateFleetWithInstance(store, project, "gpus");
  std::vector<model::Run> runs;
  for (int i = 0; i < 20; ++i) {
    model::Run run = MakeRun(project, owner, "run-" + std::to_string(i), 100 + i,
                             i % 2 == 0 ? RunStatus::kRunning : RunStatus::kDone, 2);
    for (model::Job& job : run.jobs) {
      job.status = i % 2 == 0 ? JobStatus::kRunning : JobStatus::kDone;
      job.instance_id = instance.id;
      job.started_at = 100 + i;
    }
    ASSERT_TRUE(store.CreateRun(run).ok());
    runs.push_back(std::move(run));
  }
  std::vector<model::JobMetricsPoint> points;
  for (const model::Run& run : runs) {
    for (const model::Job& job : run.jobs) {
      for (TimeMicros t = 1000; t < 4000; t += 1000) {
        model::JobMetricsPoint p;
        p.job_id = job.id;
        p.timestamp_micro = t;
        points.push_back(p);
      }
    }
  }
  const size_t log_start = testing::ReadFile(cluster->LogPath()).size();

  ASSERT_TRUE(store.AddJobMetricsPoints(points).ok());
  ASSERT_TRUE(store.ListRunsWithStatus({RunStatus::kRunning}).ok());
  ASSERT_TRUE(store.ListInstances("").ok());
  ASSERT_TRUE(store.ListInstances(project.id).ok());
  ASSERT_TRUE(store.UpdateInstance(instance).ok());
  ASSERT_TRUE(store.UpdateRun(runs[0]).ok());
  ASSERT_TRUE(store.ListJobsByIds({runs[0].jobs[0].id, "unknown"}).ok());
  ASSERT_TRUE(store.ListNewestMetricsOfUnfinishedJobs().ok());
  ASSERT_TRUE(store.LatestMetricsOfUnfinishedJobs().ok());
  ASSERT_TRUE(store.ListJobMetricsPoints(runs[0].jobs[0].id, 0, 5000, 10).ok());
  auto unaccounted = store.ListUnaccountedJobs();
  ASSERT_TRUE(unaccounted.ok());
  ASSERT_FALSE(unaccounted->empty());
  UsageCharge charge;
  charge.job_id = unaccounted->front().job_id;
  charge.new_accounted_until = 200;
  charge.project_name = "main";
  charge.user_name = "alice";
  ASSERT_TRUE(store.ChargeUsage({charge}).ok());
  ASSERT_TRUE(store.DeleteJobMetricsPoints(1500, 2500).ok());
  ASSERT_TRUE(store.GetRun(project.id, "run-0").ok());
  ASSERT_TRUE(store.GetRunById(runs[1].id).ok());
  ASSERT_TRUE(store.ListRuns(Filter(project.id)).ok());
  ASSERT_TRUE(store.CountRuns().ok());
  ASSERT_TRUE(store.ListNewestMetricsOfJobs({runs[0].jobs[0].id, runs[2].jobs[1].id}).ok());
  ASSERT_TRUE(store
                  .WriteHostDcgm({HostDcgm{.instance_id = instance.id,
                                           .collected_at = 100,
                                           .text = "x 1\n",
                                           .error = {},
                                           .received_at = 100}})
                  .ok());
  ASSERT_TRUE(store.ListHostDcgm({instance.id}).ok());

  const std::string log = testing::ReadFile(cluster->LogPath()).substr(log_start);
  EXPECT_NE(log.find("plan:"), std::string::npos) << "auto_explain logged no plan:\n" << log;
  const std::regex seq_scan(R"(Seq Scan on (runs|jobs|job_metrics_points|instances|host_dcgm)\b)");
  EXPECT_FALSE(std::regex_search(log, seq_scan)) << log;
}

// On a cluster of its own: stopping the shared one would cut the other tests' sessions.
TEST_F(PostgresStore, AStoreReconnectsAfterTheServerRestarts) {
  std::string error;
  std::unique_ptr<PostgresCluster> cluster = PostgresCluster::StartPrivate(&error);
  ASSERT_NE(cluster, nullptr) << error;
  const std::string url = cluster->CreateDatabase(&error);
  ASSERT_FALSE(url.empty()) << error;
  auto opened = OpenPostgresStore(url, Options());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& store = **opened;
  ASSERT_TRUE(store.CreateUser(MakeUser("alice"), "hash-alice").ok());
  cluster->Stop(SIGINT);  // fast shutdown: every session is cut
  Status down = store.CreateUser(MakeUser("bob"), "hash-bob");
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  ASSERT_TRUE(cluster->Start(&error)) << error;
  // The next call reconnects; what failed was not stored, what was committed is there.
  auto users = store.ListUsers();
  ASSERT_TRUE(users.ok()) << users.status().ToString();
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->front().name, "alice");
  EXPECT_TRUE(store.CreateUser(MakeUser("bob"), "hash-bob").ok());
}

// --- change notifications (postgres_listener.h) ---

// Takes from `listener` until `channel` has had `key` (true) or a minute passed; everything taken
// is added to `seen`.
bool TakeUntil(PostgresListener& listener, const std::string& channel, const std::string& key,
               ChangeBatch& seen) {
  return testing::WaitUntil([&] {
    ChangeBatch batch = listener.Take();
    seen.resync |= batch.resync;
    for (auto& [name, keys] : batch.keys) seen.keys[name].insert(keys.begin(), keys.end());
    return seen.keys[channel].count(key) > 0;
  });
}

// A listener on `channels` of the database at `url`, connected, its first batch (the resync that
// starts every listener) not taken yet; null, with a test failure, when it did not start.
std::unique_ptr<PostgresListener> Listen(const std::string& url,
                                         std::vector<std::string> channels = {
                                             kHostDcgmChannel, kJobPointsChannel, kTotalsChannel}) {
  auto listener = PostgresListener::Start(
      {.url = url, .channels = std::move(channels), .min_backoff = std::chrono::milliseconds(50)});
  EXPECT_TRUE(listener.ok()) << listener.status().ToString();
  if (!listener.ok()) return nullptr;
  EXPECT_TRUE(testing::WaitUntil([&] { return (*listener)->connected(); }));
  return std::move(listener).value();
}

TEST_F(PostgresStore, WritesNotifyTheirKeysOnCommitAndHostDcgmIsUnlogged) {
  std::unique_ptr<PostgresListener> listener = Listen(factory_.url());
  ASSERT_NE(listener, nullptr);
  EXPECT_TRUE(listener->Take().resync);  // nothing read before: read everything
  EXPECT_FALSE(listener->Take().resync);

  ASSERT_NO_FATAL_FAILURE(OpenWithAlice());
  auto [fleet, instance] = CreateFleetWithInstance(*store_, project_, "pool");
  ASSERT_TRUE(store_
                  ->WriteHostDcgm({HostDcgm{.instance_id = instance.id,
                                            .collected_at = 100,
                                            .text = "DCGM_FI_DEV_GPU_UTIL 1\n",
                                            .error = {},
                                            .received_at = 101}})
                  .ok());
  ChangeBatch seen;
  EXPECT_TRUE(TakeUntil(*listener, kHostDcgmChannel, VersionedKey(instance.id, 1), seen));

  model::Run run = MakeRun(project_, alice_, "train", 100, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  model::JobMetricsPoint p1, p2;
  p1.job_id = p2.job_id = run.jobs[0].id;
  p1.timestamp_micro = 2000;
  p2.timestamp_micro = 1000;
  ASSERT_TRUE(store_->AddJobMetricsPoints({p1, p2}).ok());
  EXPECT_TRUE(TakeUntil(*listener, kJobPointsChannel, VersionedKey(run.jobs[0].id, 2000), seen));
  // One key per job: the batch's newest point.
  EXPECT_EQ(seen.keys[kJobPointsChannel].size(), 1u);

  // Nothing from a transaction that rolls back: notifications go out in commit order, so once
  // the later one is in, the rolled-back one would have been too.
  RawPg raw(factory_.url());
  raw.Exec("BEGIN");
  raw.Exec("SELECT pg_notify('fleetwatch_host_dcgm', 'rolled-back@1')");
  raw.Exec("ROLLBACK");
  raw.Exec("SELECT pg_notify('fleetwatch_host_dcgm', 'committed@1')");
  EXPECT_TRUE(TakeUntil(*listener, kHostDcgmChannel, "committed@1", seen));
  EXPECT_EQ(seen.keys[kHostDcgmChannel].count("rolled-back@1"), 0u);
  EXPECT_FALSE(seen.resync);

  EXPECT_EQ(raw.QueryText("SELECT relpersistence FROM pg_class WHERE relname = 'host_dcgm'"), "u");
}

TEST_F(PostgresStore, InstanceAndRunWritesNotifyTheirKeysOnCommit) {
  std::unique_ptr<PostgresListener> listener =
      Listen(factory_.url(), {kInstancesChannel, kRunsChannel});
  ASSERT_NE(listener, nullptr);
  EXPECT_TRUE(listener->Take().resync);

  ASSERT_NO_FATAL_FAILURE(OpenWithAlice());
  ChangeBatch seen;
  // Instances: by id, when made, written (not when only last_seen_at or a lease moves) and
  // deleted with their fleet.
  auto [fleet, instance] = CreateFleetWithInstance(*store_, project_, "pool");
  EXPECT_TRUE(TakeUntil(*listener, kInstancesChannel, instance.id, seen));
  seen = {};
  ASSERT_TRUE(store_->SetInstancesLastSeen({{instance.id, 500}}).ok());
  ASSERT_TRUE(store_->TakeLeases({.owner = "a", .now = 1000, .lease_micros = 10'000}).ok());
  instance.unreachable = true;
  ASSERT_TRUE(store_->UpdateInstance(instance).ok());
  EXPECT_TRUE(TakeUntil(*listener, kInstancesChannel, instance.id, seen));
  // Notifications come in commit order: had the two writes before notified, they were in.
  EXPECT_EQ(seen.keys[kInstancesChannel].size(), 1u);

  // Runs: "<id>@<row version after the write>".
  model::Run run = MakeRun(project_, alice_, "train", 100, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  EXPECT_TRUE(TakeUntil(*listener, kRunsChannel, VersionedKey(run.id, 0), seen));
  run.jobs[0].instance_id = instance.id;
  ASSERT_TRUE(store_->UpdateRunIfCurrent(run, {}).ok());
  EXPECT_TRUE(TakeUntil(*listener, kRunsChannel, VersionedKey(run.id, 1), seen));
  run.row_version = 1;
  run.status = RunStatus::kDone;
  run.jobs[0].status = model::JobStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  EXPECT_TRUE(TakeUntil(*listener, kRunsChannel, VersionedKey(run.id, 2), seen));
  // A refused write notifies nothing; the fleet's deletion names its instances and the runs it
  // changed (their jobs lose the instance).
  EXPECT_EQ(store_->UpdateRunIfCurrent(run, {}).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->DeleteFleet(project_.id, "pool").ok());
  EXPECT_TRUE(TakeUntil(*listener, kRunsChannel, VersionedKey(run.id, 3), seen));
  EXPECT_TRUE(TakeUntil(*listener, kInstancesChannel, instance.id, seen));
  ASSERT_TRUE(store_->DeleteRun(run.id).ok());
  EXPECT_TRUE(TakeUntil(*listener, kRunsChannel, VersionedKey(run.id, 4), seen));
  EXPECT_EQ(seen.keys[kRunsChannel],
            (std::set<std::string>{VersionedKey(run.id, 0), VersionedKey(run.id, 1),
                                   VersionedKey(run.id, 2), VersionedKey(run.id, 3),
                                   VersionedKey(run.id, 4)}));
  EXPECT_FALSE(seen.resync);
}

TEST_F(PostgresStore, AListenerReconnectsAfterItsBackendIsTerminatedAndAsksForAResync) {
  std::unique_ptr<PostgresListener> listener = Listen(factory_.url());
  ASSERT_NE(listener, nullptr);
  EXPECT_TRUE(listener->Take().resync);
  EXPECT_EQ(listener->connections(), 1u);
  RawPg raw(factory_.url());
  // The listener's session: the one whose last statement was a LISTEN on this database.
  const int64_t terminated = raw.QueryInt(
      "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
      "current_database() AND query LIKE 'LISTEN fleetwatch_%'");
  EXPECT_EQ(terminated, 1);
  ASSERT_TRUE(testing::WaitUntil([&] { return listener->connections() == 2; }));
  // Notifications sent while it was away are lost: its reader is told to read everything (and
  // until it has taken that, keys are not gathered: what it reads then includes them).
  EXPECT_TRUE(listener->Take().resync);
  ChangeBatch seen;
  raw.Exec("SELECT pg_notify('fleetwatch_job_points', 'after-reconnect@5')");
  EXPECT_TRUE(TakeUntil(*listener, kJobPointsChannel, "after-reconnect@5", seen));
  EXPECT_FALSE(seen.resync);
}

// A barrier passes only once every notification committed before it was asked for is gathered:
// a Take right after it has their keys, without waiting or polling. The totals' charges notify
// their keys too.
TEST_F(PostgresStore, ABarrierPassesOnceEveryNotificationCommittedBeforeItIsGathered) {
  std::unique_ptr<PostgresListener> listener = Listen(factory_.url());
  ASSERT_NE(listener, nullptr);
  EXPECT_TRUE(listener->Take().resync);
  EXPECT_EQ(listener->barrier_channel().rfind("fleetwatch_barrier_", 0), 0u);
  RawPg raw(factory_.url());
  const auto far = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(60); };
  for (int i = 0; i < 20; ++i) {
    const std::string key = "job-" + std::to_string(i) + "@1";
    raw.Exec("SELECT pg_notify('fleetwatch_job_points', '" + key + "')");
    const uint64_t barrier = listener->RequestBarrier();
    ASSERT_TRUE(listener->WaitBarrier(barrier, far())) << i;
    ChangeBatch batch = listener->Take();
    EXPECT_FALSE(batch.resync);
    EXPECT_EQ(batch.keys[kJobPointsChannel].count(key), 1u) << i;
    EXPECT_FALSE(batch.keys.contains(listener->barrier_channel()));  // never handed on
  }
  // Several asked for at once pass together.
  const uint64_t a = listener->RequestBarrier(), b = listener->RequestBarrier();
  EXPECT_TRUE(listener->WaitBarrier(b, far()));
  EXPECT_TRUE(listener->WaitBarrier(a, far()));

  ASSERT_NO_FATAL_FAILURE(OpenWithAlice());
  auto [fleet, instance] = CreateFleetWithInstance(*store_, project_, "pool");
  model::Run run = MakeRun(project_, alice_, "train", 100, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  listener->Take();
  JobAggregateUpdate update;
  update.job_id = run.jobs[0].id;
  update.state_json = "{}";
  update.project_name = "main";
  update.user_name = "alice";
  ASSERT_TRUE(store_->UpdateJobAggregates({update}).ok());
  GpuLedgerCharge charge;
  charge.instance_id = instance.id;
  charge.new_accounted_until = 1000;
  ASSERT_EQ(store_->ChargeGpuLedger({charge}).value(), 1);
  const uint64_t barrier = listener->RequestBarrier();
  ASSERT_TRUE(listener->WaitBarrier(barrier, far()));
  ChangeBatch batch = listener->Take();
  EXPECT_EQ(batch.keys[kTotalsChannel], (std::set<std::string>{kEnergyKey, kGpuLedgerKey}));
  // A charge that applies nothing notifies nothing.
  ASSERT_EQ(store_->ChargeGpuLedger({charge}).value(), 0);
  const uint64_t again = listener->RequestBarrier();
  ASSERT_TRUE(listener->WaitBarrier(again, far()));
  EXPECT_FALSE(listener->Take().keys.contains(kTotalsChannel));
}

TEST(PostgresListenerStart, ABadChannelNameIsRefused) {
  for (const std::string& channel :
       std::vector<std::string>{"", "Upper", "semi;colon", std::string(64, 'a')}) {
    auto listener =
        PostgresListener::Start({.url = "postgresql://127.0.0.1:1/none", .channels = {channel}});
    ASSERT_FALSE(listener.ok()) << channel;
    EXPECT_EQ(listener.status().code(), StatusCode::kInvalidArgument) << channel;
  }
  auto none = PostgresListener::Start({.url = "postgresql://127.0.0.1:1/none", .channels = {}});
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
}

TEST(ChangeKeys, ManyKeysGoOutAsSeveralPayloadsUnderTheLimitAndComeBackInOrder) {
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back(VersionedKey("instance-" + std::to_string(i), i));
  std::vector<std::string> payloads = ChangePayloads(keys, 100);
  EXPECT_GT(payloads.size(), 1u);
  std::vector<std::string> back;
  for (const std::string& payload : payloads) {
    EXPECT_LE(payload.size(), 100u);
    for (std::string& key : ChangeKeys(payload)) back.push_back(std::move(key));
  }
  EXPECT_EQ(back, keys);
  EXPECT_TRUE(ChangePayloads({}).empty());
  EXPECT_TRUE(ChangeKeys("").empty());
  EXPECT_EQ(ChangeKeys(",a,,b,"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ParseVersionedKey("job@1@42"), std::make_pair(std::string("job@1"), int64_t{42}));
  for (const char* bad : {"", "job", "@3", "job@", "job@x", "job@3x"}) {
    EXPECT_FALSE(ParseVersionedKey(bad)) << bad;
  }
}

TEST(PostgresStoreOpen, AServerThatIsNotThereIsUnavailable) {
  const uint16_t port = testing::FreePort();
  auto opened = OpenPostgresStore(
      "postgresql://fleetwatch@127.0.0.1:" + std::to_string(port) + "/none?connect_timeout=5",
      Options());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kUnavailable) << opened.status().ToString();
}

}  // namespace
}  // namespace fleetwatch::store
