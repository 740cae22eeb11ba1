#include "server/local_agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <thread>

#include "model/fleet_spec.h"
#include "model/json_text.h"
#include "util/data_dir_lock.h"
#include "util/ids.h"
#include "util/private_file.h"

namespace fleetwatch::server {
namespace fs = std::filesystem;
namespace json = boost::json;
namespace {

constexpr char kFleetName[] = "local";

std::optional<json::object> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  json::error_code ec;
  json::value v = json::parse(text.str(), ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v.as_object();
}

// A process that exists and is not a zombie (a dead agent stays one where PID 1 does not reap).
bool Alive(int pid) {
  if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() || text[close + 2] != 'Z';
}

// Waits between tries to start the agent again: 1 s, 2 s, 4 s... up to 60 s.
std::chrono::seconds Backoff(int failures) {
  return std::chrono::seconds(std::min(60, 1 << std::min(failures, 6)));
}

// The agent's certificate fingerprint, pinned: empty for one started by an older server without
// TLS (then plain HTTP, which never leaves 127.0.0.1).
bool Healthy(http::AsyncClient& client, const AgentAddress& address,
             const std::string& fingerprint) {
  http::AsyncRequest r;
  r.host = address.host;
  r.port = address.port;
  r.target = "/api/healthcheck";
  r.headers = {{"Authorization", "Bearer " + address.token}};
  r.timeout = std::chrono::milliseconds(3000);
  if (!fingerprint.empty()) r.tls = http::TlsClientOptions{fingerprint, ""};
  auto reply = client.SendAll({r});
  return reply[0].ok() && reply[0]->status == 200;
}

// Where the local agent keeps its jobs' own directories when it runs as root: outside the
// server's 0700 data dir (job users could not reach them there), one per data dir so that two
// servers on a host never share one. Not root: nullopt, the agent's default.
std::optional<std::string> LocalJobsDir(const fs::path& data_dir) {
  if (geteuid() != 0) return std::nullopt;
  std::string key = fs::absolute(data_dir).lexically_normal().string();
  return "/var/lib/fleetwatch/jobs/local-" + Sha256Hex(key).substr(0, 16);
}

// Variables of the server's environment the local agent must not see: secrets (it reads its own
// token from FLEETWATCH_AGENT_TOKEN, set anew) and the server's certificate.
bool IsServerSecret(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "FLEETWATCH_AGENT_TOKEN",    "FLEETWATCH_SERVER_ADMIN_TOKEN",
      "FLEETWATCH_ENCRYPTION_KEY", "FLEETWATCH_TOKEN",
      "FLEETWATCH_DATABASE_URL",   "DSTACK_PROMETHEUS_AUTH_TOKEN",
      "FLEETWATCH_TLS_CERT",       "FLEETWATCH_TLS_KEY"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

// Starts `binary agent` in its own session (double fork: it is never our child, so nothing has
// to reap it and a server crash leaves it running). Its output goes to <dir>/agent.log.
Status Spawn(const std::string& binary, const fs::path& dir, const std::string& token, bool dcgm,
             const std::optional<std::string>& jobs_dir) {
  std::string log = (dir / "agent.log").string();
  std::string dir_text = dir.string();
  // HTTPS with the agent's self-signed certificate in its own directory, pinned by the server.
  std::vector<const char*> argv = {binary.c_str(), "agent", "--host",     "127.0.0.1",
                                   "--port",       "0",     "--data-dir", dir_text.c_str()};
  if (!dcgm) argv.push_back("--no-dcgm");
  if (jobs_dir) {
    argv.push_back("--jobs-dir");
    argv.push_back(jobs_dir->c_str());
  }
  argv.push_back(nullptr);
  // The agent inherits the server's environment less the server's secrets and TLS files (it makes
  // its own certificate), plus its token. Built here: after fork only async-signal-safe calls.
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    if (!IsServerSecret(name)) env_text.emplace_back(entry);
  }
  env_text.push_back("FLEETWATCH_AGENT_TOKEN=" + token);
  std::vector<char*> envp;
  for (std::string& entry : env_text) envp.push_back(entry.data());
  envp.push_back(nullptr);
  pid_t child = fork();
  if (child < 0) return Internal("fork failed");
  if (child == 0) {
    if (fork() != 0) _exit(0);
    setsid();
    int devnull = open("/dev/null", O_RDONLY);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull >= 0) dup2(devnull, 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    execve(binary.c_str(), const_cast<char* const*>(argv.data()), envp.data());
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return Status::Ok();
}

Status RegisterFleet(store::Store& store, const Clock& clock, const AgentAddress& address,
                     const std::string& fingerprint) {
  FW_ASSIGN_OR_RETURN(model::Project main, store.GetProject("main"));
  Result<model::Fleet> fleet = store.GetFleet(main.id, kFleetName);
  if (fleet.ok()) {
    FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances, store.ListInstances(main.id));
    for (model::Instance& instance : instances) {
      if (instance.fleet_id != fleet->id) continue;
      if (instance.hostname == address.host && instance.agent_port == address.port &&
          instance.agent_token == address.token && instance.tls == !fingerprint.empty() &&
          instance.tls_fingerprint == fingerprint) {
        continue;
      }
      instance.hostname = address.host;
      instance.agent_port = address.port;
      instance.agent_token = address.token;
      instance.tls = !fingerprint.empty();
      instance.tls_fingerprint = fingerprint;
      FW_RETURN_IF_ERROR(store.UpdateInstance(instance));
    }
    return Status::Ok();
  }
  if (fleet.status().code() != StatusCode::kNotFound) return fleet.status();
  TimeMicros now = clock.Now();
  model::FleetConfiguration config{
      kFleetName,
      {{address.host, address.port, "", std::nullopt, !fingerprint.empty(), "", fingerprint}},
      std::nullopt};
  model::Fleet f{
      NewId(), main.id, main.name, kFleetName, model::FleetStatus::kActive, model::ToJson(config),
      now};
  model::Instance instance;
  instance.id = NewId();
  instance.project_id = main.id;
  instance.fleet_id = f.id;
  instance.fleet_name = kFleetName;
  instance.name = std::string(kFleetName) + "-0";
  instance.backend = "local";
  instance.hostname = address.host;
  instance.agent_port = address.port;
  instance.agent_token = address.token;
  instance.tls = !fingerprint.empty();
  instance.tls_fingerprint = fingerprint;
  instance.created_at = now;
  return store.CreateFleet(f, {instance});
}

}  // namespace

LocalAgent::LocalAgent(LocalAgentOptions options, store::Store& store, const Clock& clock,
                       http::AsyncClient& client)
    : options_(std::move(options)), store_(store), clock_(clock), client_(client) {}

LocalAgent::~LocalAgent() {
  if (supervisor_) supervisor_->Stop();
}

int LocalAgent::pid() const {
  MutexLock lock(mu_);
  return pid_;
}

Status LocalAgent::Ensure() {
  MutexLock lock(mu_);
  return EnsureLocked();
}

Status LocalAgent::EnsureLocked() {
  const fs::path state = fs::path(options_.data_dir) / "local-agent.json";
  const fs::path agent_dir = fs::path(options_.data_dir) / "local-agent";
  std::error_code ec;
  fs::create_directories(agent_dir, ec);
  if (ec) return Unavailable("cannot create " + agent_dir.string() + ": " + ec.message());

  AgentAddress address;
  int pid = 0;
  std::string fingerprint;
  if (auto recorded = ReadJsonFile(state)) {
    const json::value* port = recorded->if_contains("port");
    const json::value* token = recorded->if_contains("token");
    const json::value* p = recorded->if_contains("pid");
    const json::value* pin = recorded->if_contains("fingerprint");
    if (port && port->is_int64() && token && token->is_string() && p && p->is_int64()) {
      address = {"127.0.0.1", static_cast<uint16_t>(port->as_int64()),
                 std::string(token->as_string())};
      pid = static_cast<int>(p->as_int64());
      if (pin != nullptr && pin->is_string()) fingerprint = std::string(pin->as_string());
      if (Alive(pid) && Healthy(client_, address, fingerprint)) {
        spdlog::info("using the local agent still running on 127.0.0.1:{} (pid {})", address.port,
                     pid);
        FW_RETURN_IF_ERROR(RegisterFleet(store_, clock_, address, fingerprint));
        address_ = address;
        pid_ = pid;
        started_here_ = false;
        return Status::Ok();
      }
    }
  }
  // A live agent that does not answer is not this server's to stop; a second one would be refused.
  if (std::optional<int> holder = DataDirLock::Holder(agent_dir)) {
    return Unavailable("the local agent (pid " + std::to_string(*holder) + ") holds " +
                       agent_dir.string() + " but does not answer; see " +
                       (agent_dir / "agent.log").string());
  }

  address = {"127.0.0.1", 0, NewToken()};
  fs::path ready = agent_dir / "agent.json";
  fs::remove(ready, ec);
  FW_RETURN_IF_ERROR(Spawn(options_.binary, agent_dir, address.token, options_.dcgm,
                           LocalJobsDir(options_.data_dir)));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    if (auto written = ReadJsonFile(ready)) {
      const json::value* port = written->if_contains("port");
      const json::value* p = written->if_contains("pid");
      const json::value* pin = written->if_contains("fingerprint");
      if (port && port->is_int64() && p && p->is_int64() && pin && pin->is_string()) {
        address.port = static_cast<uint16_t>(port->as_int64());
        pid = static_cast<int>(p->as_int64());
        fingerprint = std::string(pin->as_string());
        break;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("the local agent did not start within 30 s; see " +
                         (agent_dir / "agent.log").string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string text = model::SerializeJson(json::object{{"pid", pid},
                                                       {"port", address.port},
                                                       {"token", address.token},
                                                       {"fingerprint", fingerprint}});
  address_ = address;
  pid_ = pid;
  started_here_ = true;
  // 0600 from its creation: the token is in it.
  FW_RETURN_IF_ERROR(WritePrivateFileAtomically(state, text + "\n"));
  spdlog::info("started the local agent on https://127.0.0.1:{} (pid {}, certificate {})",
               address.port, pid, fingerprint);
  return RegisterFleet(store_, clock_, address, fingerprint);
}

void LocalAgent::Supervise(std::chrono::milliseconds interval) {
  // Made and started under the lock: two callers cannot both start one, and a Stop() on another
  // thread sees it. (Its first pass waits for the lock.)
  MutexLock lock(mu_);
  if (supervisor_) return;
  up_since_ = std::chrono::steady_clock::now();
  supervisor_ =
      std::make_unique<PeriodicTask>("local agent", interval, [this] { SuperviseOnce(); });
  supervisor_->Start();
}

void LocalAgent::SuperviseOnce() {
  using std::chrono::steady_clock;
  constexpr auto kSteady = std::chrono::seconds(60);  // alive this long: the backoff starts over
  MutexLock lock(mu_);
  const auto now = steady_clock::now();
  if (pid_ > 0 && Alive(pid_)) {
    if (failures_ > 0 && now - up_since_ >= kSteady) failures_ = 0;
    return;
  }
  if (pid_ > 0) {
    spdlog::warn("the local agent (pid {}) is gone; its running jobs are lost", pid_);
    pid_ = 0;
    next_try_ = now + Backoff(failures_++);
  }
  if (now < next_try_) return;
  spdlog::info("starting the local agent again");
  Status s = EnsureLocked();
  if (s.ok()) {
    up_since_ = steady_clock::now();
    return;
  }
  const auto wait = Backoff(failures_++);
  next_try_ = steady_clock::now() + wait;
  spdlog::error("the local agent did not start: {}; trying again in {} s", s.message(),
                std::chrono::duration_cast<std::chrono::seconds>(wait).count());
}

void LocalAgent::Stop() {
  PeriodicTask* supervisor = nullptr;
  {
    MutexLock lock(mu_);
    supervisor = supervisor_.get();
  }
  // Stopped without the lock: the pass it waits for takes it. Kept until destruction, so the
  // pointer stays valid.
  if (supervisor != nullptr) supervisor->Stop();
  MutexLock lock(mu_);
  if (pid_ <= 0) return;
  if (!started_here_) {
    spdlog::info("leaving the local agent (pid {}) running: an earlier server started it", pid_);
    pid_ = 0;
    return;
  }
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (Alive(pid_) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (Alive(pid_)) kill(pid_, SIGKILL);
  std::error_code ec;
  fs::remove(fs::path(options_.data_dir) / "local-agent.json", ec);
  pid_ = 0;
}

}  // namespace fleetwatch::server
