#pragma once

#include <optional>
#include <span>

#include "util/status.h"

// Numbered schema migration steps and the rule that lets replicas of two versions share one
// database during a rolling upgrade. Both stores' migrations (sqlite_migrations.cc,
// postgres_migrations.cc) follow it.
//
// A binary's schema version is the number of steps it knows. A database records, with the version
// it was migrated to, the oldest binary schema version that can still use it: the number of the
// newest step up to there that is not additive. A binary opens a database that is newer than
// itself only when its own version is at least that oldest one; it applies nothing then.
//
// For migration authors: a step is additive when a binary that does not know it keeps working,
// correctly, on a database that has it, beside binaries that do: new tables that older binaries
// need not touch, new columns that are nullable or have a default (older binaries' inserts leave
// them out), new indexes. Renaming or dropping anything, a new NOT NULL column without a default,
// a changed meaning of stored values, or a new table that every writer must keep in step (e.g.
// leases that an older binary would ignore) is not additive: mark it so, and every replica must
// run a binary that knows it before it is applied (stop the old ones first). Steps are never
// edited once released; a new one goes at the end.
namespace fleetwatch::store {

struct SchemaStep {
  const char* sql;
  bool additive;  // see above
};

// The oldest binary schema version that can use a database migrated through the first `version`
// steps of `steps`: the number of the newest step among them that is not additive (0 when none).
int OldestCompatibleVersion(std::span<const SchemaStep> steps, int version);

// Whether a binary that knows `binary_version` steps may use a database at `database_version`
// that records `oldest_compatible` (nullopt: unknown, as when nothing recorded it: only binaries
// that know the database's version). FailedPrecondition, saying which version is needed and that
// the server must be upgraded, when not.
Status CheckSchemaCompatible(int binary_version, int database_version,
                             std::optional<int> oldest_compatible);

}  // namespace fleetwatch::store
