#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "store/secret_cipher.h"
#include "store/store.h"
#include "util/status.h"

namespace fleetwatch::store {

struct PostgresStoreOptions {
  // The key that encrypts agent tokens in the database (secret_cipher.h). Every replica on one
  // database must be given the same key (FLEETWATCH_ENCRYPTION_KEY).
  std::array<uint8_t, SecretCipher::kKeyBytes> secret_key{};
};

// Connects to the PostgreSQL database at `url` (a libpq connection URI or key=value string,
// e.g. "postgresql://fleetwatch@db.internal/fleetwatch") and brings its schema up to date under an
// advisory lock (postgres_migrations.h), so several replicas may open it at once.
//
// Semantics follow store.h and match the SQLite store (the same contract suite passes on both):
// every Store method is one transaction, writes SERIALIZABLE (retried from the start, a few times,
// when another replica's transaction conflicts) and reads one READ ONLY snapshot; every value is
// a bound parameter, never spliced into SQL. Text compares and sorts bytewise (COLLATE "C").
// Agent tokens are stored only encrypted, as in the SQLite store.
//
// Errors from opening: Unavailable when the server cannot be reached; FailedPrecondition when the
// schema is newer than this binary or the key does not decrypt the stored tokens; Internal
// otherwise. Errors from the methods: unique violation AlreadyExists, foreign-key violation
// NotFound, a conflict that outlasts the retries or a lost connection Unavailable (the next call
// reconnects), text PostgreSQL cannot hold (a NUL byte, or bytes that are not UTF-8)
// InvalidArgument with nothing changed, anything else Internal.
//
// Thread-safe: one connection serialized by a mutex. Several processes (replicas) may open the
// same database.
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                 const PostgresStoreOptions& options);

}  // namespace fleetwatch::store
