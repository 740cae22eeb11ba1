#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "model/entities.h"
#include "model/status.h"
#include "store/sqlite_migrations.h"
#include "store/store_contract.h"
#include "support/process.h"

namespace fleetwatch::store {
namespace {

namespace fs = std::filesystem;

// Direct SQLite access to the store's file, for what the Store interface cannot show.
class RawDb {
 public:
  explicit RawDb(const fs::path& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void Exec(const std::string& sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
  }
  // The first column of the first row as text ("" when there is none).
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (text != nullptr) out = text;
    }
    sqlite3_finalize(stmt);
    return out;
  }
  int64_t QueryInt(const std::string& sql) { return std::stoll(QueryText(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

// Migrates the file at `path` with `steps` (a newer binary's list), as that binary would.
Status MigrateWith(const fs::path& path, std::span<const SchemaStep> steps) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return Internal("cannot open " + path.string());
  }
  sqlite3_busy_timeout(db, 5000);
  Status migrated = MigrateSqliteSchema(db, steps);
  sqlite3_close(db);
  return migrated;
}

// The contract suite on a SQLite file under a directory that does not exist yet. `newer`: the
// file is first migrated by a newer binary whose extra step is additive, and then used by this
// one (a rolling upgrade's old replicas, or a downgrade).
class SqliteFactory : public StoreFactory {
 public:
  explicit SqliteFactory(bool newer = false) : newer_(newer) {}
  Result<std::unique_ptr<Store>> Open() override {
    if (newer_ && !migrated_) {
      fs::create_directories(path_.parent_path());
      FW_RETURN_IF_ERROR(MigrateWith(path_, WithFutureStep(SqliteSchemaSteps(), true)));
      migrated_ = true;
    }
    return OpenSqliteStore(path_.string());
  }
  void Exec(const std::string& sql) override { RawDb(path_).Exec(sql); }
  int64_t QueryInt(const std::string& sql) override { return RawDb(path_).QueryInt(sql); }

 private:
  testing::TempDir dir_;
  fs::path path_ = dir_.path() / "nested" / "server" / "fleetwatch.db";
  const bool newer_;
  bool migrated_ = false;
};

INSTANTIATE_TEST_SUITE_P(
    Sqlite, StoreContract,
    ::testing::Values(StoreKind{"sqlite", [] { return std::make_unique<SqliteFactory>(); }},
                      StoreKind{"sqlite_migrated_by_a_newer_version",
                                [] { return std::make_unique<SqliteFactory>(/*newer=*/true); }}),
    KindName);

// What only a SQLite file has: its modes, WAL, its schema version, its key file.
class SqliteStore : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_.path() / "nested" / "server" / "fleetwatch.db";
    Reopen();
    owner_ = MakeUser("alice");
    ASSERT_TRUE(store_->CreateUser(owner_, "hash-alice").ok());
    project_ = MakeProject("main", owner_);
    ASSERT_TRUE(store_->CreateProject(project_).ok());
  }

  void Reopen() {
    store_.reset();
    auto opened = OpenSqliteStore(db_path_.string());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }

  std::pair<model::Fleet, model::Instance> CreateFleetWithInstance(const std::string& name) {
    return store::CreateFleetWithInstance(*store_, project_, name);
  }

  testing::TempDir dir_;
  fs::path db_path_;
  std::unique_ptr<Store> store_;
  model::User owner_;
  model::Project project_;
};

TEST_F(SqliteStore, OpenCreatesTheFileAndMissingParentDirectoriesInWalMode) {
  EXPECT_TRUE(fs::exists(db_path_));
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStore, MigrationsAreAppliedOnceAndReopeningKeepsTheVersion) {
  {
    RawDb raw(db_path_);
    EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), LatestSqliteSchemaVersion());
    EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE name = 'runs'"), 1);
  }
  Reopen();  // would fail with "table users already exists" if step 1 ran again
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), LatestSqliteSchemaVersion());
  auto user = store_->GetUserByName("alice");
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->id, owner_.id);
}

TEST_F(SqliteStore, TooNewSchemaVersionIsRefusedWithAClearMessage) {
  store_.reset();
  const int newer = LatestSqliteSchemaVersion() + 7;
  {
    RawDb raw(db_path_);
    raw.Exec("PRAGMA user_version = " + std::to_string(newer));
  }
  auto opened = OpenSqliteStore(db_path_.string());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("database schema version " + std::to_string(newer) +
                                           " is newer than this fleetwatch (" +
                                           std::to_string(LatestSqliteSchemaVersion()) + ")"),
            std::string::npos)
      << opened.status().message();
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), newer);  // left as it was
}

TEST_F(SqliteStore, ANewerSchemaWhoseNewStepsAreAdditiveIsUsedAsItIs) {
  store_.reset();
  ASSERT_TRUE(MigrateWith(db_path_, WithFutureStep(SqliteSchemaSteps(), true)).ok());
  const int newer = LatestSqliteSchemaVersion() + 1;
  {
    RawDb raw(db_path_);
    EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), newer);
    EXPECT_EQ(raw.QueryInt("SELECT oldest_binary_version FROM schema_compatibility WHERE "
                           "version = " +
                           std::to_string(newer)),
              OldestCompatibleVersion(SqliteSchemaSteps(), LatestSqliteSchemaVersion()));
  }
  Reopen();  // this binary, one step behind
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  EXPECT_EQ(store_->GetRun(project_.id, "train")->jobs.size(), 1u);
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), newer);  // nothing applied, nothing undone
  EXPECT_EQ(raw.QueryInt("SELECT future_priority FROM runs WHERE id = '" + run.id + "'"), 0);
  // The newer binary, back again, finds nothing to apply.
  store_.reset();
  EXPECT_TRUE(MigrateWith(db_path_, WithFutureStep(SqliteSchemaSteps(), true)).ok());
}

TEST_F(SqliteStore, ANewerSchemaWithAStepThatIsNotAdditiveIsRefusedClearly) {
  store_.reset();
  ASSERT_TRUE(MigrateWith(db_path_, WithFutureStep(SqliteSchemaSteps(), false)).ok());
  const int newer = LatestSqliteSchemaVersion() + 1;
  auto opened = OpenSqliteStore(db_path_.string());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find(
                "database schema version " + std::to_string(newer) +
                " is newer than this fleetwatch (" + std::to_string(LatestSqliteSchemaVersion()) +
                ") and needs a fleetwatch of schema version " + std::to_string(newer) +
                " or newer: upgrade this server"),
            std::string::npos)
      << opened.status().message();
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), newer);  // left as it was
}

TEST(SqliteStoreOpen, AFileThatIsNotADatabaseIsRefused) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "garbage.db";
  std::ofstream(path) << "this is not an SQLite database, just some text that is long enough "
                         "to fill the header of one and then some more bytes of nonsense.";
  auto opened = OpenSqliteStore(path.string());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInternal);
}

TEST_F(SqliteStore, AWriteLockHeldPastTheBusyTimeoutIsUnavailable) {
  RawDb raw(db_path_);
  raw.Exec("BEGIN IMMEDIATE");
  const auto start = std::chrono::steady_clock::now();
  Status status = store_->CreateUser(MakeUser("late"), "hash-late");
  const auto waited = std::chrono::steady_clock::now() - start;
  raw.Exec("ROLLBACK");
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_GE(waited, std::chrono::seconds(4));  // the 5 s busy timeout, give or take
  EXPECT_TRUE(store_->CreateUser(MakeUser("late"), "hash-late").ok());
}

std::string FileBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(SqliteStore, AgentTokensAreStoredOnlyEncryptedAndReadBackInClear) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  instance.agent_token = "rotated-agent-token";
  ASSERT_TRUE(store_->UpdateInstance(instance).ok());
  {
    RawDb raw(db_path_);
    const std::string stored = raw.QueryText("SELECT agent_token FROM instances");
    EXPECT_TRUE(stored.starts_with("enc:v1:")) << stored;
  }
  store_.reset();  // checkpoints the WAL into the database file
  const std::string bytes = FileBytes(db_path_);
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("agent-token"), std::string::npos);
  EXPECT_EQ(bytes.find("rotated-agent-token"), std::string::npos);
  Reopen();
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ(instances->front().agent_token, "rotated-agent-token");
}

TEST_F(SqliteStore, TokensStoredInClearByAnOlderVersionAreEncryptedAtOpen) {
  CreateFleetWithInstance("gpus");
  store_.reset();
  {
    RawDb raw(db_path_);
    raw.Exec("UPDATE instances SET agent_token = 'clear-token-from-before'");
  }
  Reopen();
  {
    RawDb raw(db_path_);
    EXPECT_TRUE(raw.QueryText("SELECT agent_token FROM instances").starts_with("enc:v1:"));
  }
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  EXPECT_EQ(instances->front().agent_token, "clear-token-from-before");
  // Nothing of the clear text is left behind, in the file or its journal.
  for (const std::string suffix : {"", "-wal"}) {
    EXPECT_EQ(FileBytes(db_path_.string() + suffix).find("clear-token-from-before"),
              std::string::npos)
        << suffix;
  }
}

TEST_F(SqliteStore, AKeyThatDoesNotDecryptTheTokensIsRefusedAtOpen) {
  CreateFleetWithInstance("gpus");
  store_.reset();
  SqliteStoreOptions options;
  options.secret_key.emplace();
  options.secret_key->fill(0x42);
  auto opened = OpenSqliteStore(db_path_.string(), options);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("FLEETWATCH_ENCRYPTION_KEY"), std::string::npos)
      << opened.status().message();
  Reopen();  // the key file still works
}

TEST_F(SqliteStore, TheDatabaseItsJournalFilesAndTheKeyAreOwnerOnly) {
  CreateFleetWithInstance("gpus");
  for (const std::string suffix : {"", "-wal", "-shm"}) {
    const fs::path file = db_path_.string() + suffix;
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << file;
  }
  struct stat st {};
  ASSERT_EQ(::stat((db_path_.parent_path() / "secret.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A database file an older version left readable is tightened at open.
  store_.reset();
  ASSERT_EQ(::chmod(db_path_.c_str(), 0644), 0);
  Reopen();
  ASSERT_EQ(::stat(db_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

}  // namespace
}  // namespace fleetwatch::store
