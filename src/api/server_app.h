#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "http/tls_options.h"
#include "server/gpu_health.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::api {

struct ServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 3000;  // 0: any free port
  // Holds fleetwatch.db and secret.key; created (or tightened) to mode 0700 at start.
  std::string data_dir;
  // The key that encrypts agent tokens in the database, as given (FLEETWATCH_ENCRYPTION_KEY:
  // base64 or hex of 32 bytes). Unset: `secret.key` in the data dir, created on first start.
  std::optional<std::string> encryption_key;
  // The PostgreSQL database to keep the state in (FLEETWATCH_DATABASE_URL or --database-url:
  // postgresql://user:password@host:port/database); unset: SQLite, fleetwatch.db in data_dir.
  std::optional<std::string> database_url;
  std::optional<std::string> admin_token;  // used only on the first start
  int http_threads = 4;
  std::chrono::milliseconds poll_interval{1000};  // one poll of every agent per interval
  std::chrono::seconds unreachable_after{60};     // an agent silent this long is unreachable
  int stop_grace_seconds = 10;                    // SIGTERM → SIGKILL when stopping a job
  int64_t max_log_bytes = 64 << 20;  // of each ended job's log copy; longer logs keep their tail
  // Start (or find again) an agent for this machine, registered as fleet `local` of `main`.
  bool local_fleet = true;
  std::chrono::milliseconds metrics_interval{10'000};  // how often agents are asked for points
  std::chrono::seconds retention_interval{300};        // how often old points are deleted
  std::chrono::seconds running_ttl{3600};              // points of running jobs kept this long
  std::chrono::seconds finished_ttl{604'800};          // points of finished jobs kept this long
  // A GPU held by a job below this utilization (percent) over a metrics interval is idle
  // (FLEETWATCH_GPU_IDLE_THRESHOLD_PERCENT; server/gpu_ledger.h).
  double gpu_idle_threshold_percent = 5;
  std::string binary;  // the fleetwatch executable, for the local agent
  // GET /metrics (spec/METRICS.md): served when enabled (DSTACK_ENABLE_PROMETHEUS_METRICS);
  // the token, when set, is required even while disabled (DSTACK_PROMETHEUS_AUTH_TOKEN).
  bool prometheus_metrics = false;
  std::optional<std::string> prometheus_auth_token;
  bool openmetrics = false;  // FLEETWATCH_OPENMETRICS=1 (MetricsEndpointOptions::openmetrics)
  // gCO2e/kWh of the grid for fleets without their own carbon_intensity: an estimate the
  // operator supplies (FLEETWATCH_CARBON_INTENSITY); 0 when not given.
  double carbon_intensity = 0;
  // Set: the API, UI and /metrics are served over HTTPS only, with these PEM files.
  std::optional<http::TlsServerOptions> tls;
  // Connections open at once (FLEETWATCH_MAX_CONNECTIONS), and per client address those that
  // have not yet authenticated (FLEETWATCH_MAX_UNAUTHENTICATED_PER_ADDRESS); 0: no cap.
  size_t max_connections = 4096;
  size_t max_unauthenticated_per_address = 64;
  // Live log reads in flight to one host at once (FLEETWATCH_MAX_LOG_READS_PER_HOST); more are
  // answered 503 at once, with Retry-After.
  size_t max_log_reads_per_host = 4;
  // Whether degraded GPUs take new jobs (--degraded-gpus, FLEETWATCH_DEGRADED_GPUS).
  server::DegradedGpuPolicy degraded_gpus = server::DegradedGpuPolicy::kUse;
  // Replicas on one database (docs/scale-out.md): an instance lease, and a replica's heartbeat,
  // count this long (FLEETWATCH_LEASE_SECONDS); a killed replica's hosts are taken over after
  // it. On PostgreSQL at least twice the poll interval (SQLite takes no leases).
  std::chrono::seconds lease_time{10};
  // Replicas on PostgreSQL with /metrics: how long a scrape waits for the replica to show every
  // change committed before it (FLEETWATCH_METRICS_BARRIER_MS; docs/scale-out.md).
  std::chrono::milliseconds metrics_barrier{2000};
};

// The whole server: store, services, REST API, background work. Thread-safe.
class ServerApp {
 public:
  // Takes the data dir's lock (util/data_dir_lock.h), opens (or creates) the store, starts
  // serving, and only then bootstraps the store on first start and adopts or starts the local
  // agent (supervised from then on). The data dir and its logs dir get mode 0700 (a looser
  // existing one is tightened, with a warning). Errors: FailedPrecondition "another fleetwatch
  // server (pid N) uses DIR" when another server holds the data dir (nothing in it is touched),
  // InvalidArgument for a malformed encryption key, a database_url that is not PostgreSQL's or (on
  // PostgreSQL) a lease time shorter than twice the poll interval,
  // FailedPrecondition for a key that does not decrypt the stored agent tokens, Unavailable when
  // the data dir cannot be made, the database cannot be reached or the port is taken (no admin
  // is made then), and the store's and the HTTP server's errors. A local
  // agent that fails to start is not an error: it is logged and tried again.
  static Result<std::unique_ptr<ServerApp>> Start(const ServerConfig& config, const Clock& clock);
  virtual ~ServerApp() = default;

  virtual uint16_t port() const = 0;
  // The admin token when this start created the admin user, else nullopt.
  virtual const std::optional<std::string>& new_admin_token() const = 0;
  // Stops serving (letting requests in flight finish), background work and the local agent if
  // this server started it (it stops its jobs; one an earlier server started is left running),
  // and releases this replica's instance leases so that other replicas take its hosts over at
  // once. Idempotent.
  virtual void Stop() = 0;
  // Stops serving and background work but leaves the local agent and its jobs running, as a
  // crash would. For tests of restart safety.
  virtual void StopLeavingAgent() = 0;
};

}  // namespace fleetwatch::api
