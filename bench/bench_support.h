#pragma once

// Pieces the end-to-end benchmarks share: failing loudly, timing, printing tables, child
// processes (the simulated agents, the real server) and a sim fleet written into a store.
// Not thread-safe unless a piece says so; a benchmark's main thread uses them.

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http/async_client.h"
#include "model/entities.h"
#include "model/run_spec.h"
#include "process_cpu.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/ids.h"
#include "util/status.h"

extern char** environ;

namespace fleetwatch::bench {

namespace fs = std::filesystem;

// --- failing ---

// Thrown by Fail. A benchmark's main catches it, so that destructors run on the way out: child
// processes are stopped and temporary directories removed.
struct BenchmarkFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void Fail(const std::string& what) { throw BenchmarkFailure(what); }

template <typename T>
T Must(Result<T> result, const std::string& what) {
  if (!result.ok()) Fail(what + ": " + result.status().ToString());
  return std::move(result).value();
}

inline void Must(const Status& status, const std::string& what) {
  if (!status.ok()) Fail(what + ": " + status.ToString());
}

// A benchmark's main: runs `body` and returns its exit status, or, when it fails (Fail), says why
// on stderr as "`name`: why" after what it printed and returns 1. By then the failure has unwound
// `body`, whose destructors stopped its child processes and removed its temporary directories.
inline int RunBenchmark(const char* name, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const BenchmarkFailure& failure) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", name, failure.what());
    return 1;
  }
}

// --- timing ---

inline double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Medians of `runs` timed calls, wall and the calling thread's CPU.
struct Timing {
  double wall_s = 0;
  double cpu_s = 0;
  int runs = 0;
};

// Times `runs` calls of `body` after one untimed warm-up call. `before` runs untimed before each
// call (to invalidate a cache, say). Whatever `body` returns is destroyed after the clock stops,
// so that no measurement includes freeing its result.
template <typename Before, typename Body>
Timing Measure(int runs, Before&& before, Body&& body) {
  before();
  { auto warm_up = body(); }
  std::vector<double> wall, cpu;
  for (int r = 0; r < runs; ++r) {
    before();
    const auto wall_start = std::chrono::steady_clock::now();
    const double cpu_start = ThreadCpuSeconds();
    auto result = body();
    cpu.push_back(ThreadCpuSeconds() - cpu_start);
    wall.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count());
  }
  return {Median(wall), Median(cpu), runs};
}

// --- printing ---

// A duration in the unit that keeps it readable: "12.3 ms", "4.56 ms", "850 us", "2.41 s".
// `decimals_under_10ms`: how many decimals a duration of 1 to 10 ms gets (the collector
// benchmark prints one, "4.6 ms", as bench/README.md records its figures).
inline std::string Ms(double seconds, int decimals_under_10ms = 2) {
  char text[32];
  if (seconds >= 1) {
    std::snprintf(text, sizeof text, "%.2f s", seconds);
  } else if (seconds >= 10e-3) {
    std::snprintf(text, sizeof text, "%.1f ms", seconds * 1e3);
  } else if (seconds >= 1e-3) {
    std::snprintf(text, sizeof text, "%.*f ms", decimals_under_10ms, seconds * 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f us", seconds * 1e6);
  }
  return text;
}

inline std::string Count(double n) {
  char text[32];
  if (n >= 1e6) {
    std::snprintf(text, sizeof text, "%.2f M", n / 1e6);
  } else if (n >= 1e3) {
    std::snprintf(text, sizeof text, "%.1f k", n / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f", n);
  }
  return text;
}

// Bytes as megabytes (10^6), "22.13 MB"; small sizes keep three significant digits.
inline std::string Megabytes(double bytes) {
  char text[32];
  const double mb = bytes / 1e6;
  std::snprintf(text, sizeof text, mb >= 100 ? "%.1f MB" : mb >= 1 ? "%.2f MB" : "%.3f MB", mb);
  return text;
}

// A ratio, "37.2x".
inline std::string Times(double ratio) {
  char text[32];
  std::snprintf(text, sizeof text, ratio >= 100 ? "%.0fx" : "%.1fx", ratio);
  return text;
}

// A left-aligned first column and right-aligned others.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print() const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      for (size_t c = 0; c < row.size(); ++c) {
        if (width.size() <= c) width.push_back(0);
        width[c] = std::max(width[c], row[c].size());
      }
    }
    for (const auto& row : rows_) {
      std::string line = "  ";
      for (size_t c = 0; c < row.size(); ++c) {
        std::string pad(width[c] - row[c].size(), ' ');
        line += c == 0 ? row[c] + pad : "  " + pad + row[c];
      }
      std::printf("%s\n", line.c_str());
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// --- the environment ---

// The CPU's model name from /proc/cpuinfo, for the header of a benchmark's report.
inline std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

// The allocator this process runs with, for the report's header: jemalloc (as the project links
// its executables) or the C library's malloc (-DFLEETWATCH_JEMALLOC=OFF, or sanitizers).
inline const char* AllocatorName() {
  return dlsym(RTLD_DEFAULT, "mallctl") != nullptr ? "jemalloc" : "glibc malloc";
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("fleetwatch-bench-" + NewId())) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A child process started with `args` (args[0] the executable's path), the environment of this
// process plus `extra_env` ("NAME=value"), stdout and stderr appended to `output`. Stopped with
// SIGTERM and reaped on destruction.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> args, const std::vector<std::string>& extra_env,
               const fs::path& output) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_storage = extra_env;
    std::vector<char*> envp;
    for (std::string& e : env_storage) envp.push_back(e.data());
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const bool overridden = std::any_of(extra_env.begin(), extra_env.end(), [&](const auto& x) {
        return entry.substr(0, entry.find('=') + 1) == x.substr(0, x.find('=') + 1);
      });
      if (!overridden) envp.push_back(*e);
    }
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    const int error = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) Fail("cannot start " + args[0] + ": " + std::strerror(error));
  }
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Whether it still runs (false once it exited; it is then reaped).
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) pid_ = 0;
    return pid_ > 0;
  }

  pid_t pid() const { return pid_; }

  // SIGTERM and wait for it to exit. Idempotent.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

 private:
  pid_t pid_ = 0;
};

// GET /metrics of the server on 127.0.0.1:`port` with `headers`; Fail()s unless it answers 200.
inline http::Response FetchMetrics(http::AsyncClient& client, uint16_t port,
                                   std::vector<std::pair<std::string, std::string>> headers,
                                   std::chrono::seconds timeout, size_t max_response_bytes) {
  http::AsyncRequest request;
  request.host = "127.0.0.1";
  request.port = port;
  request.target = "/metrics";
  request.headers = std::move(headers);
  request.timeout = timeout;
  request.max_response_bytes = max_response_bytes;
  Result<http::Response> reply = std::move(client.SendAll({request}).front());
  if (!reply.ok()) Fail("GET /metrics: " + reply.status().ToString());
  if (reply->status != 200) Fail("GET /metrics answered " + std::to_string(reply->status));
  return std::move(reply).value();
}

// The port of a `fleetwatch server --port 0` child whose output goes to `log`, once its log says
// it listens; fails when it exits first or takes over 60 s.
inline uint16_t WaitForServerPort(ChildProcess& server, const fs::path& log) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    if (std::regex_search(text, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"))) {
      return static_cast<uint16_t>(std::stoi(m[1]));
    }
    if (!server.Running()) Fail("the server exited:\n" + text);
    if (std::chrono::steady_clock::now() > deadline) Fail("the server did not listen in 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// fleetwatch-sim-agents (at `executable`) as a child process: `hosts` simulated hosts, each
// running `jobs_per_host` preloaded jobs of `gpus_per_job` GPUs (bench/README.md).
class SimAgents {
 public:
  // `dcgm`: polls that ask for it carry DCGM text (--dcgm).
  SimAgents(const std::string& executable, int hosts, int jobs_per_host, int gpus_per_job,
            const std::string& token, const fs::path& dir, bool dcgm = false)
      : process_(Args(executable, hosts, jobs_per_host, gpus_per_job, token, dir, dcgm), {},
                 dir / "sim-agents.log") {
    const fs::path ports_file = dir / "ports";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(ports_file)) {
      if (!process_.Running()) {  // say why: its log goes with `dir`
        std::ifstream log(dir / "sim-agents.log");
        const std::string said{std::istreambuf_iterator<char>(log), {}};
        Fail("fleetwatch-sim-agents exited before listening" + (said.empty() ? "" : ":\n" + said));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        Fail("fleetwatch-sim-agents did not listen in 60 s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream in(ports_file);
    int port = 0;
    while (in >> port) ports_.push_back(static_cast<uint16_t>(port));
    if (ports_.size() != static_cast<size_t>(hosts)) Fail("short ports file");
  }

  const std::vector<uint16_t>& ports() const { return ports_; }

 private:
  static std::vector<std::string> Args(const std::string& executable, int hosts, int jobs_per_host,
                                       int gpus_per_job, const std::string& token,
                                       const fs::path& dir, bool dcgm) {
    std::vector<std::string> args{executable,
                                  "--hosts",
                                  std::to_string(hosts),
                                  "--jobs-per-host",
                                  std::to_string(jobs_per_host),
                                  "--gpus-per-job",
                                  std::to_string(gpus_per_job),
                                  "--preload-jobs",
                                  std::to_string(jobs_per_host),
                                  "--token",
                                  token,
                                  "--ports-file",
                                  (dir / "ports").string()};
    if (dcgm) args.emplace_back("--dcgm");
    return args;
  }

  ChildProcess process_;
  std::vector<uint16_t> ports_;
};

struct SimFleet {
  std::vector<model::Instance> instances;
  std::vector<std::string> job_ids;
};

// Writes into `store` a project with one fleet whose instance i is the sim host on `ports[i]`
// (status pending: the first tick fetches its inventory), and `jobs_per_host` running one-job task
// runs on each, named and placed exactly as fleetwatch-sim-agents preloads them.
inline SimFleet CreateSimFleet(store::Store& store, const std::vector<uint16_t>& ports,
                               int jobs_per_host, int gpus_per_job, const std::string& token,
                               TimeMicros now) {
  model::User user{NewId(), "bench", model::GlobalRole::kUser, now};
  Must(store.CreateUser(user, Sha256Hex(NewToken())), "create user");
  model::Project project{NewId(), "bench", user.id, now};
  Must(store.CreateProject(project), "create project");

  model::Fleet fleet;
  fleet.id = NewId();
  fleet.project_id = project.id;
  fleet.project_name = project.name;
  fleet.name = "sim";
  fleet.configuration_json = R"({"type":"fleet","name":"sim"})";
  fleet.created_at = now;
  SimFleet out;
  for (size_t i = 0; i < ports.size(); ++i) {
    model::Instance instance;
    instance.id = NewId();
    instance.project_id = project.id;
    instance.fleet_id = fleet.id;
    instance.name = "sim-" + std::to_string(i);
    instance.instance_num = static_cast<int>(i);
    instance.status = model::InstanceStatus::kPending;
    instance.backend = "remote";
    instance.hostname = "127.0.0.1";
    instance.agent_port = ports[i];
    instance.agent_token = token;
    instance.created_at = now;
    out.instances.push_back(std::move(instance));
  }
  Must(store.CreateFleet(fleet, out.instances), "create fleet");

  model::RunConfiguration config;
  config.type = model::RunType::kTask;
  config.commands = {"python train.py"};
  config.resources.cpus = 8;
  config.resources.gpu.count = gpus_per_job;
  const std::string config_json = model::ToJson(config);
  for (const model::Instance& instance : out.instances) {
    for (int k = 0; k < jobs_per_host; ++k) {
      model::Run run;
      run.id = NewId();
      run.project_id = project.id;
      run.user_id = user.id;
      run.run_name = "train-" + std::to_string(instance.instance_num) + "-" + std::to_string(k);
      run.type = model::RunType::kTask;
      run.status = model::RunStatus::kRunning;
      run.submitted_at = now;
      run.configuration_json = config_json;
      model::Job job;
      job.id = instance.name + "-job-" + std::to_string(k);  // what the sim host preloads
      job.run_id = run.id;
      job.job_name = run.run_name + "-0-0";
      job.status = model::JobStatus::kRunning;
      job.instance_id = instance.id;
      job.instance_name = instance.name;
      for (int g = 0; g < gpus_per_job; ++g) job.gpu_indices.push_back(k * gpus_per_job + g);
      job.submitted_at = now;
      job.started_at = now;
      run.jobs.push_back(job);
      Must(store.CreateRun(run), "create run");
      Must(store.UpdateRun(run), "start run");  // CreateRun does not write started_at
      out.job_ids.push_back(job.id);
    }
  }
  return out;
}

}  // namespace fleetwatch::bench
