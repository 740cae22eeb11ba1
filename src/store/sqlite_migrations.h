#pragma once

#include <span>

#include "store/schema_steps.h"
#include "util/status.h"

struct sqlite3;

namespace fleetwatch::store {

// The schema version this binary writes: the number of the newest migration step it knows.
int LatestSqliteSchemaVersion();

// This binary's migration steps, in order (schema_steps.h).
std::span<const SchemaStep> SqliteSchemaSteps();

// Brings the schema of `db` up to LatestSqliteSchemaVersion(). The version is kept in
// `PRAGMA user_version`, and the oldest binary version that can use it in the
// `schema_compatibility` table (schema_steps.h); steps newer than it are applied in order, all of
// them in one BEGIN IMMEDIATE transaction together with the version bump, so a crash or a
// concurrent opener never sees a half-migrated file. A file whose version is newer than this
// binary knows is used as it is when its newer steps are all additive; otherwise
// FailedPrecondition (schema_steps.h's CheckSchemaCompatible). Unavailable when the database is
// locked past its busy timeout; Internal otherwise. Not thread-safe: call before `db` is shared.
Status MigrateSqliteSchema(sqlite3* db);
// The same with another list of steps (tests: a newer binary's list).
Status MigrateSqliteSchema(sqlite3* db, std::span<const SchemaStep> steps);

}  // namespace fleetwatch::store
