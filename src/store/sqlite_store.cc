#include "store/sqlite_store.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "model/status.h"
#include "store/secret_cipher.h"
#include "store/sql_store.h"
#include "store/sqlite_migrations.h"
#include "store/sqlite_query.h"
#include "util/mutex.h"

namespace fleetwatch::store {
namespace sqlite {
namespace {

using rows::kFinishedJobStatuses;
using rows::PointsOf;
using rows::Sql;
using rows::WithContext;

// The Store methods are SqlStore's (sql_store.h) but for those below. Thread-safe: every public
// method takes mu_ for its whole transaction.
class SqliteStore final : public sql::SqlStore<SqliteStore, Query> {
 public:
  static constexpr rows::Dialect kDialect = rows::Dialect::kSqlite;
  static constexpr leases::Dialect kLeaseDialect = leases::Dialect::kSqlite;
  static constexpr bool kNotifies = false;

  SqliteStore(DbHandle db, const SecretCipher& cipher) : SqlStore(cipher), db_(std::move(db)) {}

  // Encrypts the agent tokens an older fleetwatch stored in clear, and proves that the key
  // decrypts those already encrypted: a wrong key fails here, at start, not at the first poll.
  Status SealAgentTokens() {
    FW_ASSIGN_OR_RETURN(
        size_t sealed_now,
        SealStoredAgentTokens("FLEETWATCH_ENCRYPTION_KEY (or secret.key beside the database)"));
    if (sealed_now == 0) return Status::Ok();
    // The clear text's old page images live on in the WAL until a checkpoint: move them out and
    // empty it (secure_delete has zeroed them in the database file).
    MutexLock lock(mu_);
    const int rc =
        sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_.get(), rc);
    return Status::Ok();
  }

  Result<std::vector<RunCount>> CountRuns() override {
    return Read([&]() -> Result<std::vector<RunCount>> {
      mu_.AssertHeld();  // as in Prepare
      // Counted again only after a write that may change a count, this store's or another
      // connection's (data_version moves with the commits of other connections only): the
      // exposition asks every tick, and the scan over every run ever made grows with the table.
      FW_ASSIGN_OR_RETURN(Query version, Prepare("PRAGMA data_version"));
      FW_ASSIGN_OR_RETURN(bool has_version, version.Step());
      if (!has_version) return Internal("PRAGMA data_version returned nothing");
      const std::pair<uint64_t, int64_t> at{count_writes_, version.Int64(0)};
      if (run_counts_ && run_counts_->first == at) return run_counts_->second;
      FW_ASSIGN_OR_RETURN(
          Query q, Prepare("SELECT p.name, u.name, r.status, COUNT(*), "
                           "SUM(CASE WHEN r.deleted = 0 THEN 1 ELSE 0 END) FROM runs r "
                           "JOIN projects p ON p.id = r.project_id "
                           "JOIN users u ON u.id = r.user_id "
                           "GROUP BY p.name, u.name, r.status ORDER BY p.name, u.name, r.status"));
      std::vector<RunCount> out;
      while (true) {
        FW_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        std::optional<model::RunStatus> status = model::Parse<model::RunStatus>(q.Text(2));
        if (!status) return Internal("unknown run status '" + q.Text(2) + "' in the database");
        out.push_back(RunCount{q.Text(0), q.Text(1), *status, q.Int64(3), q.Int64(4)});
      }
      run_counts_.emplace(at, out);
      return out;
    });
  }

  Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfUnfinishedJobs() override {
    return Read([&]() -> Result<std::vector<model::JobMetricsPoint>> {
      // SQLite takes the bare columns of an aggregate query with one MAX() from the row that
      // holds the maximum: one pass over the primary key (job_id, timestamp_micro).
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql("SELECT m.job_id, MAX(m.timestamp_micro), m.cpu_usage_micro, "
                                      "m.memory_usage_bytes, m.memory_working_set_bytes, "
                                      "m.gpus_memory_usage_bytes, m.gpus_util_percent "
                                      "FROM job_metrics_points m JOIN jobs j ON j.id = m.job_id "
                                      "WHERE j.status NOT IN ",
                                      kFinishedJobStatuses) +
                                  " GROUP BY m.job_id"));
      return PointsOf(q);
    });
  }

 private:
  friend class sql::SqlStore<SqliteStore, Query>;

  // SqlStore's transaction (sql_store.h): BEGIN IMMEDIATE for a write.
  template <typename Fn>
  auto InTransaction(sql::Access access, std::initializer_list<std::atomic<int64_t>*> versions,
                     Fn&& fn) -> decltype(fn()) {
    MutexLock lock(mu_);
    for (std::atomic<int64_t>* version : versions) ++*version;
    // Before it runs: a write that fails or rolls back counts too.
    if (access == sql::Access::kWrite) ++count_writes_;
    Transaction transaction(db_.get());
    FW_RETURN_IF_ERROR(transaction.Begin(access != sql::Access::kRead));
    auto result = fn();
    if (!result.ok()) return result;
    FW_RETURN_IF_ERROR(transaction.Commit());
    return result;
  }

  // The prepared statement for `sql`, compiled on first use and kept. Requires mu_.
  Result<Query> Compile(const std::string& sql) {
    // Called from the functions that InTransaction runs, which the analysis sees as lock-free:
    // checked at run time instead.
    mu_.AssertHeld();
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      sqlite3_stmt* stmt = nullptr;
      const int rc = sqlite3_prepare_v3(db_.get(), sql.c_str(), static_cast<int>(sql.size() + 1),
                                        SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) return SqliteError(db_.get(), rc);
      it = statements_.emplace(sql, StatementHandle(stmt)).first;
    }
    return Query(db_.get(), it->second.get());
  }

  // A single connection's database has no one to notify.
  Status Notify(const char* /*channel*/, const std::vector<std::string>& /*keys*/) {
    return Status::Ok();
  }

  Mutex mu_;
  // Declared before statements_: statements are finalized first.
  DbHandle db_ FW_GUARDED_BY(mu_);
  std::unordered_map<std::string, StatementHandle> statements_ FW_GUARDED_BY(mu_);
  // Write transactions that may change what CountRuns counts (all but kWriteKeepingRunCounts),
  // and CountRuns' last result with that number and the database's data_version it was read at.
  uint64_t count_writes_ FW_GUARDED_BY(mu_) = 0;
  std::optional<std::pair<std::pair<uint64_t, int64_t>, std::vector<RunCount>>> run_counts_
      FW_GUARDED_BY(mu_);
};

Status ExecPragma(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return WithContext(SqliteError(db, sqlite3_extended_errcode(db)), sql);
  }
  return Status::Ok();
}

}  // namespace
}  // namespace sqlite

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const SqliteStoreOptions& options) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return Internal("cannot create directory " + parent.string() + ": " + ec.message());
  }
  std::array<uint8_t, SecretCipher::kKeyBytes> key{};
  if (options.secret_key) {
    key = *options.secret_key;
  } else {
    FW_ASSIGN_OR_RETURN(key, LoadOrCreateKeyFile(parent / "secret.key"));
  }
  const SecretCipher cipher(key);
  OPENSSL_cleanse(key.data(), key.size());

  // SQLite gives -wal and -shm the mode of the database file; the file is created 0600 here,
  // before SQLite sees it, and files of an older fleetwatch are tightened.
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = path + suffix;
    if (::chmod(file.c_str(), 0600) != 0 && errno != ENOENT) {
      return Internal("cannot set the mode of " + file + ": " + std::strerror(errno));
    }
  }
  if (const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); fd >= 0) {
    ::close(fd);
  } else if (errno != EEXIST) {
    return Internal("cannot create database " + path + ": " + std::strerror(errno));
  }

  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  sqlite::DbHandle db(raw);  // owns the handle even when opening failed
  if (rc != SQLITE_OK) {
    return Internal("cannot open database " + path + ": " +
                    (raw != nullptr ? sqlite::ErrorMessage(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 5000);
  // journal_mode answers with a row; sqlite3_exec discards it. Also the first statement to read
  // the file, so "not a database" surfaces here.
  FW_RETURN_IF_ERROR(sqlite::WithContext(sqlite::ExecPragma(db.get(), "PRAGMA journal_mode = WAL"),
                                         "open database " + path));
  FW_RETURN_IF_ERROR(sqlite::ExecPragma(db.get(), "PRAGMA synchronous = NORMAL"));
  FW_RETURN_IF_ERROR(sqlite::ExecPragma(db.get(), "PRAGMA foreign_keys = ON"));
  // Deleted and overwritten content (a token re-encrypted, a deleted user's hash) is zeroed, not
  // left in free space for a copy of the file to reveal.
  FW_RETURN_IF_ERROR(sqlite::ExecPragma(db.get(), "PRAGMA secure_delete = ON"));
  FW_RETURN_IF_ERROR(sqlite::WithContext(MigrateSqliteSchema(db.get()), path));
  auto store = std::make_unique<sqlite::SqliteStore>(std::move(db), cipher);
  FW_RETURN_IF_ERROR(sqlite::WithContext(store->SealAgentTokens(), path));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace fleetwatch::store
