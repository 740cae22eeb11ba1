#include "store/sqlite_migrations.h"

#include <sqlite3.h>

#include <array>
#include <optional>
#include <span>
#include <string>

namespace fleetwatch::store {
namespace {

// Numbered schema steps; step i (from 1) is kMigrations[i - 1]. Never edit a released step: add a
// new one at the end, and say whether it is additive (store/schema_steps.h has the rule: an older
// binary keeps working on a database with an additive step; steps 1-10 predate the rule and are
// marked not additive). The SQL stays within what PostgreSQL also accepts (TEXT ids, BIGINT
// micros, DOUBLE PRECISION money, partial indexes) so the PostgreSQL store can share the design.
constexpr std::array<SchemaStep, 16> kMigrations = {{
    // 1: initial schema.
    {R"sql(
CREATE TABLE users (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  global_role TEXT NOT NULL,
  token_hash  TEXT NOT NULL UNIQUE,
  created_at  BIGINT NOT NULL
);

CREATE TABLE projects (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  owner_id   TEXT NOT NULL REFERENCES users (id),
  created_at BIGINT NOT NULL
);

CREATE TABLE members (
  project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role       TEXT NOT NULL,
  PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE fleets (
  id            TEXT PRIMARY KEY,
  project_id    TEXT NOT NULL REFERENCES projects (id),
  name          TEXT NOT NULL,
  status        TEXT NOT NULL,
  configuration TEXT NOT NULL,
  created_at    BIGINT NOT NULL,
  UNIQUE (project_id, name)
);

CREATE TABLE instances (
  id           TEXT PRIMARY KEY,
  project_id   TEXT NOT NULL REFERENCES projects (id),
  fleet_id     TEXT NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
  name         TEXT NOT NULL,
  instance_num INTEGER NOT NULL,
  status       TEXT NOT NULL,
  backend      TEXT NOT NULL,
  hostname     TEXT NOT NULL,
  agent_port   INTEGER NOT NULL,
  agent_token  TEXT NOT NULL,
  price        DOUBLE PRECISION,
  resources    TEXT NOT NULL,
  created_at   BIGINT NOT NULL,
  UNIQUE (fleet_id, instance_num),
  UNIQUE (fleet_id, name)
);
CREATE INDEX instances_by_project ON instances (project_id);

CREATE TABLE runs (
  id                 TEXT PRIMARY KEY,
  project_id         TEXT NOT NULL REFERENCES projects (id),
  user_id            TEXT NOT NULL REFERENCES users (id),
  run_name           TEXT NOT NULL,
  run_type           TEXT NOT NULL,
  status             TEXT NOT NULL,
  termination_reason TEXT,
  submitted_at       BIGINT NOT NULL,
  finished_at        BIGINT,
  configuration      TEXT NOT NULL,
  cost               DOUBLE PRECISION NOT NULL DEFAULT 0,
  deleted            INTEGER NOT NULL DEFAULT 0
);
-- At most one unfinished, undeleted run per (project, name); finished runs may share the name.
CREATE UNIQUE INDEX runs_unfinished_name ON runs (project_id, run_name)
  WHERE deleted = 0 AND status NOT IN ('terminated', 'failed', 'done');
CREATE INDEX runs_by_project_submitted ON runs (project_id, submitted_at DESC);
CREATE INDEX runs_by_status_submitted ON runs (status, submitted_at);

CREATE TABLE jobs (
  id                 TEXT PRIMARY KEY,
  run_id             TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  job_name           TEXT NOT NULL,
  job_num            INTEGER NOT NULL,
  replica_num        INTEGER NOT NULL,
  status             TEXT NOT NULL,
  termination_reason TEXT,
  exit_code          INTEGER,
  instance_id        TEXT REFERENCES instances (id) ON DELETE SET NULL,
  instance_name      TEXT,
  gpu_indices        TEXT NOT NULL,
  submitted_at       BIGINT NOT NULL,
  finished_at        BIGINT
);
-- Serves "jobs of a run in order" and keeps (job_num, replica_num) unique within a run.
CREATE UNIQUE INDEX jobs_by_run ON jobs (run_id, job_num, replica_num);
CREATE INDEX jobs_by_instance ON jobs (instance_id);
)sql",
     /*additive=*/false},
    // 2: agents. Reachability and identity of each instance's agent; when a job started.
    {R"sql(
ALTER TABLE instances ADD COLUMN unreachable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN last_seen_at BIGINT;
ALTER TABLE instances ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN started_at BIGINT;
)sql",
     /*additive=*/false},
    // 3: job metrics points, one per job per collection.
    {R"sql(
CREATE TABLE job_metrics_points (
  job_id                   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  timestamp_micro          BIGINT NOT NULL,
  cpu_usage_micro          BIGINT NOT NULL,
  memory_usage_bytes       BIGINT NOT NULL,
  memory_working_set_bytes BIGINT NOT NULL,
  gpus_memory_usage_bytes  TEXT NOT NULL,
  gpus_util_percent        TEXT NOT NULL,
  PRIMARY KEY (job_id, timestamp_micro)
);
CREATE INDEX job_metrics_points_by_time ON job_metrics_points (timestamp_micro);
)sql",
     /*additive=*/false},
    // 4: usage totals. Money and GPU time per (project, user), accumulated as jobs run; names,
    // not ids, so totals outlive deleted projects and users (counters never go down).
    {R"sql(
ALTER TABLE jobs ADD COLUMN usage_accounted_until BIGINT;
-- Only the jobs with running time not yet accounted: the accounting pass reads this index.
CREATE INDEX jobs_unaccounted ON jobs (id)
  WHERE started_at IS NOT NULL
    AND (finished_at IS NULL OR usage_accounted_until IS NULL
         OR usage_accounted_until < finished_at);
CREATE TABLE usage_totals (
  project_name TEXT NOT NULL,
  user_name    TEXT NOT NULL,
  cost_dollars REAL NOT NULL,
  gpu_seconds  REAL NOT NULL,
  PRIMARY KEY (project_name, user_name)
);
)sql",
     /*additive=*/false},
    // 5: TLS to agents. Instances stored before spoke plain HTTP, so they keep tls = 0.
    {R"sql(
ALTER TABLE instances ADD COLUMN tls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN tls_ca_cert TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN tls_fingerprint TEXT NOT NULL DEFAULT '';
)sql",
     /*additive=*/false},
    // 6: deleted users. A deleted user's row stays (runs and counters name it, projects it owns
    // reference it) with no usable token; only the server's own queries see it.
    {R"sql(
ALTER TABLE users ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
)sql",
     /*additive=*/false},
    // 7: the server's words on why a job waits or ended (the API's status_message).
    {R"sql(
ALTER TABLE jobs ADD COLUMN status_detail TEXT;
)sql",
     /*additive=*/false},
    // 8: the GPU state ledger and the hourly GPU time of runs (idle GPU time and its cost).
    {R"sql(
-- The GPU state ledger (server/gpu_ledger.h): each GPU's seconds per state, ever, and up to when
-- they are accounted (so a restart never counts an interval twice).
CREATE TABLE gpu_ledger (
  instance_id           TEXT NOT NULL,
  gpu                   INTEGER NOT NULL,
  accounted_until       BIGINT NOT NULL,
  busy_seconds          DOUBLE PRECISION NOT NULL DEFAULT 0,
  idle_held_seconds     DOUBLE PRECISION NOT NULL DEFAULT 0,
  reserved_idle_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
  free_seconds          DOUBLE PRECISION NOT NULL DEFAULT 0,
  unhealthy_seconds     DOUBLE PRECISION NOT NULL DEFAULT 0,
  PRIMARY KEY (instance_id, gpu)
);
-- Held-but-idle GPU time and its cost per (project, user), like usage_totals.
CREATE TABLE gpu_idle_totals (
  project_name      TEXT NOT NULL,
  user_name         TEXT NOT NULL,
  idle_seconds      DOUBLE PRECISION NOT NULL,
  idle_cost_dollars DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (project_name, user_name)
);
-- GPU time held by each run's jobs and its idle part, per hour (the hour's start, UTC micros).
CREATE TABLE gpu_run_hours (
  run_id            TEXT NOT NULL,
  hour              BIGINT NOT NULL,
  project_name      TEXT NOT NULL,
  user_name         TEXT NOT NULL,
  run_name          TEXT NOT NULL,
  held_seconds      DOUBLE PRECISION NOT NULL,
  idle_seconds      DOUBLE PRECISION NOT NULL,
  idle_cost_dollars DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (run_id, hour)
);
CREATE INDEX gpu_run_hours_by_hour ON gpu_run_hours (hour);
)sql",
     /*additive=*/false},
    // 9: replicas and instance leases (store.h "replicas and instance leases"): each server
    // process registers a heartbeat row, polls only the instances it leases, and writes runs
    // conditionally on their row version.
    {R"sql(
CREATE TABLE replicas (
  id           TEXT PRIMARY KEY,
  started_at   BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  version      TEXT NOT NULL
);
ALTER TABLE instances ADD COLUMN lock_owner TEXT;
ALTER TABLE instances ADD COLUMN lock_token TEXT;
ALTER TABLE instances ADD COLUMN lock_expires_at BIGINT;
CREATE INDEX instances_by_lock_owner ON instances (lock_owner);
ALTER TABLE runs ADD COLUMN row_version BIGINT NOT NULL DEFAULT 0;
)sql",
     /*additive=*/false},
    // 10: energy and job summaries. Each job's running aggregates (GPU energy, utilization,
    // peaks) and, once it has ended, its summary: kept as long as the job's run, whatever metrics
    // retention deletes. Energy, utilization-weighted GPU time and carbon per (project, user),
    // by name like usage_totals (counters never go down).
    {R"sql(
CREATE TABLE job_aggregates (
  job_id   TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  revision INTEGER NOT NULL,
  state    TEXT NOT NULL,
  summary  TEXT
);
CREATE INDEX job_aggregates_open ON job_aggregates (job_id) WHERE summary IS NULL;
CREATE TABLE energy_totals (
  project_name     TEXT NOT NULL,
  user_name        TEXT NOT NULL,
  energy_joules    REAL NOT NULL,
  busy_gpu_seconds REAL NOT NULL,
  carbon_grams     REAL NOT NULL,
  PRIMARY KEY (project_name, user_name)
);
)sql",
     /*additive=*/false},
    // 11: logs of ended jobs, kept in the database (store.h "logs of ended jobs"): a row per log
    // and its bytes in rows of at most chunk_bytes, keyed by (job_id, seq).
    {R"sql(
CREATE TABLE job_logs (
  job_id      TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  size        BIGINT NOT NULL,
  chunk_bytes BIGINT NOT NULL
);
CREATE TABLE job_log_chunks (
  job_id TEXT NOT NULL REFERENCES job_logs (job_id) ON DELETE CASCADE,
  seq    BIGINT NOT NULL,
  data   BLOB NOT NULL,
  PRIMARY KEY (job_id, seq)
);
)sql",
     /*additive=*/true},
    // 12: jobs by finish time, for the right-sizing notes of the jobs that ended in a window.
    {R"sql(
CREATE INDEX jobs_by_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
)sql",
     /*additive=*/true},
    // 13: run events that the server's counters count (dstack_pending_runs_total,
    // dstack_submit_to_provision_duration_seconds): each (run, kind) once, whichever server saw
    // it, and their totals per (project, run type, kind, histogram bucket), by name like
    // usage_totals (counters never go down, whatever is deleted).
    {R"sql(
CREATE TABLE run_events (
  run_id TEXT NOT NULL,
  kind   TEXT NOT NULL,
  PRIMARY KEY (run_id, kind)
);
CREATE TABLE run_event_totals (
  project_name TEXT NOT NULL,
  run_type     TEXT NOT NULL,
  kind         TEXT NOT NULL,
  bucket       INTEGER NOT NULL,
  count        INTEGER NOT NULL,
  seconds      REAL NOT NULL,
  PRIMARY KEY (project_name, run_type, kind, bucket)
);
)sql",
     /*additive=*/true},
    // 14: shared render state: each host's DCGM text as last stored (store.h HostDcgm). One
    // server on SQLite: stored so that both stores keep one contract.
    {R"sql(
CREATE TABLE host_dcgm (
  instance_id  TEXT PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
  version      INTEGER NOT NULL,
  collected_at INTEGER,
  dcgm_text    TEXT NOT NULL,
  dcgm_error   TEXT NOT NULL,
  received_at  INTEGER NOT NULL
);
)sql",
     /*additive=*/true},
    // 15: each job's GPU energy as stored with its aggregates (store.h ListRunEnergy). Rows stored
    // before have 0 until their job's next store.
    {R"sql(
ALTER TABLE job_aggregates ADD COLUMN energy_joules REAL NOT NULL DEFAULT 0;
)sql",
     /*additive=*/true},
    // 16: a log copy is written a chunk per transaction; its writer's token is set until the last
    // chunk is in (NULL: complete, as every older row is).
    {"ALTER TABLE job_logs ADD COLUMN writer TEXT;", /*additive=*/true},
}};

Status Error(sqlite3* db, const std::string& what) {
  const int rc = sqlite3_extended_errcode(db);
  std::string message = what + ": " + sqlite3_errmsg(db);
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return Unavailable(std::move(message));
  return Internal(std::move(message));
}

Status Exec(sqlite3* db, const char* sql, const std::string& what) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Error(db, what);
  return Status::Ok();
}

Status ReadUserVersion(sqlite3* db, int& version) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) {
    return Error(db, "read schema version");
  }
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) return Error(db, "read schema version");
  return Status::Ok();
}

// What the database records beside PRAGMA user_version: per version migrated to, the oldest
// binary schema version that can use it (schema_steps.h). Created here, not by a step: the rule
// covers the steps themselves.
constexpr const char* kCompatibilityTable =
    "CREATE TABLE IF NOT EXISTS schema_compatibility (version INTEGER PRIMARY KEY, "
    "oldest_binary_version INTEGER NOT NULL)";

Result<std::optional<int>> ReadOldestCompatible(sqlite3* db, int version) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT oldest_binary_version FROM schema_compatibility WHERE version = ?",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    return Error(db, "read schema compatibility");
  }
  sqlite3_bind_int(stmt, 1, version);
  const int rc = sqlite3_step(stmt);
  std::optional<int> oldest;
  if (rc == SQLITE_ROW) oldest = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error(db, "read schema compatibility");
  return oldest;
}

Status WriteOldestCompatible(sqlite3* db, int version, int oldest) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "INSERT OR REPLACE INTO schema_compatibility (version, "
                         "oldest_binary_version) VALUES (?, ?)",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    return Error(db, "write schema compatibility");
  }
  sqlite3_bind_int(stmt, 1, version);
  sqlite3_bind_int(stmt, 2, oldest);
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Error(db, "write schema compatibility");
  return Status::Ok();
}

Status ApplyMissingSteps(sqlite3* db, std::span<const SchemaStep> steps) {
  int version = 0;
  FW_RETURN_IF_ERROR(ReadUserVersion(db, version));
  const int latest = static_cast<int>(steps.size());
  if (version > latest) {
    // A newer binary migrated it: usable when what it added is additive (nothing is applied).
    // The table may be missing when no binary of this rule wrote it.
    std::optional<int> oldest;
    sqlite3_stmt* probe = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM schema_compatibility", -1, &probe, nullptr) ==
        SQLITE_OK) {
      sqlite3_finalize(probe);
      FW_ASSIGN_OR_RETURN(oldest, ReadOldestCompatible(db, version));
    }
    return CheckSchemaCompatible(latest, version, oldest);
  }
  FW_RETURN_IF_ERROR(Exec(db, kCompatibilityTable, "create the schema compatibility table"));
  for (int step = version + 1; step <= latest; ++step) {
    FW_RETURN_IF_ERROR(Exec(db, steps[static_cast<size_t>(step - 1)].sql,
                            "apply schema migration " + std::to_string(step)));
  }
  if (version != latest) {
    // PRAGMA takes no bound parameters; the number is this binary's own constant.
    const std::string bump = "PRAGMA user_version = " + std::to_string(latest);
    FW_RETURN_IF_ERROR(Exec(db, bump.c_str(), "write schema version"));
    FW_RETURN_IF_ERROR(WriteOldestCompatible(db, latest, OldestCompatibleVersion(steps, latest)));
  }
  return Status::Ok();
}

}  // namespace

std::span<const SchemaStep> SqliteSchemaSteps() { return kMigrations; }

int LatestSqliteSchemaVersion() { return static_cast<int>(kMigrations.size()); }

Status MigrateSqliteSchema(sqlite3* db) { return MigrateSqliteSchema(db, kMigrations); }

Status MigrateSqliteSchema(sqlite3* db, std::span<const SchemaStep> steps) {
  // IMMEDIATE: the version is read under the write lock, so two processes opening a fresh file at
  // once cannot both apply step 1.
  FW_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE", "begin schema migration"));
  Status status = ApplyMissingSteps(db, steps);
  if (status.ok()) status = Exec(db, "COMMIT", "commit schema migration");
  if (!status.ok() && !sqlite3_get_autocommit(db)) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

}  // namespace fleetwatch::store
