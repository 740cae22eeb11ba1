#include "agent/agent_command.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/json/value.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_api.h"
#include "agent/agent_certificate.h"
#include "agent/amd_sysfs_backend.h"
#include "agent/cgroup_tree.h"
#include "agent/dcgm_exporter.h"
#include "agent/device_nodes.h"
#include "agent/file_modes.h"
#include "agent/host_gpus.h"
#include "agent/inventory.h"
#include "agent/job_dirs.h"
#include "agent/job_env.h"
#include "agent/job_identity.h"
#include "agent/nvml_backend.h"
#include "agent/process_job_runtime.h"
#include "http/server.h"
#include "model/json_text.h"
#include "util/clock.h"
#include "util/data_dir_lock.h"
#include "util/ids.h"
#include "util/logging.h"
#include "util/private_file.h"
#include "util/signals.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

constexpr std::chrono::seconds kShutdownGrace{5};
constexpr char kRootJobsDir[] = "/var/lib/fleetwatch/jobs";
constexpr char kUidLockDir[] = "/run/fleetwatch/uids";

struct AgentFlags {
  std::string host = "0.0.0.0";
  int port = 10998;
  std::string token;
  std::string data_dir;
  int dcgm_exporter_port = 10997;
  int dcgm_interval_seconds = 5;
  std::string dcgm_exporter_url;
  bool no_dcgm = false;
  std::string metrics_token;
  std::string tls_cert;
  std::string tls_key;
  bool no_tls = false;
  std::string log_level = "info";
  std::string jobs_dir;
  JobUserFlags job_users;
};

// What the agent serves: HTTPS with these files, or plain HTTP when `server` is unset.
struct AgentTls {
  std::optional<http::TlsServerOptions> server;
  std::string fingerprint;  // of the certificate, "sha256:<hex>"
};

// The TLS setup the flags ask for: --no-tls, the given certificate and key, or the agent's own
// self-signed certificate in `data_dir` (made on first start).
Result<AgentTls> SetUpTls(const AgentFlags& flags, const fs::path& data_dir) {
  AgentTls tls;
  if (flags.no_tls) {
    if (!flags.tls_cert.empty() || !flags.tls_key.empty()) {
      return InvalidArgument("--no-tls cannot be combined with --tls-cert/--tls-key");
    }
    spdlog::warn(
        "--no-tls: serving plain HTTP; the server's token and all job data cross the "
        "network unencrypted");
    return tls;
  }
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return InvalidArgument("--tls-cert and --tls-key go together");
  }
  if (!flags.tls_cert.empty()) {
    FW_ASSIGN_OR_RETURN(tls.fingerprint, FingerprintOfCertificateFile(flags.tls_cert));
    tls.server = http::TlsServerOptions{flags.tls_cert, flags.tls_key};
    return tls;
  }
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  ListenNames(flags.host, dns_names, ip_addresses);
  FW_ASSIGN_OR_RETURN(AgentCertificate certificate,
                      EnsureSelfSignedCertificate(data_dir, dns_names, ip_addresses));
  if (certificate.created) {
    spdlog::info("created a self-signed TLS certificate in {}",
                 certificate.certificate_file.string());
  }
  tls.fingerprint = certificate.fingerprint;
  tls.server = http::TlsServerOptions{certificate.certificate_file.string(),
                                      certificate.private_key_file.string()};
  return tls;
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string DefaultDataDir() {
  if (std::string env = Env("FLEETWATCH_AGENT_DATA_DIR"); !env.empty()) return env;
  std::string home = Env("HOME");
  return (fs::path(home.empty() ? "/root" : home) / ".fleetwatch" / "agent").string();
}

// The jobs root the flags select: --jobs-dir, else outside the data dir when jobs may run under
// other uids (root), else <data dir>/jobs.
fs::path JobsDir(const AgentFlags& flags, const fs::path& data_dir) {
  if (!flags.jobs_dir.empty()) return flags.jobs_dir;
  return ::geteuid() == 0 ? fs::path(kRootJobsDir) : data_dir / "jobs";
}

std::string DescribeJobUsers(const JobUserPolicy& policy) {
  if (const auto* dynamic = std::get_if<DynamicUserPolicy>(&policy)) {
    return "a uid of its own from " + std::to_string(dynamic->range.first) + "-" +
           std::to_string(dynamic->range.last);
  }
  if (const auto* named = std::get_if<NamedUserPolicy>(&policy)) {
    return "user " + named->name + " (uid " + std::to_string(named->uid) + ")";
  }
  return "the agent's user (uid " + std::to_string(::geteuid()) + ")";
}

// Who jobs run as and where their directories are; false (after saying why) when the agent must
// not start.
bool SetUpJobUsers(const AgentFlags& flags, const fs::path& data_dir,
                   ProcessJobRuntimeOptions& options) {
  const uid_t agent_uid = ::geteuid();
  Result<JobUserPolicy> policy = ResolveJobUserPolicy(flags.job_users, agent_uid, kUidLockDir);
  if (!policy.ok()) {
    std::cerr << "error: " << policy.status().message() << "\n";
    return false;
  }
  const bool others = RunsJobsAsOtherUsers(*policy, agent_uid);
  options.jobs_dir = JobsDir(flags, data_dir);
  if (Status s = PrepareJobsRoot(options.jobs_dir, agent_uid == 0, others); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return false;
  }
  if (agent_uid == 0 && flags.job_users.allow_root_jobs) {
    spdlog::warn("--allow-root-jobs: jobs run as root, so whoever may run a job here is root");
  }
  if (others) {
    for (const std::string& node : GpuDeviceNodesClosedToOthers("/dev")) {
      spdlog::warn(
          "jobs run under their own uids but {} is not readable and writable by others: "
          "they cannot use that GPU device (it is normally 0666)",
          node);
    }
  }
  spdlog::info("each job runs as {}, in a directory of its own under {}", DescribeJobUsers(*policy),
               options.jobs_dir.string());
  options.job_users = std::move(policy).value();
  return true;
}

// The host's dcgm-exporter as the flags select it: null when DCGM is off (--no-dcgm, or neither a
// URL nor dcgm-exporter on PATH).
Result<std::unique_ptr<DcgmExporter>> SetUpDcgm(const AgentFlags& flags, const fs::path& data_dir,
                                                const Clock& clock) {
  if (flags.no_dcgm) return std::unique_ptr<DcgmExporter>();
  DcgmExporterOptions options;
  options.url = flags.dcgm_exporter_url;
  if (options.url.empty()) {
    std::optional<fs::path> executable = FindExecutable("dcgm-exporter", Env("PATH"));
    if (!executable) {
      spdlog::info("dcgm-exporter is not on PATH: no DCGM metrics");
      return std::unique_ptr<DcgmExporter>();
    }
    options.executable = *executable;
  }
  options.data_dir = data_dir;
  options.port = static_cast<uint16_t>(flags.dcgm_exporter_port);
  options.interval = std::chrono::seconds(flags.dcgm_interval_seconds);
  options.env = CurrentEnvironment();
  return DcgmExporter::Create(std::move(options), clock);
}

int RunAgent(const AgentFlags& flags) {
  SetupLogging(flags.log_level);
  std::string token = !flags.token.empty() ? flags.token : Env("FLEETWATCH_AGENT_TOKEN");
  if (token.empty()) {
    std::cerr << "error: an agent token is required: pass --token or set "
                 "FLEETWATCH_AGENT_TOKEN\n";
    return 1;
  }
  // Whatever the agent creates is its own: 0700 directories, 0600 files.
  ::umask(077);
  // Before any thread starts (job processes get a clean mask, see process_launch.h).
  const TerminationSignals signals;

  fs::path data_dir = flags.data_dir.empty() ? DefaultDataDir() : flags.data_dir;
  if (Status s = EnsurePrivateDirectory(data_dir); !s.ok()) {
    std::cerr << "error: the data directory: " << s.message() << "\n";
    return 1;
  }
  // Before anything in the data dir is read or written: a second agent there changes nothing.
  Result<DataDirLock> lock = DataDirLock::Acquire(data_dir, "agent");
  if (!lock.ok()) {
    std::cerr << "error: " << lock.status().message() << "\n";
    return 1;
  }
  ProcessJobRuntimeOptions options;
  if (!SetUpJobUsers(flags, data_dir, options)) return 1;

  Result<AgentTls> tls = SetUpTls(flags, data_dir);
  if (!tls.ok()) {
    std::cerr << "error: " << tls.status().message() << "\n";
    return 1;
  }

  const Clock& clock = SystemClock::Get();
  Result<std::unique_ptr<DcgmExporter>> dcgm_setup = SetUpDcgm(flags, data_dir, clock);
  if (!dcgm_setup.ok()) {
    std::cerr << "error: " << dcgm_setup.status().message() << "\n";
    return 1;
  }
  std::unique_ptr<DcgmExporter> dcgm = std::move(dcgm_setup).value();
  std::unique_ptr<GpuBackend> gpus = OpenHostGpuBackend(DefaultNvmlLibrary(), DefaultSysfsRoot());
  fs::path cgroup_root = DefaultCgroupRoot();
  HostInventory inventory = CollectInventory(*gpus, DetectCgroupMode(cgroup_root));

  options.data_dir = data_dir;
  options.cgroup_root = cgroup_root;
  options.gpu_vendor = HostGpuVendor(*gpus);
  std::unique_ptr<JobRuntime> runtime = NewProcessJobRuntime(options, clock);

  AgentIdentity identity{NewId(), clock.Now(), token, std::nullopt};
  if (!flags.metrics_token.empty()) identity.metrics_token = flags.metrics_token;
  std::string agent_id = identity.agent_id;
  AgentApi api(std::move(identity), inventory, *runtime, *gpus, clock, dcgm.get());
  http::ServerOptions server_options;
  server_options.host = flags.host;
  server_options.port = static_cast<uint16_t>(flags.port);
  server_options.tls = tls->server;
  http::Server server(server_options,
                      [&api](http::Request& request) { return api.Handle(request); });
  Result<uint16_t> port = server.Start();
  if (!port.ok()) {
    std::cerr << "error: " << port.status().message() << "\n";
    return 1;
  }
  fs::path agent_file = data_dir / "agent.json";
  boost::json::object ready{
      {"pid", ::getpid()}, {"host", flags.host}, {"port", *port}, {"agent_id", agent_id}};
  ready["tls"] = tls->server.has_value();
  if (tls->server) ready["fingerprint"] = tls->fingerprint;
  Status written = WritePrivateFileAtomically(agent_file, model::SerializeJson(ready) + "\n");
  if (!written.ok()) {
    std::cerr << "error: " << written.message() << "\n";
    server.Stop();
    return 1;
  }
  spdlog::info("agent {}: {} CPUs, {} GPUs, cgroup {}, data in {}", agent_id, inventory.cpus,
               inventory.gpus.size(), CgroupModeName(inventory.cgroup), data_dir.string());
  if (dcgm) dcgm->Start();
  if (tls->server) {
    std::cout << "TLS certificate fingerprint: " << tls->fingerprint
              << " (pin it in the fleet: fingerprint: " << tls->fingerprint << ")\n";
  }
  std::cout << "fleetwatch agent listening on " << (tls->server ? "https://" : "http://")
            << flags.host << ":" << *port << std::endl;

  spdlog::info("received {}, stopping jobs and shutting down", signals.Wait());
  server.Stop();
  runtime->StopAll(kShutdownGrace);
  runtime.reset();
  if (dcgm) dcgm->Stop();
  std::error_code ec;
  fs::remove(agent_file, ec);
  std::cout << "fleetwatch agent stopped" << std::endl;
  return 0;
}

}  // namespace

void AddAgentCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<AgentFlags>();
  CLI::App* cmd = app.add_subcommand("agent", "Run the fleetwatch agent of this host");
  cmd->add_option("--host", flags->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", flags->port, "Port to listen on (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--token", flags->token,
                  "Bearer token the server must send [env FLEETWATCH_AGENT_TOKEN]");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Directory of job logs and agent.json [env FLEETWATCH_AGENT_DATA_DIR, default "
                  "~/.fleetwatch/agent]");
  cmd->add_option("--dcgm-exporter-port", flags->dcgm_exporter_port,
                  "Port on 127.0.0.1 for the dcgm-exporter the agent runs when dcgm-exporter is "
                  "on PATH")
      ->envname("FLEETWATCH_DCGM_EXPORTER_PORT")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  cmd->add_option("--dcgm-interval-seconds", flags->dcgm_interval_seconds,
                  "How often DCGM metrics are collected and scraped")
      ->envname("FLEETWATCH_DCGM_INTERVAL_SECONDS")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--dcgm-exporter-url", flags->dcgm_exporter_url,
                  "Scrape this dcgm-exporter (e.g. http://127.0.0.1:9400/metrics) instead of "
                  "running one")
      ->envname("FLEETWATCH_DCGM_EXPORTER_URL");
  cmd->add_flag("--no-dcgm", flags->no_dcgm, "Collect no DCGM metrics");
  cmd->add_option("--metrics-token", flags->metrics_token,
                  "Bearer token Prometheus must send for GET /metrics (default: open)")
      ->envname("FLEETWATCH_AGENT_METRICS_TOKEN");
  cmd->add_option("--jobs-dir", flags->jobs_dir,
                  "Directory of the jobs' own directories (each job's HOME), outside the data "
                  "directory [default /var/lib/fleetwatch/jobs as root, else <data dir>/jobs]")
      ->envname("FLEETWATCH_JOBS_DIR");
  cmd->add_option("--job-uid-range", flags->job_users.uid_range,
                  "As root: each job runs under a uid of its own from this range (no passwd "
                  "entry needed)")
      ->envname("FLEETWATCH_JOB_UID_RANGE")
      ->capture_default_str();
  cmd->add_option("--job-user", flags->job_users.job_user,
                  "As root: run every job as this existing user instead (not root)")
      ->envname("FLEETWATCH_JOB_USER");
  cmd->add_flag("--allow-root-jobs", flags->job_users.allow_root_jobs,
                "As root: run jobs as root (whoever may run a job is then root on this host)")
      ->envname("FLEETWATCH_ALLOW_ROOT_JOBS");
  cmd->add_option("--tls-cert", flags->tls_cert,
                  "PEM certificate (chain) to serve HTTPS with (default: a self-signed one made "
                  "in the data directory on first start)")
      ->envname("FLEETWATCH_TLS_CERT");
  cmd->add_option("--tls-key", flags->tls_key, "PEM private key of --tls-cert")
      ->envname("FLEETWATCH_TLS_KEY");
  cmd->add_flag("--no-tls", flags->no_tls,
                "Serve plain HTTP (the server must list this host with tls: false)");
  cmd->add_option("--log-level", flags->log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  cmd->callback([flags, &exit_code] { exit_code = RunAgent(*flags); });
}

}  // namespace fleetwatch::agent
