#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "util/status.h"

// SQLite plumbing of the SQLite store: error mapping, owned handles, a bound statement, a
// transaction. Not thread-safe: a connection and its statements belong to one user at a time
// (SqliteStore serializes them with its mutex).
namespace fleetwatch::store::sqlite {

std::string ErrorMessage(sqlite3* db);

// Maps a failed SQLite call (`rc`, extended) to the Store error policy.
Status SqliteError(sqlite3* db, int rc);

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StatementHandle = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// One use of a cached prepared statement: binds parameters left to right, steps, reads columns,
// and on destruction resets the statement for its next use. Bind errors surface at Step().
class Query {
 public:
  Query(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Query(Query&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        next_(other.next_),
        bind_rc_(other.bind_rc_) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  Query& operator=(Query&&) = delete;
  ~Query() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Query& Bind(std::string_view text) {
    // An empty string_view may have a null data pointer, which SQLite would bind as NULL.
    const char* data = text.data() != nullptr ? text.data() : "";
    return Check(
        sqlite3_bind_text64(stmt_, next_++, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  Query& Bind(int64_t value) { return Check(sqlite3_bind_int64(stmt_, next_++, value)); }
  Query& Bind(int value) { return Bind(static_cast<int64_t>(value)); }
  Query& Bind(double value) { return Check(sqlite3_bind_double(stmt_, next_++, value)); }
  Query& BindNull() { return Check(sqlite3_bind_null(stmt_, next_++)); }
  // Any bytes, as a BLOB.
  Query& BindBytes(std::string_view bytes) {
    return Check(sqlite3_bind_blob64(stmt_, next_++, bytes.data() != nullptr ? bytes.data() : "",
                                     bytes.size(), SQLITE_TRANSIENT));
  }
  template <typename T>
  Query& Bind(const std::optional<T>& value) {
    return value.has_value() ? Bind(*value) : BindNull();
  }

  // Advances to the next row: true when there is one, false when the statement is done.
  Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteError(db_, bind_rc_);
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc);
  }
  // Runs a statement that returns no rows.
  Status Exec() {
    FW_ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return Status::Ok();
  }
  // Rows changed by the last Exec().
  int Changes() const { return sqlite3_changes(db_); }

  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    const int size = sqlite3_column_bytes(stmt_, col);
    return data == nullptr ? std::string() : std::string(data, static_cast<size_t>(size));
  }
  // A BLOB column's bytes.
  std::string Bytes(int col) const {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    const int size = sqlite3_column_bytes(stmt_, col);
    return data == nullptr ? std::string() : std::string(data, static_cast<size_t>(size));
  }
  int64_t Int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  int Int(int col) const { return sqlite3_column_int(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::optional<std::string> OptionalText(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Text(col);
  }
  std::optional<int64_t> OptionalInt64(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Int64(col);
  }
  std::optional<int> OptionalInt(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }
  std::optional<double> OptionalDouble(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Double(col);
  }

 private:
  Query& Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int next_ = 1;
  int bind_rc_ = SQLITE_OK;
};

// A transaction on `db` that is rolled back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    // SQLite rolls some failures (e.g. SQLITE_FULL) back by itself; autocommit tells.
    if (open_ && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  // Writers take the write lock up front (IMMEDIATE) so they wait in the busy handler instead of
  // failing with SQLITE_BUSY when upgrading a read lock; readers only need a snapshot.
  Status Begin(bool write) {
    FW_RETURN_IF_ERROR(Exec(write ? "BEGIN IMMEDIATE" : "BEGIN"));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    FW_RETURN_IF_ERROR(Exec("COMMIT"));
    open_ = false;
    return Status::Ok();
  }

 private:
  Status Exec(const char* sql) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, sqlite3_extended_errcode(db_));
    return Status::Ok();
  }

  sqlite3* db_;
  bool open_ = false;
};

}  // namespace fleetwatch::store::sqlite
