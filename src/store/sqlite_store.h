#pragma once

#include <memory>
#include <string>

#include "store/store.h"
#include "util/status.h"

namespace fleetwatch::store {

// Opens the SQLite database file at `path`, creating it (and its parent directories) when missing,
// and brings its schema up to date (sqlite_migrations.h). The file runs in WAL mode with foreign
// keys on, synchronous=NORMAL and a 5 s busy timeout; every Store method is one transaction
// (writes: BEGIN IMMEDIATE) that is rolled back on any failure.
//
// Errors from opening: FailedPrecondition when the file's schema is newer than this binary;
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
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace fleetwatch::store
