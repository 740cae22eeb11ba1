#include "api/server_app.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "api/routes.h"
#include "http/server.h"
#include "server/auth.h"
#include "server/fleets.h"
#include "server/periodic_task.h"
#include "server/projects.h"
#include "server/runs.h"
#include "server/users.h"
#include "store/sqlite_store.h"

namespace fleetwatch::api {
namespace {

class ServerAppImpl final : public ServerApp {
 public:
  ServerAppImpl(std::unique_ptr<store::Store> store, const Clock& clock)
      : store_(std::move(store)),
        auth_(*store_),
        users_(*store_, clock),
        projects_(*store_, auth_, clock),
        fleets_(*store_, clock),
        runs_(*store_, clock),
        services_{auth_, users_, projects_, fleets_, runs_, clock} {}

  ~ServerAppImpl() override { Stop(); }

  Status Start(const ServerConfig& config) {
    FW_ASSIGN_OR_RETURN(new_admin_token_, users_.Bootstrap(config.admin_token));
    AddApiRoutes(router_, services_);
    http::ServerOptions options;
    options.host = config.host;
    options.port = config.port;
    options.threads = config.http_threads;
    http_ = std::make_unique<http::Server>(
        options, [this](http::Request& request) { return router_.Dispatch(request); });
    FW_ASSIGN_OR_RETURN(port_, http_->Start());
    lifecycle_ =
        std::make_unique<server::PeriodicTask>("run lifecycle", config.lifecycle_interval, [this] {
          Status s = runs_.AdvanceRuns();
          if (!s.ok()) spdlog::warn("run lifecycle: {}", s.ToString());
        });
    lifecycle_->Start();
    return Status::Ok();
  }

  uint16_t port() const override { return port_; }
  const std::optional<std::string>& new_admin_token() const override { return new_admin_token_; }

  void Stop() override {
    if (http_) http_->Stop();
    if (lifecycle_) lifecycle_->Stop();
  }

 private:
  std::unique_ptr<store::Store> store_;
  server::AuthService auth_;
  server::UserService users_;
  server::ProjectService projects_;
  server::FleetService fleets_;
  server::RunService runs_;
  Services services_;
  http::Router router_;
  std::unique_ptr<http::Server> http_;
  std::unique_ptr<server::PeriodicTask> lifecycle_;
  uint16_t port_ = 0;
  std::optional<std::string> new_admin_token_;
};

}  // namespace

Result<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerConfig& config,
                                                    const Clock& clock) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    return Unavailable("cannot create the data directory " + config.data_dir + ": " + ec.message());
  }
  std::string db_path = (std::filesystem::path(config.data_dir) / "fleetwatch.db").string();
  FW_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store, store::OpenSqliteStore(db_path));
  auto app = std::make_unique<ServerAppImpl>(std::move(store), clock);
  FW_RETURN_IF_ERROR(app->Start(config));
  return std::unique_ptr<ServerApp>(std::move(app));
}

}  // namespace fleetwatch::api
