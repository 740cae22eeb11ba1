#pragma once

#include <libpq-fe.h>

#include "util/status.h"

namespace fleetwatch::store {

// The schema version this binary writes: the number of the newest PostgreSQL migration step.
int LatestPostgresSchemaVersion();

// Brings the schema of the database `conn` is connected to up to LatestPostgresSchemaVersion().
// Applied versions are rows of `schema_migrations`. The whole check-and-apply runs under a
// session advisory lock, so replicas starting together migrate once: the first applies the
// missing steps, the others wait for it and then find nothing to do. Each step commits in one
// transaction with its version row. Steps are additive within a release (new tables, columns with
// defaults, indexes), so replicas of the previous version keep working during a rolling upgrade.
// FailedPrecondition when the database's version is newer than this binary knows; Unavailable
// when the connection fails; Internal otherwise. Not thread-safe: call before `conn` is shared.
Status MigratePostgresSchema(PGconn* conn);

}  // namespace fleetwatch::store
