#include "api/server_app.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "api/metrics_route.h"
#include "api/routes.h"
#include "api/server_data_dir.h"
#include "expose/snapshot.h"
#include "http/async_client.h"
#include "http/server.h"
#include "server/auth.h"
#include "server/control_loop.h"
#include "server/energy_accountant.h"
#include "server/exposition_updater.h"
#include "server/fleet_controller.h"
#include "server/fleets.h"
#include "server/job_metrics.h"
#include "server/job_summary_service.h"
#include "server/live_logs.h"
#include "server/local_agent.h"
#include "server/projects.h"
#include "server/runs.h"
#include "server/usage.h"
#include "server/users.h"
#include "ui/ui_route.h"
#include "util/build_info.h"

namespace fleetwatch::api {
namespace {

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
    agent_client_ = std::make_unique<http::AsyncClient>(2);
    server::FleetControllerOptions options;
    options.reconcile.unreachable_after =
        std::chrono::duration_cast<std::chrono::microseconds>(config.unreachable_after).count();
    options.reconcile.stop_grace_seconds = config.stop_grace_seconds;
    // Coarse enough to save writes, fine enough for the unreachable check.
    options.reconcile.last_seen_resolution =
        std::min<TimeMicros>(10'000'000, options.reconcile.unreachable_after / 4);
    options.log_dir = (std::filesystem::path(config.data_dir) / "logs").string();
    options.max_log_copy_bytes = config.max_log_bytes;
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
    controller_ = std::make_unique<server::FleetController>(*store_, clock_, runs_.mutex(),
                                                            *agent_client_, options);
    live_logs_ = std::make_unique<server::LiveLogs>(
        *store_, *agent_client_,
        server::LiveLogOptions{.log_dir = options.log_dir,
                               .agent_timeout = options.agent_timeout,
                               .max_reads_per_instance = config.max_log_reads_per_host});
    services_ =
        std::make_unique<Services>(Services{auth_, users_, projects_, fleets_, runs_, *controller_,
                                            *live_logs_, metrics_, summaries_, clock_, database_});
    if (config.prometheus_metrics) {
      server::ExpositionOptions exposition;
      exposition.stale_after =
          3 *
          std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval).count();
      exposition.version = std::string(BuildVersion());
      exposition.revision = std::string(BuildRevision());
      updater_ =
          std::make_unique<server::ExpositionUpdater>(*store_, clock_, snapshot_, exposition);
      FW_ASSIGN_OR_RETURN(server::TickReport stored,
                          server::StoredStateReport(*store_, clock_.Now()));
      FW_RETURN_IF_ERROR(updater_->Update(stored));
    }
    const MetricsEndpointOptions scrape{config.prometheus_metrics, config.prometheus_auth_token,
                                        config.openmetrics};
    AddMetricsRoute(router_, scrape, snapshot_, clock_);
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
    stages_ = std::make_unique<server::ServerStages>(*controller_, usage_, updater_.get(), *store_,
                                                     config.running_ttl, config.finished_ttl);
    // After the exposition's families: the energy families render after them.
    energy_ = std::make_unique<server::EnergyAccountant>(
        *store_, clock_,
        server::EnergyOptions{
            .default_carbon_intensity = config.carbon_intensity,
            .store_interval =
                std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval)
                    .count()},
        config.prometheus_metrics ? &snapshot_ : nullptr);
    stages_->set_energy(energy_.get());
    // Cost and GPU time are accounted every metrics interval, whether /metrics is on or not, so
    // that switching it on later shows what was spent meanwhile.
    loop_ = std::make_unique<server::ControlLoop>(
        *stages_, clock_,
        server::ControlLoopOptions{
            .tick_interval = config.poll_interval,
            .usage_interval = config.metrics_interval,
            .retention_interval =
                std::chrono::duration_cast<std::chrono::milliseconds>(config.retention_interval)});
    loop_->Start();
    return Status::Ok();
  }

  uint16_t port() const override { return port_; }
  const std::optional<std::string>& new_admin_token() const override { return new_admin_token_; }

  void Stop() override {
    StopLeavingAgent();
    if (local_agent_) local_agent_->Stop();
  }

  void StopLeavingAgent() override {
    if (http_) http_->Stop();
    if (loop_) loop_->Stop();
  }

 private:
  DataDirLock lock_;
  std::unique_ptr<store::Store> store_;
  const std::string database_;  // "sqlite" or "postgresql"
  server::AuthService auth_;
  server::UserService users_;
  server::ProjectService projects_;
  server::FleetService fleets_;
  server::RunService runs_;
  server::JobMetricsService metrics_;
  server::JobSummaryService summaries_;
  const Clock& clock_;
  std::unique_ptr<http::AsyncClient> agent_client_;
  std::unique_ptr<server::LocalAgent> local_agent_;
  std::unique_ptr<server::FleetController> controller_;
  std::unique_ptr<server::LiveLogs> live_logs_;
  expose::ExpositionSnapshot snapshot_;
  std::unique_ptr<server::ExpositionUpdater> updater_;  // only when /metrics is enabled
  server::UsageAccountant usage_{*store_, clock_};      // the control loop's thread only
  std::unique_ptr<Services> services_;
  http::Router router_;
  std::unique_ptr<http::Server> http_;
  std::unique_ptr<server::EnergyAccountant> energy_;  // the control loop's thread only
  std::unique_ptr<server::ServerStages> stages_;
  std::unique_ptr<server::ControlLoop> loop_;
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
