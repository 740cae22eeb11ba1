#pragma once

#include <libpq-fe.h>

#include <span>

#include "store/schema_steps.h"
#include "util/status.h"

namespace fleetwatch::store {

// The schema version this binary writes: the number of the newest PostgreSQL migration step.
int LatestPostgresSchemaVersion();

// This binary's migration steps, in order (schema_steps.h).
std::span<const SchemaStep> PostgresSchemaSteps();

// Brings the schema of the database `conn` is connected to up to LatestPostgresSchemaVersion().
// Applied versions are rows of `schema_migrations`, each with the oldest binary schema version
// that can use the database migrated to it (schema_steps.h). The whole check-and-apply runs under
// a session advisory lock, so replicas starting together migrate once: the first applies the
// missing steps, the others wait for it and then find nothing to do. Each step commits in one
// transaction with its version row. During a rolling upgrade, replicas of the previous version
// keep working on the database the new ones migrated as long as the new steps are additive (a
// replica opens a newer schema only then, and applies nothing); a step that is not additive
// makes them refuse to start. FailedPrecondition when the database's version is newer than this
// binary knows and not compatible with it; Unavailable when the connection fails; Internal
// otherwise. Not thread-safe: call before `conn` is shared.
Status MigratePostgresSchema(PGconn* conn);
// The same with another list of steps (tests: a newer binary's list).
Status MigratePostgresSchema(PGconn* conn, std::span<const SchemaStep> steps);

}  // namespace fleetwatch::store
