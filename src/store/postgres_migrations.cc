#include "store/postgres_migrations.h"

#include <libpq-fe.h>

#include <array>
#include <optional>
#include <span>
#include <string>

#include "store/postgres_query.h"

namespace fleetwatch::store {
namespace {

// Numbered schema steps; step i (from 1) is kMigrations[i - 1]. Never edit a released step: add a
// new one at the end, and say whether it is additive (store/schema_steps.h has the rule: replicas
// of the previous version keep working on a database with an additive step, so they can run
// beside new ones during a rolling upgrade; steps 1-4 predate the rule and are marked not
// additive). Text columns compare and sort bytewise (COLLATE "C"), as SQLite's do, whatever the
// database's locale. Every foreign key that a query joins or filters on has an index whose first
// column is that key.
constexpr std::array<SchemaStep, 10> kMigrations = {{
    // 1: the schema of SQLite's steps 1-7, at once.
    {R"sql(
CREATE TABLE users (
  id          TEXT COLLATE "C" PRIMARY KEY,
  name        TEXT COLLATE "C" NOT NULL UNIQUE,
  global_role TEXT COLLATE "C" NOT NULL,
  token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
  created_at  BIGINT NOT NULL,
  deleted     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE projects (
  id         TEXT COLLATE "C" PRIMARY KEY,
  name       TEXT COLLATE "C" NOT NULL UNIQUE,
  owner_id   TEXT COLLATE "C" NOT NULL REFERENCES users (id),
  created_at BIGINT NOT NULL
);
CREATE INDEX projects_by_owner ON projects (owner_id);

CREATE TABLE members (
  project_id TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role       TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE fleets (
  id            TEXT COLLATE "C" PRIMARY KEY,
  project_id    TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
  name          TEXT COLLATE "C" NOT NULL,
  status        TEXT COLLATE "C" NOT NULL,
  configuration TEXT COLLATE "C" NOT NULL,
  created_at    BIGINT NOT NULL,
  UNIQUE (project_id, name)
);

CREATE TABLE instances (
  id              TEXT COLLATE "C" PRIMARY KEY,
  project_id      TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
  fleet_id        TEXT COLLATE "C" NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
  name            TEXT COLLATE "C" NOT NULL,
  instance_num    INTEGER NOT NULL,
  status          TEXT COLLATE "C" NOT NULL,
  backend         TEXT COLLATE "C" NOT NULL,
  hostname        TEXT COLLATE "C" NOT NULL,
  agent_port      INTEGER NOT NULL,
  agent_token     TEXT COLLATE "C" NOT NULL,
  price           DOUBLE PRECISION,
  resources       TEXT COLLATE "C" NOT NULL,
  created_at      BIGINT NOT NULL,
  unreachable     INTEGER NOT NULL DEFAULT 0,
  last_seen_at    BIGINT,
  agent_id        TEXT COLLATE "C" NOT NULL DEFAULT '',
  tls             INTEGER NOT NULL DEFAULT 0,
  tls_ca_cert     TEXT COLLATE "C" NOT NULL DEFAULT '',
  tls_fingerprint TEXT COLLATE "C" NOT NULL DEFAULT '',
  UNIQUE (fleet_id, instance_num),
  UNIQUE (fleet_id, name)
);
CREATE INDEX instances_by_project ON instances (project_id);

CREATE TABLE runs (
  id                 TEXT COLLATE "C" PRIMARY KEY,
  project_id         TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
  user_id            TEXT COLLATE "C" NOT NULL REFERENCES users (id),
  run_name           TEXT COLLATE "C" NOT NULL,
  run_type           TEXT COLLATE "C" NOT NULL,
  status             TEXT COLLATE "C" NOT NULL,
  termination_reason TEXT COLLATE "C",
  submitted_at       BIGINT NOT NULL,
  finished_at        BIGINT,
  configuration      TEXT COLLATE "C" NOT NULL,
  cost               DOUBLE PRECISION NOT NULL DEFAULT 0,
  deleted            INTEGER NOT NULL DEFAULT 0
);
-- At most one unfinished, undeleted run per (project, name); finished runs may share the name.
CREATE UNIQUE INDEX runs_unfinished_name ON runs (project_id, run_name)
  WHERE deleted = 0 AND status NOT IN ('terminated', 'failed', 'done');
CREATE INDEX runs_by_project_submitted ON runs (project_id, submitted_at DESC);
CREATE INDEX runs_by_status_submitted ON runs (status, submitted_at);
CREATE INDEX runs_by_user ON runs (user_id);

CREATE TABLE jobs (
  id                    TEXT COLLATE "C" PRIMARY KEY,
  run_id                TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  job_name              TEXT COLLATE "C" NOT NULL,
  job_num               INTEGER NOT NULL,
  replica_num           INTEGER NOT NULL,
  status                TEXT COLLATE "C" NOT NULL,
  termination_reason    TEXT COLLATE "C",
  exit_code             INTEGER,
  instance_id           TEXT COLLATE "C" REFERENCES instances (id) ON DELETE SET NULL,
  instance_name         TEXT COLLATE "C",
  gpu_indices           TEXT COLLATE "C" NOT NULL,
  submitted_at          BIGINT NOT NULL,
  finished_at           BIGINT,
  started_at            BIGINT,
  usage_accounted_until BIGINT,
  status_detail         TEXT COLLATE "C"
);
-- Serves "jobs of a run in order" and keeps (job_num, replica_num) unique within a run.
CREATE UNIQUE INDEX jobs_by_run ON jobs (run_id, job_num, replica_num);
CREATE INDEX jobs_by_instance ON jobs (instance_id);
CREATE INDEX jobs_by_status ON jobs (status);
-- Only the jobs with running time not yet accounted: the accounting pass reads this index.
CREATE INDEX jobs_unaccounted ON jobs (id)
  WHERE started_at IS NOT NULL
    AND (finished_at IS NULL OR usage_accounted_until IS NULL
         OR usage_accounted_until < finished_at);

CREATE TABLE job_metrics_points (
  job_id                   TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  timestamp_micro          BIGINT NOT NULL,
  cpu_usage_micro          BIGINT NOT NULL,
  memory_usage_bytes       BIGINT NOT NULL,
  memory_working_set_bytes BIGINT NOT NULL,
  gpus_memory_usage_bytes  TEXT COLLATE "C" NOT NULL,
  gpus_util_percent        TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (job_id, timestamp_micro)
);
CREATE INDEX job_metrics_points_by_time ON job_metrics_points (timestamp_micro);

-- Money and GPU time per (project, user); names, not ids, so totals outlive deleted projects and
-- users (counters never go down).
CREATE TABLE usage_totals (
  project_name TEXT COLLATE "C" NOT NULL,
  user_name    TEXT COLLATE "C" NOT NULL,
  cost_dollars DOUBLE PRECISION NOT NULL,
  gpu_seconds  DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (project_name, user_name)
);
)sql",
     /*additive=*/false},
    // 2: the GPU state ledger and the hourly GPU time of runs (idle GPU time and its cost).
    {R"sql(
-- The GPU state ledger (server/gpu_ledger.h): each GPU's seconds per state, ever, and up to when
-- they are accounted (so a restart never counts an interval twice).
CREATE TABLE gpu_ledger (
  instance_id           TEXT COLLATE "C" NOT NULL,
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
  project_name      TEXT COLLATE "C" NOT NULL,
  user_name         TEXT COLLATE "C" NOT NULL,
  idle_seconds      DOUBLE PRECISION NOT NULL,
  idle_cost_dollars DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (project_name, user_name)
);
-- GPU time held by each run's jobs and its idle part, per hour (the hour's start, UTC micros).
CREATE TABLE gpu_run_hours (
  run_id            TEXT COLLATE "C" NOT NULL,
  hour              BIGINT NOT NULL,
  project_name      TEXT COLLATE "C" NOT NULL,
  user_name         TEXT COLLATE "C" NOT NULL,
  run_name          TEXT COLLATE "C" NOT NULL,
  held_seconds      DOUBLE PRECISION NOT NULL,
  idle_seconds      DOUBLE PRECISION NOT NULL,
  idle_cost_dollars DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (run_id, hour)
);
CREATE INDEX gpu_run_hours_by_hour ON gpu_run_hours (hour);
)sql",
     /*additive=*/false},
    // 3: replicas and instance leases (store.h "replicas and instance leases"), as SQLite's
    // step 9.
    {R"sql(
CREATE TABLE replicas (
  id           TEXT COLLATE "C" PRIMARY KEY,
  started_at   BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  version      TEXT COLLATE "C" NOT NULL
);
ALTER TABLE instances ADD COLUMN lock_owner TEXT COLLATE "C";
ALTER TABLE instances ADD COLUMN lock_token TEXT COLLATE "C";
ALTER TABLE instances ADD COLUMN lock_expires_at BIGINT;
CREATE INDEX instances_by_lock_owner ON instances (lock_owner);
ALTER TABLE runs ADD COLUMN row_version BIGINT NOT NULL DEFAULT 0;
)sql",
     /*additive=*/false},
    // 4: energy and job summaries (SQLite's step 10). Each job's running aggregates and, once it
    // has ended, its summary, kept as long as the job's run whatever metrics retention deletes;
    // energy, utilization-weighted GPU time and carbon per (project, user), by name.
    {R"sql(
CREATE TABLE job_aggregates (
  job_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  revision BIGINT NOT NULL,
  state    TEXT NOT NULL,
  summary  TEXT
);
CREATE INDEX job_aggregates_open ON job_aggregates (job_id) WHERE summary IS NULL;
CREATE TABLE energy_totals (
  project_name     TEXT COLLATE "C" NOT NULL,
  user_name        TEXT COLLATE "C" NOT NULL,
  energy_joules    DOUBLE PRECISION NOT NULL,
  busy_gpu_seconds DOUBLE PRECISION NOT NULL,
  carbon_grams     DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (project_name, user_name)
);
)sql",
     /*additive=*/false},
    // 5: logs of ended jobs (SQLite's step 11): a row per log and its bytes in rows of at most
    // chunk_bytes, keyed by (job_id, seq).
    {R"sql(
CREATE TABLE job_logs (
  job_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  size        BIGINT NOT NULL,
  chunk_bytes BIGINT NOT NULL
);
CREATE TABLE job_log_chunks (
  job_id TEXT COLLATE "C" NOT NULL REFERENCES job_logs (job_id) ON DELETE CASCADE,
  seq    BIGINT NOT NULL,
  data   BYTEA NOT NULL,
  PRIMARY KEY (job_id, seq)
);
)sql",
     /*additive=*/true},
    // 6: jobs by finish time, for the right-sizing notes of the jobs that ended in a window
    // (SQLite's step 12).
    {R"sql(
CREATE INDEX jobs_by_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
)sql",
     /*additive=*/true},
    // 7: run events that the server's counters count (SQLite's step 13): each (run, kind) once,
    // whichever replica saw it, and their totals per (project, run type, kind, bucket).
    {R"sql(
CREATE TABLE run_events (
  run_id TEXT COLLATE "C" NOT NULL,
  kind   TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (run_id, kind)
);
CREATE TABLE run_event_totals (
  project_name TEXT COLLATE "C" NOT NULL,
  run_type     TEXT COLLATE "C" NOT NULL,
  kind         TEXT COLLATE "C" NOT NULL,
  bucket       INTEGER NOT NULL,
  count        BIGINT NOT NULL,
  seconds      DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (project_name, run_type, kind, bucket)
);
)sql",
     /*additive=*/true},
    // 8: shared render state (SQLite's step 14): each host's DCGM text as the replica that polls
    // it last stored it, for every replica's /metrics. UNLOGGED: refreshed every metrics interval,
    // so not worth the WAL; a crash empties it and the next texts fill it again.
    {R"sql(
CREATE UNLOGGED TABLE host_dcgm (
  instance_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
  version      BIGINT NOT NULL,
  collected_at BIGINT,
  dcgm_text    TEXT NOT NULL,
  dcgm_error   TEXT NOT NULL,
  received_at  BIGINT NOT NULL
);
)sql",
     /*additive=*/true},
    // 9: each job's GPU energy as stored with its aggregates (SQLite's step 15), so that every
    // replica renders a run's energy from the store. Rows stored before have 0 until their job's
    // next store.
    {R"sql(
ALTER TABLE job_aggregates ADD COLUMN energy_joules DOUBLE PRECISION NOT NULL DEFAULT 0;
)sql",
     /*additive=*/true},
    // 10: a log copy is written a chunk per transaction (SQLite's step 16); its writer's token is
    // set until the last chunk is in (NULL: complete, as every older row is).
    {"ALTER TABLE job_logs ADD COLUMN IF NOT EXISTS writer TEXT;", /*additive=*/true},
}};

// Any constant shared by every fleetwatch binary: the key of the migration advisory lock.
constexpr const char* kLockKey = "7415993170581128193";

Status ApplyMissingSteps(PGconn* conn, std::span<const SchemaStep> steps) {
  FW_RETURN_IF_ERROR(postgres::ExecSimple(conn,
                                          "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                          "version INTEGER PRIMARY KEY, "
                                          "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"));
  // Per step applied, the oldest binary schema version that can use the database migrated to it
  // (schema_steps.h); NULL where nothing recorded it (steps applied by older binaries).
  FW_RETURN_IF_ERROR(postgres::ExecSimple(
      conn,
      "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS oldest_binary_version INTEGER"));
  int version = 0;
  std::optional<int> oldest;
  {
    postgres::Query q(conn,
                      "SELECT version, oldest_binary_version FROM schema_migrations ORDER BY "
                      "version DESC LIMIT 1");
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) {
      version = q.Int(0);
      oldest = q.OptionalInt(1);
    }
  }
  const int latest = static_cast<int>(steps.size());
  // A newer binary migrated it: usable when what it added is additive (nothing is applied).
  if (version > latest) return CheckSchemaCompatible(latest, version, oldest);
  for (int step = version + 1; step <= latest; ++step) {
    postgres::Transaction transaction(conn);
    FW_RETURN_IF_ERROR(transaction.Begin(/*write=*/true));
    const std::string what = "apply schema migration " + std::to_string(step);
    Status applied = postgres::ExecSimple(conn, steps[static_cast<size_t>(step - 1)].sql);
    if (!applied.ok()) return {applied.code(), what + ": " + applied.message()};
    postgres::Query mark(conn,
                         "INSERT INTO schema_migrations (version, oldest_binary_version) "
                         "VALUES (?, ?)");
    mark.Bind(step).Bind(OldestCompatibleVersion(steps, step));
    FW_RETURN_IF_ERROR(mark.Exec());
    FW_RETURN_IF_ERROR(transaction.Commit());
  }
  return Status::Ok();
}

}  // namespace

std::span<const SchemaStep> PostgresSchemaSteps() { return kMigrations; }

int LatestPostgresSchemaVersion() { return static_cast<int>(kMigrations.size()); }

Status MigratePostgresSchema(PGconn* conn) { return MigratePostgresSchema(conn, kMigrations); }

Status MigratePostgresSchema(PGconn* conn, std::span<const SchemaStep> steps) {
  {
    postgres::Query lock(conn, "SELECT pg_advisory_lock(?::bigint)");
    lock.Bind(kLockKey);
    FW_RETURN_IF_ERROR(lock.Exec());
  }
  Status status = ApplyMissingSteps(conn, steps);
  postgres::Query unlock(conn, "SELECT pg_advisory_unlock(?::bigint)");
  unlock.Bind(kLockKey);
  Status unlocked = unlock.Exec();
  // A failed unlock leaves the lock to the connection's end, which releases it.
  FW_RETURN_IF_ERROR(status);
  return unlocked;
}

}  // namespace fleetwatch::store
