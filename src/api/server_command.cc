#include "api/server_command.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "api/server_app.h"
#include "api/server_data_dir.h"
#include "cli/config.h"
#include "server/energy.h"
#include "server/users.h"
#include "store/database_url.h"
#include "util/logging.h"
#include "util/memory.h"
#include "util/signals.h"

namespace fleetwatch::api {
namespace {

struct ServerFlags {
  std::string host = "127.0.0.1";
  int port = 3000;
  std::string data_dir;
  std::string log_level = "info";
  bool no_local_fleet = false;
  std::string tls_cert;
  std::string tls_key;
  std::string database_url;
  bool reset_admin_token = false;
  std::string degraded_gpus = "use";
};

// A positive integer from the environment, or `fallback` (with a warning when malformed).
int64_t EnvInt(const char* name, int64_t fallback, int64_t min, int64_t max) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (*end != '\0' || v < min || v > max) {
    spdlog::warn("ignoring {}: not an integer from {} to {}", name, min, max);
    return fallback;
  }
  return v;
}

std::string SelfExecutable() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("fleetwatch") : self.string();
}

std::string HomeDir() {
  const char* home = std::getenv("HOME");
  return home != nullptr && *home != '\0' ? home : "/root";
}

// On the first start, points the CLI of the user who started the server at it, unless they
// already have a configuration (which is never overwritten). Written by the CLI's own config
// writer: YAML-quoted, through a 0600 temporary file renamed into place.
void WriteClientConfigIfMissing(const std::string& url, const std::string& token) {
  std::filesystem::path file = cli::ConfigFilePath(HomeDir());
  std::error_code ec;
  if (std::filesystem::exists(file, ec) || ec) return;
  Status written =
      cli::UpdateConfigFile(file, {url, token, std::string(cli::kDefaultProject), std::nullopt});
  if (!written.ok()) {
    spdlog::warn("the CLI is not configured: {}", written.message());
    return;
  }
  std::cout << "  The CLI is configured in " << file.string() << "\n";
}

// After a reset, the config that points at this server (same URL) gets the new token; a missing
// one is written as on the first start; one for another server is left alone.
void UpdateClientConfigToken(const std::string& url, const std::string& token) {
  std::filesystem::path file = cli::ConfigFilePath(HomeDir());
  std::error_code ec;
  if (!std::filesystem::exists(file, ec) && !ec) return WriteClientConfigIfMissing(url, token);
  Result<cli::SettingValues> current = cli::ReadConfigFile(file);
  if (!current.ok() || current->url != url) {
    std::cout << "  Point the CLI at it: fleetwatch config --url " << url << " --token " << token
              << "\n";
    return;
  }
  Status written = cli::UpdateConfigFile(file, {std::nullopt, token, std::nullopt, std::nullopt});
  if (!written.ok()) {
    spdlog::warn("the CLI is not configured: {}", written.message());
    return;
  }
  std::cout << "  The CLI is configured in " << file.string() << "\n";
}

// `fleetwatch server --reset-admin-token`: gives user `admin` a new token while no server runs
// on the data dir (its lock says so), and prints it; the old token stops working.
int ResetAdminToken(const ServerConfig& config, const std::string& url) {
  if (std::error_code ec;
      !config.database_url && !std::filesystem::exists(DatabaseFile(config.data_dir), ec)) {
    std::cerr << "error: no fleetwatch server data in " << config.data_dir
              << " (a server makes its admin token at its first start)\n";
    return 1;
  }
  Result<ServerDataDir> dir =
      OpenServerDataDir(config.data_dir, config.encryption_key, config.database_url);
  if (!dir.ok()) {
    std::cerr << "error: " << dir.status().message() << "\n";
    return 1;
  }
  Result<model::User> admin = dir->store->GetUserByName("admin");
  if (!admin.ok()) {
    std::cerr << "error: user admin: " << admin.status().message() << "\n";
    return 1;
  }
  server::UserService users(*dir->store, SystemClock::Get());
  Result<server::NewUser> fresh = users.RefreshToken(*admin, "admin");
  if (!fresh.ok()) {
    std::cerr << "error: " << fresh.status().message() << "\n";
    return 1;
  }
  std::cout << "The new admin token is " << fresh->token
            << " (shown only now; keep it). The old one no longer works.\n";
  UpdateClientConfigToken(url, fresh->token);
  return 0;
}

int RunServer(const ServerFlags& flags) {
  SetupLogging(flags.log_level);
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    std::cerr << "error: --tls-cert and --tls-key go together\n";
    return 1;
  }
  // Before any thread starts.
  const TerminationSignals signals;
  // One connection per polled agent: allow as many descriptors as the hard limit does.
  if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  ServerConfig config;
  config.host = flags.host;
  config.port = static_cast<uint16_t>(flags.port);
  config.data_dir = flags.data_dir;
  if (config.data_dir.empty()) {
    const char* env = std::getenv("FLEETWATCH_DATA_DIR");
    config.data_dir = env != nullptr && *env != '\0'
                          ? std::string(env)
                          : (std::filesystem::path(HomeDir()) / ".fleetwatch" / "server").string();
  }
  if (const char* key = std::getenv("FLEETWATCH_ENCRYPTION_KEY"); key != nullptr && *key != '\0') {
    config.encryption_key = key;
  }
  // The flag wins over the variable (CLI11 reads the variable only without the flag).
  if (!flags.database_url.empty()) config.database_url = flags.database_url;
  // Read once; the local agent and its jobs, started later, must not inherit them.
  ::unsetenv("FLEETWATCH_ENCRYPTION_KEY");
  ::unsetenv("FLEETWATCH_DATABASE_URL");
  if (const char* token = std::getenv("FLEETWATCH_SERVER_ADMIN_TOKEN"); token && *token) {
    config.admin_token = token;
  }
  config.http_threads = std::max(4u, std::thread::hardware_concurrency());
  config.poll_interval =
      std::chrono::milliseconds(EnvInt("FLEETWATCH_POLL_INTERVAL_MS", 1000, 50, 600'000));
  config.unreachable_after =
      std::chrono::seconds(EnvInt("FLEETWATCH_INSTANCE_UNREACHABLE_SECONDS", 60, 1, 86'400));
  config.stop_grace_seconds = static_cast<int>(EnvInt("FLEETWATCH_STOP_GRACE_SECONDS", 10, 0, 300));
  config.max_log_bytes =
      EnvInt("FLEETWATCH_MAX_LOG_BYTES", int64_t{64} << 20, 1024, int64_t{1} << 40);
  config.local_fleet = !flags.no_local_fleet;
  config.metrics_interval =
      std::chrono::seconds(EnvInt("FLEETWATCH_METRICS_INTERVAL_SECONDS", 10, 1, 3600));
  config.gpu_idle_threshold_percent =
      static_cast<double>(EnvInt("FLEETWATCH_GPU_IDLE_THRESHOLD_PERCENT", 5, 0, 100));
  config.retention_interval =
      std::chrono::seconds(EnvInt("FLEETWATCH_METRICS_RETENTION_INTERVAL_SECONDS", 300, 1, 86'400));
  config.running_ttl = std::chrono::seconds(
      EnvInt("DSTACK_SERVER_METRICS_RUNNING_TTL_SECONDS", 3600, 1, int64_t{10} * 365 * 86'400));
  config.finished_ttl = std::chrono::seconds(
      EnvInt("DSTACK_SERVER_METRICS_FINISHED_TTL_SECONDS", 604'800, 1, int64_t{10} * 365 * 86'400));
  config.max_connections =
      static_cast<size_t>(EnvInt("FLEETWATCH_MAX_CONNECTIONS", 4096, 0, 1'000'000));
  config.max_unauthenticated_per_address =
      static_cast<size_t>(EnvInt("FLEETWATCH_MAX_UNAUTHENTICATED_PER_ADDRESS", 64, 0, 1'000'000));
  config.max_log_reads_per_host =
      static_cast<size_t>(EnvInt("FLEETWATCH_MAX_LOG_READS_PER_HOST", 4, 1, 10'000));
  config.lease_time = std::chrono::seconds(EnvInt("FLEETWATCH_LEASE_SECONDS", 10, 1, 3600));
  config.metrics_barrier =
      std::chrono::milliseconds(EnvInt("FLEETWATCH_METRICS_BARRIER_MS", 2000, 1, 60'000));
  config.binary = SelfExecutable();
  // Set at all, even empty, enables (spec/METRICS.md).
  config.prometheus_metrics = std::getenv("DSTACK_ENABLE_PROMETHEUS_METRICS") != nullptr;
  config.openmetrics = EnvInt("FLEETWATCH_OPENMETRICS", 0, 0, 1) == 1;
  if (Result<server::DegradedGpuPolicy> policy =
          server::ParseDegradedGpuPolicy(flags.degraded_gpus);
      policy.ok()) {
    config.degraded_gpus = *policy;
  } else {
    std::cerr << "error: --degraded-gpus: " << policy.status().message() << "\n";
    return 1;
  }
  if (const char* token = std::getenv("DSTACK_PROMETHEUS_AUTH_TOKEN"); token != nullptr) {
    config.prometheus_auth_token = token;
  }
  if (const char* carbon = std::getenv("FLEETWATCH_CARBON_INTENSITY"); carbon && *carbon) {
    Result<double> intensity = server::ParseCarbonIntensity(carbon);
    if (!intensity.ok()) {
      std::cerr << "error: FLEETWATCH_CARBON_INTENSITY " << intensity.status().message() << "\n";
      return 1;
    }
    config.carbon_intensity = *intensity;
  }

  if (!flags.tls_cert.empty()) config.tls = http::TlsServerOptions{flags.tls_cert, flags.tls_key};
  if (flags.reset_admin_token) {
    return ResetAdminToken(config, (config.tls ? "https://" : "http://") + flags.host + ":" +
                                       std::to_string(flags.port));
  }

  // Two arenas: the server's threads (HTTP, agent replies, the controller) would otherwise each
  // keep the pages they freed, several times the exposition at a thousand hosts with DCGM
  // (bench/README.md, memory).
  LimitAllocatorArenas(2);
  Result<std::unique_ptr<ServerApp>> app = ServerApp::Start(config, SystemClock::Get());
  if (!app.ok()) {
    std::cerr << "error: " << app.status().message() << "\n";
    return 1;
  }
  std::string url =
      (config.tls ? "https://" : "http://") + flags.host + ":" + std::to_string((*app)->port());
  std::cout << "fleetwatch server 0.1.0\n"
            << "  Data:  " << config.data_dir << "\n"
            << "  Database: "
            << (config.database_url ? store::RedactDatabaseUrl(*config.database_url)
                                    : DatabaseFile(config.data_dir).string())
            << "\n"
            << "  UI:    " << url << "/\n"
            << "  API:   " << url << "/api\n";
  if (config.prometheus_metrics) std::cout << "  Metrics: " << url << "/metrics\n";
  if (const auto& token = (*app)->new_admin_token()) {
    std::cout << "  The admin token is " << *token << " (shown only now; keep it)\n";
    WriteClientConfigIfMissing(url, *token);
  } else {
    std::cout << "  Sign in with the admin token printed at the first start\n";
  }
  std::cout << "fleetwatch server listening on " << url << std::endl;

  spdlog::info("received {}, shutting down", signals.Wait());
  (*app)->Stop();
  app.value().reset();
  std::cout << "fleetwatch server stopped" << std::endl;
  return 0;
}

}  // namespace

void AddServerCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ServerFlags>();
  CLI::App* cmd = app.add_subcommand("server", "Run the fleetwatch server");
  cmd->add_option("--host", flags->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", flags->port, "Port to listen on (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--data-dir", flags->data_dir,
                  "Directory of the database [env FLEETWATCH_DATA_DIR, default "
                  "~/.fleetwatch/server]");
  cmd->add_option("--log-level", flags->log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  cmd->add_option("--tls-cert", flags->tls_cert,
                  "PEM certificate (chain): serve the API, UI and /metrics over HTTPS only")
      ->envname("FLEETWATCH_TLS_CERT");
  cmd->add_option("--tls-key", flags->tls_key, "PEM private key of --tls-cert")
      ->envname("FLEETWATCH_TLS_KEY");
  cmd->add_option("--database-url", flags->database_url,
                  "PostgreSQL database to keep the state in (postgresql://user:password@host:port/"
                  "database); unset: SQLite in the data dir")
      ->envname("FLEETWATCH_DATABASE_URL");
  cmd->add_option("--degraded-gpus", flags->degraded_gpus,
                  "Whether degraded GPUs take new jobs: use or avoid (unhealthy ones never do)")
      ->check(CLI::IsMember({"use", "avoid"}))
      ->envname("FLEETWATCH_DEGRADED_GPUS")
      ->capture_default_str();
  cmd->add_flag("--no-local-fleet", flags->no_local_fleet,
                "Do not run an agent for this machine (fleet `local` of project `main`)");
  cmd->add_flag("--reset-admin-token", flags->reset_admin_token,
                "Give user admin a new token, print it and exit (the server must be stopped; the "
                "old token stops working)");
  cmd->callback([flags, &exit_code] { exit_code = RunServer(*flags); });
}

}  // namespace fleetwatch::api
