#include "store/postgres_store.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "model/entities.h"
#include "model/status.h"
#include "store/change_keys.h"
#include "store/postgres_migrations.h"
#include "store/postgres_query.h"
#include "store/row_mapping.h"
#include "store/secret_cipher.h"
#include "store/sql_store.h"
#include "util/mutex.h"

namespace fleetwatch::store {
namespace postgres {
namespace {

using rows::kFinishedJobStatuses;
using rows::PointsOf;
using rows::Sql;
using rows::WithContext;

const Status& StatusOf(const Status& status) { return status; }
template <typename T>
Status StatusOf(const Result<T>& result) {
  return result.status();
}

// The Store methods are SqlStore's (sql_store.h) but for those below. Thread-safe: every public
// method takes mu_ for its whole transaction.
class PostgresStore final : public sql::SqlStore<PostgresStore, Query> {
 public:
  static constexpr rows::Dialect kDialect = rows::Dialect::kPostgres;
  static constexpr leases::Dialect kLeaseDialect = leases::Dialect::kPostgres;
  static constexpr bool kNotifies = true;

  PostgresStore(ConnHandle conn, const SecretCipher& cipher)
      : SqlStore(cipher), conn_(std::move(conn)) {}

  // Proves that the key decrypts the stored agent tokens (a wrong key fails here, at start, not at
  // the first poll), and encrypts any stored in clear.
  Status SealAgentTokens() { return SealStoredAgentTokens("FLEETWATCH_ENCRYPTION_KEY").status(); }

  Result<std::vector<RunCount>> CountRuns() override {
    return Read([&]() -> Result<std::vector<RunCount>> {
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
      return out;
    });
  }

  Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfUnfinishedJobs() override {
    return Read([&]() -> Result<std::vector<model::JobMetricsPoint>> {
      // The first row of each job in (job_id, timestamp_micro DESC) order: the primary key,
      // walked backwards.
      FW_ASSIGN_OR_RETURN(Query q,
                          Prepare(Sql("SELECT DISTINCT ON (m.job_id) m.job_id, m.timestamp_micro, "
                                      "m.cpu_usage_micro, m.memory_usage_bytes, "
                                      "m.memory_working_set_bytes, m.gpus_memory_usage_bytes, "
                                      "m.gpus_util_percent FROM job_metrics_points m "
                                      "JOIN jobs j ON j.id = m.job_id WHERE j.status NOT IN ",
                                      kFinishedJobStatuses) +
                                  " ORDER BY m.job_id, m.timestamp_micro DESC"));
      return PointsOf(q);
    });
  }

 private:
  friend class sql::SqlStore<PostgresStore, Query>;

  // SqlStore's transaction (sql_store.h): runs `fn` inside one transaction under mu_: committed
  // when it succeeds, rolled back when it fails. A write is SERIALIZABLE; a write that loses a
  // serialization conflict to another replica is run again from the start (fn reads everything it
  // decides on inside the transaction), a few times. A lost connection is re-established before the
  // transaction. `versions` are raised by one each, under mu_ and once however many attempts the
  // transaction takes (RunsVersion, InstancesVersion).
  template <typename Fn>
  auto InTransaction(sql::Access access, std::initializer_list<std::atomic<int64_t>*> versions,
                     Fn&& fn) -> decltype(fn()) {
    const bool write = access != sql::Access::kRead;
    MutexLock lock(mu_);
    for (std::atomic<int64_t>* version : versions) ++*version;
    constexpr int kAttempts = 8;
    for (int attempt = 1;; ++attempt) {
      if (PQstatus(conn_.get()) != CONNECTION_OK) {
        statements_.clear();  // prepared statements die with their session
        PQreset(conn_.get());
        if (PQstatus(conn_.get()) != CONNECTION_OK) {
          return Unavailable(std::string("cannot reconnect to the database: ") +
                             PQerrorMessage(conn_.get()));
        }
      }
      PGconn* conn = conn_.get();  // read under the lock: the lambda is opaque to the analysis
      auto result = [&]() -> decltype(fn()) {
        Transaction transaction(conn);
        FW_RETURN_IF_ERROR(transaction.Begin(write));
        auto inner = fn();
        if (!inner.ok()) return inner;
        FW_RETURN_IF_ERROR(transaction.Commit());
        return inner;
      }();
      if (result.ok() || attempt == kAttempts || !IsRetryable(StatusOf(result))) return result;
    }
  }

  // The prepared statement for `sql`, prepared on first use in this session and kept
  // (the server parses and plans it once). Requires mu_.
  Result<Query> Compile(const std::string& sql) {
    // Called from the functions that InTransaction runs, which the analysis sees as lock-free:
    // checked at run time instead.
    mu_.AssertHeld();
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      std::string name = "fw" + std::to_string(statements_.size() + 1);
      FW_RETURN_IF_ERROR(PrepareStatement(conn_.get(), name, sql));
      it = statements_.emplace(sql, std::move(name)).first;
    }
    return Query::OfPrepared(conn_.get(), it->second);
  }

  // Notifies `channel` with `keys` (change_keys.h), delivered when the transaction commits.
  Status Notify(const char* channel, const std::vector<std::string>& keys) {
    for (const std::string& payload : ChangePayloads(keys)) {
      FW_ASSIGN_OR_RETURN(Query q, Prepare("SELECT pg_notify(?, ?)"));
      q.Bind(channel).Bind(payload);
      FW_RETURN_IF_ERROR(WithContext(q.Exec(), std::string("notify ") + channel));
    }
    return Status::Ok();
  }

  Mutex mu_;
  ConnHandle conn_ FW_GUARDED_BY(mu_);
  // SQL -> name of its prepared statement in the current session.
  std::unordered_map<std::string, std::string> statements_ FW_GUARDED_BY(mu_);
};

}  // namespace
}  // namespace postgres

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                 const PostgresStoreOptions& options) {
  std::array<uint8_t, SecretCipher::kKeyBytes> key = options.secret_key;
  const SecretCipher cipher(key);
  OPENSSL_cleanse(key.data(), key.size());
  postgres::ConnHandle conn(PQconnectdb(url.c_str()));
  if (conn == nullptr) return Internal("cannot connect to the database: out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    // libpq's message names the host and port, never the password.
    std::string message = PQerrorMessage(conn.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Unavailable("cannot connect to the database: " + message);
  }
  // Notices ("relation already exists, skipping") are not errors: libpq would print them.
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  // Every timestamp is UTC micros in BIGINT columns; the encoding is the one text is checked in.
  FW_RETURN_IF_ERROR(postgres::ExecSimple(conn.get(), "SET client_encoding = 'UTF8'"));
  FW_RETURN_IF_ERROR(postgres::WithContext(MigratePostgresSchema(conn.get()), "migrate schema"));
  auto store = std::make_unique<postgres::PostgresStore>(std::move(conn), cipher);
  FW_RETURN_IF_ERROR(store->SealAgentTokens());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace fleetwatch::store
