#include "store/postgres_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/entities.h"
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

// A database of its own in the process' private cluster. Skips only when PostgreSQL is not
// installed; a cluster that is installed but does not start is a failure.
class PostgresFactory : public StoreFactory {
 public:
  PostgresFactory() {
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
  Result<std::unique_ptr<Store>> Open() override { return OpenPostgresStore(url_, Options()); }
  void Exec(const std::string& sql) override { RawPg(url_).Exec(sql); }
  int64_t QueryInt(const std::string& sql) override { return RawPg(url_).QueryInt(sql); }
  const std::string& url() const { return url_; }

 private:
  std::string unavailable_;
  std::string url_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, StoreContract,
                         ::testing::Values(StoreKind{
                             "postgres", [] { return std::make_unique<PostgresFactory>(); }}),
                         KindName);

// What only PostgreSQL has: migrations under an advisory lock, its catalog, its text.
class PostgresStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = factory_.Unavailable(); !why.empty()) GTEST_SKIP() << why;
  }
  PostgresFactory factory_;
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
  auto opened = factory_.Open();
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  model::User owner = MakeUser("alice");
  ASSERT_TRUE((*opened)->CreateUser(owner, "hash-alice").ok());
  model::Project project = MakeProject("main", owner);
  ASSERT_TRUE((*opened)->CreateProject(project).ok());
  CreateFleetWithInstance(**opened, project, "gpus");
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
  EXPECT_EQ((*reopened)->ListInstances(project.id)->front().agent_token, "clear-token");
}

TEST_F(PostgresStore, TextThatIsNotUtf8IsInvalidArgumentAndStoresNothing) {
  auto opened = factory_.Open();
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Status status = (*opened)->CreateUser(MakeUser("bad\xff\xfe"), "hash-bad");
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_TRUE((*opened)->ListUsers()->empty());
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
