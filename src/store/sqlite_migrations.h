#pragma once

#include "util/status.h"

struct sqlite3;

namespace fleetwatch::store {

// The schema version this binary writes: the number of the newest migration step it knows.
int LatestSqliteSchemaVersion();

// Brings the schema of `db` up to LatestSqliteSchemaVersion(). The version is kept in
// `PRAGMA user_version`; steps newer than it are applied in order, all of them in one
// BEGIN IMMEDIATE transaction together with the version bump, so a crash or a concurrent opener
// never sees a half-migrated file. FailedPrecondition when the file's version is newer than this
// binary knows; Unavailable when the database is locked past its busy timeout; Internal otherwise.
// Not thread-safe: call before `db` is shared.
Status MigrateSqliteSchema(sqlite3* db);

}  // namespace fleetwatch::store
