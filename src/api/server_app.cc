#include "api/server_app.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "api/metrics_route.h"
#include "api/routes.h"
#include "expose/snapshot.h"
#include "http/async_client.h"
#include "http/server.h"
#include "server/auth.h"
#include "server/exposition_updater.h"
#include "server/fleet_controller.h"
#include "server/fleets.h"
#include "server/job_metrics.h"
#include "server/live_logs.h"
#include "server/local_agent.h"
#include "server/periodic_task.h"
#include "server/projects.h"
#include "server/runs.h"
#include "server/usage.h"
#include "server/users.h"
#include "store/sqlite_store.h"
#include "ui/ui_route.h"

namespace fleetwatch::api {
namespace {

// Creates `dir` (and its parents) when missing and gives it mode 0700; an existing one that was
// open to others is tightened with a warning, since what it holds was readable until now.
Status MakePrivateDirectory(const std::filesystem::path& dir, std::string_view what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Unavailable("cannot create the " + std::string(what) + " " + dir.string() + ": " +
                       ec.message());
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Unavailable("the " + std::string(what) + " " + dir.string() + " is not a directory");
  }
  if ((st.st_mode & 07777) == 0700) return Status::Ok();
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Unavailable("cannot set mode 0700 on the " + std::string(what) + " " + dir.string() +
                       ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    spdlog::warn("the {} {} was open to other users (mode {:o}); it is 0700 now", what,
                 dir.string(), st.st_mode & 07777);
  }
  return Status::Ok();
}

class ServerAppImpl final : public ServerApp {
 public:
  ServerAppImpl(std::unique_ptr<store::Store> store, const Clock& clock)
      : store_(std::move(store)),
        auth_(*store_),
        users_(*store_, clock),
        projects_(*store_, auth_, clock),
        fleets_(*store_, clock),
        runs_(*store_, clock),
        metrics_(*store_),
        clock_(clock) {}

  ~ServerAppImpl() override { Stop(); }

  Status Start(const ServerConfig& config) {
    FW_ASSIGN_OR_RETURN(new_admin_token_, users_.Bootstrap(config.admin_token));
    agent_client_ = std::make_unique<http::AsyncClient>(2);
    if (config.local_fleet) {
      FW_ASSIGN_OR_RETURN(
          local_agent_, server::LocalAgent::Ensure(config.data_dir, config.binary, *store_, clock_,
                                                   *agent_client_, config.prometheus_metrics));
    }
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
    usage_interval_ =
        std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval).count();
    options.tick_budget = std::max(config.poll_interval, std::chrono::milliseconds(200));
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
    services_ = std::make_unique<Services>(Services{auth_, users_, projects_, fleets_, runs_,
                                                    *controller_, *live_logs_, metrics_, clock_});
    if (config.prometheus_metrics) {
      server::ExpositionOptions exposition;
      exposition.stale_after =
          3 *
          std::chrono::duration_cast<std::chrono::microseconds>(config.metrics_interval).count();
      updater_ =
          std::make_unique<server::ExpositionUpdater>(*store_, clock_, snapshot_, exposition);
      FW_RETURN_IF_ERROR(updater_->Update({controller_->bad_replies(), {}, {}}));
    }
    const MetricsEndpointOptions scrape{config.prometheus_metrics, config.prometheus_auth_token};
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
    ticker_ =
        std::make_unique<server::PeriodicTask>("fleet controller", config.poll_interval, [this] {
          Status s = controller_->Tick();
          if (!s.ok()) spdlog::warn("fleet controller: {}", s.ToString());
          if (clock_.Now() >= next_usage_at_) {
            next_usage_at_ = clock_.Now() + usage_interval_;
            Status a = usage_.Account();
            if (!a.ok()) spdlog::warn("usage accounting: {}", a.ToString());
          }
          // Runs changed through the API show up here too, at most one tick late.
          if (updater_) {
            Status u = updater_->Update({controller_->bad_replies(), controller_->TakeDcgmReports(),
                                         controller_->TakeRunEvents()});
            if (!u.ok()) spdlog::warn("metrics exposition: {}", u.ToString());
          }
        });
    ticker_->Start();
    auto micros = [](std::chrono::seconds s) {
      return std::chrono::duration_cast<std::chrono::microseconds>(s).count();
    };
    retention_ = std::make_unique<server::PeriodicTask>(
        "metrics retention", config.retention_interval,
        [this, running = micros(config.running_ttl), finished = micros(config.finished_ttl)] {
          TimeMicros now = clock_.Now();
          Result<int64_t> deleted = store_->DeleteJobMetricsPoints(now - running, now - finished);
          if (!deleted.ok()) {
            spdlog::warn("metrics retention: {}", deleted.status().ToString());
          } else if (*deleted > 0) {
            spdlog::info("metrics retention: deleted {} points", *deleted);
          }
        });
    retention_->Start();
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
    if (ticker_) ticker_->Stop();
    if (retention_) retention_->Stop();
  }

 private:
  std::unique_ptr<store::Store> store_;
  server::AuthService auth_;
  server::UserService users_;
  server::ProjectService projects_;
  server::FleetService fleets_;
  server::RunService runs_;
  server::JobMetricsService metrics_;
  const Clock& clock_;
  std::unique_ptr<http::AsyncClient> agent_client_;
  std::unique_ptr<server::LocalAgent> local_agent_;
  std::unique_ptr<server::FleetController> controller_;
  std::unique_ptr<server::LiveLogs> live_logs_;
  expose::ExpositionSnapshot snapshot_;
  std::unique_ptr<server::ExpositionUpdater> updater_;  // only when /metrics is enabled
  // Cost and GPU time are accounted every metrics interval, whether /metrics is on or not, so
  // that switching it on later shows what was spent meanwhile. Ticker thread only.
  server::UsageAccountant usage_{*store_, clock_};
  TimeMicros usage_interval_ = 10'000'000;
  TimeMicros next_usage_at_ = 0;
  std::unique_ptr<Services> services_;
  http::Router router_;
  std::unique_ptr<http::Server> http_;
  std::unique_ptr<server::PeriodicTask> ticker_;
  std::unique_ptr<server::PeriodicTask> retention_;
  uint16_t port_ = 0;
  std::optional<std::string> new_admin_token_;
};

}  // namespace

Result<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerConfig& config,
                                                    const Clock& clock) {
  store::SqliteStoreOptions store_options;
  if (config.encryption_key) {
    FW_ASSIGN_OR_RETURN(store_options.secret_key,
                        store::ParseSecretKey(*config.encryption_key, "FLEETWATCH_ENCRYPTION_KEY"));
  }
  const std::filesystem::path data_dir(config.data_dir);
  FW_RETURN_IF_ERROR(MakePrivateDirectory(data_dir, "data directory"));
  FW_RETURN_IF_ERROR(MakePrivateDirectory(data_dir / "logs", "log directory"));
  std::string db_path = (data_dir / "fleetwatch.db").string();
  Result<std::unique_ptr<store::Store>> store = store::OpenSqliteStore(db_path, store_options);
  if (store_options.secret_key) {
    OPENSSL_cleanse(store_options.secret_key->data(), store_options.secret_key->size());
  }
  if (!store.ok()) return store.status();
  auto app = std::make_unique<ServerAppImpl>(std::move(store).value(), clock);
  FW_RETURN_IF_ERROR(app->Start(config));
  return std::unique_ptr<ServerApp>(std::move(app));
}

}  // namespace fleetwatch::api
