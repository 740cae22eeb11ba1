#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

// libpq plumbing of the PostgreSQL store: error mapping, owned handles, a bound query read as a
// cursor (the row API of row_mapping.h), a transaction. Not thread-safe: a connection and its
// queries belong to one user at a time (PostgresStore serializes them with its mutex).
namespace fleetwatch::store::postgres {

struct ConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using ConnHandle = std::unique_ptr<PGconn, ConnCloser>;

struct ResultClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};
using ResultHandle = std::unique_ptr<PGresult, ResultClearer>;

// Maps a failed command (`result` may be null when the connection failed) to the Store error
// policy: unique violation AlreadyExists, foreign-key violation NotFound, serialization failure,
// deadlock, lost connection or shutdown Unavailable, text the database encoding cannot hold
// InvalidArgument, anything else Internal.
Status PgError(PGconn* conn, const PGresult* result);

// True when `status` came from a serialization failure or deadlock: the transaction may be
// retried from its start.
bool IsRetryable(const Status& status);

// SQL written with `?` placeholders (as the SQLite store's) in PostgreSQL's `$1, $2...` form. A `?`
// inside a quoted literal or identifier stays as it is.
std::string Numbered(std::string_view sql);

// Prepares `sql_with_question_marks` on `conn` as the named statement `name`; it lives as long as
// the session (a reconnect forgets it).
Status PrepareStatement(PGconn* conn, const std::string& name,
                        std::string_view sql_with_question_marks);

// Runs `sql` (no parameters, no rows wanted).
Status ExecSimple(PGconn* conn, const char* sql);

// One execution of `sql`: binds parameters left to right (sent as text, never spliced into the
// SQL), runs at the first Step()/Exec(), then reads the result's rows in order. Bind errors (text
// with a NUL byte, which PostgreSQL's text cannot hold) surface at Step()/Exec().
class Query {
 public:
  Query(PGconn* conn, std::string_view sql_with_question_marks);
  // A use of the statement prepared on `conn` under `statement_name` (PrepareStatement).
  static Query OfPrepared(PGconn* conn, std::string statement_name);

  Query& Bind(std::string_view text);
  Query& Bind(const char* text) { return Bind(std::string_view(text)); }
  Query& Bind(const std::string& text) { return Bind(std::string_view(text)); }
  Query& Bind(int64_t value);
  Query& Bind(int value) { return Bind(static_cast<int64_t>(value)); }
  Query& Bind(double value);
  Query& BindNull();
  // Any bytes, for a BYTEA parameter (sent in binary: no escaping, no NUL check).
  Query& BindBytes(std::string_view bytes);
  template <typename T>
  Query& Bind(const std::optional<T>& value) {
    return value.has_value() ? Bind(*value) : BindNull();
  }

  // Advances to the next row: true when there is one, false when there are no more.
  Result<bool> Step();
  // Runs a statement whose rows are not wanted.
  Status Exec();
  // Rows changed by the statement (after Exec()).
  int Changes() const;

  bool IsNull(int col) const;
  std::string Text(int col) const;
  // A BYTEA column's bytes.
  std::string Bytes(int col) const;
  int64_t Int64(int col) const;
  int Int(int col) const { return static_cast<int>(Int64(col)); }
  double Double(int col) const;
  std::optional<std::string> OptionalText(int col) const;
  std::optional<int64_t> OptionalInt64(int col) const;
  std::optional<int> OptionalInt(int col) const;
  std::optional<double> OptionalDouble(int col) const;

 private:
  Status Run();

  Query(PGconn* conn, std::string statement_name, bool prepared)
      : conn_(conn), sql_(std::move(statement_name)), prepared_(prepared) {}

  PGconn* conn_;
  std::string sql_;  // the SQL, or the prepared statement's name
  bool prepared_ = false;
  std::vector<std::optional<std::string>> params_;
  std::vector<int> formats_;  // per parameter: 0 text, 1 binary (BindBytes)
  Status bind_error_;
  ResultHandle result_;
  int row_ = -1;
};

// A transaction on `conn` that is rolled back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(PGconn* conn) : conn_(conn) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // Writers run SERIALIZABLE (as SQLite's single writer: a check and the write it guards cannot
  // interleave with another replica's); readers see one snapshot (REPEATABLE READ, READ ONLY).
  Status Begin(bool write);
  Status Commit();

 private:
  PGconn* conn_;
  bool open_ = false;
};

}  // namespace fleetwatch::store::postgres
