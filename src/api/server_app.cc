#include "api/server_app.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "api/metrics_route.h"
#include "api/routes.h"
#include "api/server_data_dir.h"
#include "expose/snapshot.h"
#include "http/async_client.h"
#include "http/server.h"
#include "server/auth.h"
#include "server/control_loop.h"
#include "server/energy_accountant.h"
#include "server/energy_families.h"
#include "server/exposition_updater.h"
#include "server/fleet_controller.h"
#include "server/fleets.h"
#include "server/gpu_health.h"
#include "server/gpu_health_families.h"
#include "server/gpu_ledger.h"
#include "server/gpu_waste.h"
#include "server/job_metrics.h"
#include "server/job_summary_service.h"
#include "server/live_logs.h"
#include "server/local_agent.h"
#include "server/log_copies.h"
#include "server/projects.h"
#include "server/runs.h"
#include "server/scrape_barrier.h"
#include "server/shared_render_state.h"
#include "server/usage.h"
#include "server/users.h"
#include "server/utilization_policy.h"
#include "store/postgres_listener.h"
#include "ui/ui_route.h"
#include "util/build_info.h"
#include "util/ids.h"

namespace fleetwatch::api {
namespace {

// This process' replica id: host name, pid and a random part (a restarted process is a new
// replica).
std::string ReplicaId() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, 5, "host");
  return std::string(host) + "-" + std::to_string(::getpid()) + "-" + NewId().substr(0, 8);
}

class ServerAppImpl final : public ServerApp {
 public:
  ServerAppImpl(ServerDataDir dir, const Clock& clock)
      : lock_(std::move(dir.lock)),
        store_(std::move(dir.store)),
        database_(std::move(dir.database)),
        auth_(*store_),
        users_(*store_, clock),
        projects_(*store_, auth_, clock),
        fleets_(*store_, clock),
        runs_(*store_, clock),
        metrics_(*store_),
        summaries_(*store_, clock),
        clock_(clock) {}

  ~ServerAppImpl() override { Stop(); }

  Status Start(const ServerConfig& config) {
    if (database_ == "postgresql" && config.lease_time < 2 * config.poll_interval) {
      return InvalidArgument("FLEETWATCH_LEASE_SECONDS (" +
                             std::to_string(config.lease_time.count()) +
                             " s) must be at least twice the poll interval (" +
                             std::to_string(config.poll_interval.count()) + " ms)");
    }
    // On PostgreSQL, a replica from the start: registered (with its heartbeat) before it serves
    // or polls. With SQLite the data dir's lock admits one server, the only replica trivially:
    // it takes no leases (and an idle tick writes nothing).
    if (database_ == "postgresql") {
      replica_id_ = ReplicaId();
      FW_RETURN_IF_ERROR(
          store_->RegisterReplica({replica_id_, clock_.Now(), std::string(BuildVersion())}));
      spdlog::info("replica {}, lease time {} s", replica_id_, config.lease_time.count());
    }
    agent_client_ = std::make_unique<http::AsyncClient>(
        2, 4096, std::chrono::seconds(20),
        replica_id_.empty() ? "fleetwatch" : "fleetwatch replica " + replica_id_);
    server::FleetControllerOptions options;
    options.reconcile.unreachable_after =
        std::chrono::duration_cast<std::chrono::microseconds>(config.unreachable_after).count();
    options.reconcile.stop_grace_seconds = config.stop_grace_seconds;
    // Coarse enough to save writes, fine enough for the unreachable check.
    options.reconcile.last_seen_resolution =
        std::min<TimeMicros>(10'000'000, options.reconcile.unreachable_after / 4);
    options.log_dir = (std::filesystem::path(config.data_dir) / "logs").string();
    options.max_log_copy_bytes = config.max_log_bytes;
    // Log copies an older version kept in the data directory go into the database, where every
    // replica serves them, before this server copies any.
    {
      const server::LogCopies copies(
          server::LogCopyOptions{.dir = options.log_dir, .store = store_.get()});
      FW_ASSIGN_OR_RETURN(server::LogCopies::MoveReport moved, copies.MoveFileCopiesIntoStore());
      if (moved.moved + moved.dropped > 0) {
        spdlog::info("moved {} log copies from {} into the database ({} of deleted runs dropped)",
                     moved.moved, options.log_dir, moved.dropped);
      }
      if (moved.failed > 0) {
        spdlog::warn("{} log copies in {} stay there until the next start: {}", moved.failed,
                     options.log_dir, moved.first_error);
      }
    }
    options.metrics_interval = config.metrics_interval;
    // Half the tick interval for the polls: the other half is for deciding, storing and the
    // exposition, so that ticks keep their fixed rate.
    options.tick_budget = std::max(config.poll_interval / 2, std::chrono::milliseconds(50));
    // 9 s for the default 10 s interval: a replica never stores a second point for a job that
    // another replica has just measured.
    options.min_point_spacing =
        std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval).count() * 9 /
        10;
    options.collect_dcgm = config.prometheus_metrics;
    options.replica_id = replica_id_;
    options.lease_time = config.lease_time;
    controller_ = std::make_unique<server::FleetController>(*store_, clock_, runs_.mutex(),
                                                            *agent_client_, options);
    // Replicas: the instances and runs others change come as notifications (scale-out.md).
    if (!replica_id_.empty() && config.database_url) {
      FW_ASSIGN_OR_RETURN(changes_,
                          store::PostgresListener::Start(
                              {.url = *config.database_url,
                               .channels = {store::kInstancesChannel, store::kRunsChannel}}));
      controller_->SetChangeListener(changes_.get());
    }
    // GPU health and utilization policies, from the readings of every metrics poll; a gap of
    // three metrics intervals means the readings stopped.
    const TimeMicros readings_gap =
        3 * std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval).count();
    gpu_health_ = std::make_unique<server::GpuHealthMonitor>(server::GpuHealthOptions{
        .degraded = config.degraded_gpus, .no_readings_after = readings_gap});
    utilization_ = std::make_unique<server::UtilizationPolicyTracker>(readings_gap);
    controller_->SetGpuGuards(gpu_health_.get(), utilization_.get());
    live_logs_ = std::make_unique<server::LiveLogs>(
        *store_, *agent_client_,
        server::LiveLogOptions{.agent_timeout = options.agent_timeout,
                               .max_reads_per_instance = config.max_log_reads_per_host});
    services_ = std::make_unique<Services>(Services{auth_, users_, projects_, fleets_, runs_,
                                                    *controller_, *live_logs_, metrics_, summaries_,
                                                    clock_, database_, &waste_, gpu_health_.get()});
    if (config.prometheus_metrics) {
      server::ExpositionOptions exposition;
      exposition.stale_after =
          3 *
          std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval).count();
      exposition.version = std::string(BuildVersion());
      exposition.revision = std::string(BuildRevision());
      exposition.replica_id = replica_id_;
      updater_ = std::make_unique<server::ExpositionUpdater>(*store_, clock_, snapshot_,
                                                             &replica_snapshot_, exposition);
      FW_ASSIGN_OR_RETURN(server::TickReport stored,
                          server::StoredStateReport(*store_, clock_.Now()));
      FW_RETURN_IF_ERROR(updater_->Update(stored));
      // The GPU health of the hosts this replica polls: its own readings (/metrics/replica).
      gpu_health_exposition_ =
          std::make_unique<server::GpuHealthExposition>(*gpu_health_, replica_snapshot_);
    }
    const MetricsEndpointOptions scrape{config.prometheus_metrics, config.prometheus_auth_token,
                                        config.openmetrics};
    if (!replica_id_.empty() && config.prometheus_metrics && config.database_url) {
      // Replicas: a scrape shows every change committed before it (scale-out.md); attached to
      // the listener and the loop once they exist.
      scrape_barrier_ = std::make_unique<server::ScrapeBarrier>(
          replica_snapshot_, server::ScrapeBarrierOptions{.deadline = config.metrics_barrier});
    }
    AddMetricsRoute(router_, scrape, snapshot_, replica_snapshot_, clock_, scrape_barrier_.get());
    AddPrometheusSdRoute(router_, scrape, *store_);
    AddApiRoutes(router_, *services_);
    ui::AddUiRoutes(router_);  // GET / and /assets/*: the web UI
    http::ServerOptions http_options;
    http_options.host = config.host;
    http_options.port = config.port;
    http_options.threads = config.http_threads;
    http_options.tls = config.tls;
    http_options.max_connections = config.max_connections;
    http_options.max_unauthenticated_per_address = config.max_unauthenticated_per_address;
    // /api/* bodies are read only for a known token (the routes check it again, with the
    // caller's rights); /metrics and the UI keep their own rules.
    http_options.authenticate = [this](std::string_view authorization) {
      return auth_.Authenticate(authorization).status();
    };
    http_options.needs_authentication = NeedsUserToken;
    http_ = std::make_unique<http::Server>(
        http_options, [this](http::Request& request) { return router_.Dispatch(request); });
    FW_ASSIGN_OR_RETURN(port_, http_->Start());
    // Only a start that holds its port makes the admin and touches the local agent: a failed one
    // leaves nothing half-made and no agent adopted or stopped.
    FW_ASSIGN_OR_RETURN(new_admin_token_, users_.Bootstrap(config.admin_token));
    if (config.local_fleet) {
      local_agent_ = std::make_unique<server::LocalAgent>(
          server::LocalAgentOptions{config.data_dir, config.binary, config.prometheus_metrics},
          *store_, clock_, *agent_client_);
      // A failure is not fatal: the supervisor tries again (and the server log says so).
      if (Status s = local_agent_->Ensure(); !s.ok())
        spdlog::error("the local agent: {}", s.message());
      local_agent_->Supervise();
    }
    stages_ = std::make_unique<server::ServerStages>(*controller_, usage_, *store_,
                                                     config.running_ttl, config.finished_ttl);
    gpu_ledger_ = std::make_unique<server::GpuLedger>(
        *store_, config.prometheus_metrics ? &snapshot_ : nullptr,
        server::GpuLedgerOptions{
            .idle_threshold_percent = config.gpu_idle_threshold_percent,
            .metrics_interval =
                std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval)
                    .count()});
    // A GPU the health monitor finds unhealthy is counted in the ledger's `unhealthy` state.
    gpu_ledger_->SetUnhealthyCheck(
        [health = gpu_health_.get()](std::string_view instance_id, const model::GpuReading& r) {
          return health->IsGpuUnhealthy(instance_id, r.index);
        });
    const TimeMicros metrics_interval =
        std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval).count();
    // Renders nothing itself: the energy families are rendered from the store (below).
    energy_ = std::make_unique<server::EnergyAccountant>(
        *store_, clock_,
        server::EnergyOptions{.default_carbon_intensity = config.carbon_intensity,
                              .store_interval = metrics_interval});
    // Replicas: /metrics shows every host, those other replicas poll included (scale-out.md).
    if (!replica_id_.empty() && config.prometheus_metrics && config.database_url) {
      FW_ASSIGN_OR_RETURN(listener_,
                          store::PostgresListener::Start(
                              {.url = *config.database_url,
                               .channels = {store::kHostDcgmChannel, store::kJobPointsChannel,
                                            store::kTotalsChannel}}));
      shared_render_ = std::make_unique<server::SharedRenderState>(*store_, *listener_, clock_);
    }
    // The report stages, in their order: the tick's GPU readings are charged to the ledger and
    // to energy before other replicas' texts join the report (they charge their own), and the
    // exposition renders last, with everything the report then holds. The stages that bring
    // /metrics up to the store also run in a scrape barrier's catch-up (on_catch_up).
    stages_->AddReportStage(
        "GPU state ledger",
        [ledger = gpu_ledger_.get()](server::TickReport& r) { return ledger->Account(r); });
    stages_->AddReportStage(
        "energy and job summaries",
        [energy = energy_.get()](server::TickReport& r) { return energy->Update(r); });
    if (shared_render_) {
      stages_->AddReportStage(
          "shared render state",
          [shared = shared_render_.get()](server::TickReport& r) { return shared->Share(r); },
          /*on_catch_up=*/true);
    }
    if (updater_) {
      stages_->AddReportStage(
          "metrics exposition",
          [updater = updater_.get()](server::TickReport& r) { return updater->Update(r); },
          /*on_catch_up=*/true);
    }
    if (gpu_health_exposition_) {
      stages_->AddReportStage(
          "GPU health exposition",
          [this](server::TickReport&) {
            gpu_health_exposition_->Update();
            return Status::Ok();
          },
          /*on_catch_up=*/true);
    }
    if (config.prometheus_metrics) {
      // After the exposition's families: the GPU ledger's and the energy families, rendered from
      // the store, again when another writer's (or this server's) change notification says they
      // moved (scale-out.md).
      energy_families_ =
          std::make_unique<server::StoredEnergyFamilies>(*store_, snapshot_, metrics_interval);
      stages_->AddReportStage(
          "GPU ledger and energy families",
          [this](server::TickReport& report) {
            const std::set<std::string> moved =
                shared_render_ ? shared_render_->TakeMovedTotals() : std::set<std::string>();
            Status ledger = gpu_ledger_->Refresh(report, moved.contains(store::kGpuLedgerKey));
            Status energy = energy_families_->Refresh(report, moved.contains(store::kEnergyKey));
            return ledger.ok() ? energy : ledger;
          },
          /*on_catch_up=*/true);
    }
    // Cost and GPU time are accounted every metrics interval, whether /metrics is on or not, so
    // that switching it on later shows what was spent meanwhile.
    loop_ = std::make_unique<server::ControlLoop>(
        *stages_, clock_,
        server::ControlLoopOptions{
            .tick_interval = config.poll_interval,
            .usage_interval = config.metrics_interval,
            .retention_interval =
                std::chrono::duration_cast<std::chrono::milliseconds>(config.retention_interval)});
    if (scrape_barrier_ && listener_) {
      scrape_barrier_->Attach(*listener_, *loop_, [controller = controller_.get()] {
        return controller->Replica().live_replicas > 1;
      });
    }
    loop_->Start();
    return Status::Ok();
  }

  uint16_t port() const override { return port_; }
  const std::optional<std::string>& new_admin_token() const override { return new_admin_token_; }

  void Stop() override {
    StopLeavingAgent();
    if (local_agent_) local_agent_->Stop();
    if (!replica_id_.empty()) {
      // Its hosts go to the other replicas now rather than after the lease time.
      if (Status s = store_->RemoveReplica(replica_id_); !s.ok()) {
        spdlog::warn("releasing the leases of replica {}: {}", replica_id_, s.ToString());
      }
      replica_id_.clear();
    }
  }

  void StopLeavingAgent() override {
    if (http_) http_->Stop();
    if (scrape_barrier_) scrape_barrier_->Stop();
    if (loop_) loop_->Stop();
  }

 private:
  DataDirLock lock_;
  std::unique_ptr<store::Store> store_;
  const std::string database_;  // "sqlite" or "postgresql"
  std::string replica_id_;      // registered in the store while it runs (Stop removes it)
  server::AuthService auth_;
  server::UserService users_;
  server::ProjectService projects_;
  server::FleetService fleets_;
  server::RunService runs_;
  server::JobMetricsService metrics_;
  server::JobSummaryService summaries_;
  const Clock& clock_;
  server::GpuWasteService waste_{*store_, clock_};
  std::unique_ptr<http::AsyncClient> agent_client_;
  std::unique_ptr<server::LocalAgent> local_agent_;
  std::unique_ptr<server::GpuHealthMonitor> gpu_health_;
  std::unique_ptr<server::UtilizationPolicyTracker> utilization_;
  std::unique_ptr<store::PostgresListener> changes_;  // replicas: the controller's (outlives it)
  std::unique_ptr<server::FleetController> controller_;
  std::unique_ptr<server::LiveLogs> live_logs_;
  expose::ExpositionSnapshot snapshot_;                 // GET /metrics: the fleet's families
  expose::ExpositionSnapshot replica_snapshot_;         // GET /metrics/replica: this process' own
  std::unique_ptr<server::ExpositionUpdater> updater_;  // only when /metrics is enabled
  std::unique_ptr<server::GpuHealthExposition> gpu_health_exposition_;  // likewise
  server::UsageAccountant usage_{*store_, clock_};  // the control loop's thread only
  std::unique_ptr<Services> services_;
  http::Router router_;
  std::unique_ptr<http::Server> http_;
  std::unique_ptr<server::GpuLedger> gpu_ledger_;                  // the control loop's thread only
  std::unique_ptr<server::EnergyAccountant> energy_;               // the control loop's thread only
  std::unique_ptr<server::StoredEnergyFamilies> energy_families_;  // likewise; /metrics only
  std::unique_ptr<store::PostgresListener> listener_;              // replicas with /metrics only
  std::unique_ptr<server::SharedRenderState> shared_render_;       // likewise (the loop's thread)
  std::unique_ptr<server::ServerStages> stages_;
  std::unique_ptr<server::ControlLoop> loop_;
  // Replicas with /metrics only; uses listener_ and loop_, so it goes before them.
  std::unique_ptr<server::ScrapeBarrier> scrape_barrier_;
  uint16_t port_ = 0;
  std::optional<std::string> new_admin_token_;
};

}  // namespace

Result<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerConfig& config,
                                                    const Clock& clock) {
  FW_ASSIGN_OR_RETURN(ServerDataDir dir, OpenServerDataDir(config.data_dir, config.encryption_key,
                                                           config.database_url));
  auto app = std::make_unique<ServerAppImpl>(std::move(dir), clock);
  FW_RETURN_IF_ERROR(app->Start(config));
  return std::unique_ptr<ServerApp>(std::move(app));
}

}  // namespace fleetwatch::api
