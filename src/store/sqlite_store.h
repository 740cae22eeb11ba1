#pragma once

#include <memory>
#include <optional>
#include <string>

#include "store/secret_cipher.h"
#include "store/store.h"
#include "util/status.h"

namespace fleetwatch::store {

struct SqliteStoreOptions {
  // The key that encrypts agent tokens in the database (secret_cipher.h). Unset: the key in
  // `secret.key` beside the database file, created (mode 0600) on first open.
  std::optional<std::array<uint8_t, SecretCipher::kKeyBytes>> secret_key;
};

// Opens the SQLite database file at `path`, creating it (and its parent directories) when missing,
// and brings its schema up to date (sqlite_migrations.h). The database file and its -wal and -shm
// files get mode 0600 (also when they exist with a looser one): they hold the server's secrets. The
// file runs in WAL mode with foreign keys on, synchronous=NORMAL and a 5 s busy timeout; every
// Store method is one transaction (writes: BEGIN IMMEDIATE) that is rolled back on any failure.
//
// Agent tokens are stored only encrypted (SecretCipher): every instance row is encrypted on write
// and decrypted on read, and tokens an older fleetwatch stored in clear are encrypted at open.
//
// Errors from opening: FailedPrecondition when the file's schema is newer than this binary, when
// the key file is unusable (secret_cipher.h) or when the key does not decrypt the stored tokens;
// Unavailable when it stays locked past the busy timeout; Internal when it cannot be created or
// is not a database. Errors from the methods follow store.h: a UNIQUE or primary-key violation
// is AlreadyExists, a foreign-key violation (a referenced project, user, fleet or instance that
// does not exist) is NotFound, SQLITE_BUSY/LOCKED is Unavailable, anything else Internal.
// A value stored in a form the model does not know (an unknown status text) is Internal.
//
// Deleted runs stay visible to GetRunById and ListRunsWithStatus (store.h hides them only from
// GetRun and ListRuns): counters need them. ListRunsWithStatus({}) is empty; RunFilter.limit <= 0
// gives an empty list.
//
// Thread-safe: one connection serialized by a mutex. Several processes may open the same file;
// SQLite's file locks and the busy timeout arbitrate between them.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const SqliteStoreOptions& options = {});

}  // namespace fleetwatch::store
