// fleetwatch-collector-bench: what the job-metrics collector costs, end to end, in one run.
//
//  a. CPU and wall time per FleetController::Tick against 1,000 simulated agents
//     (fleetwatch-sim-agents, a child process, so its CPU is not counted) x 8 running jobs, with
//     a metrics point per job on every tick and with none, on a real SQLite store.
//  b. SQLite ingest rate of AddJobMetricsPoints: batches of one tick (8,000 points) and, for
//     comparison, one point per call.
//  c. Where a metrics tick goes: each part of it alone (HTTP round, parsing, reconcile, store
//     reads and writes, ingest) next to the floor, a memcpy of the same reply bytes.
//
// CPU is getrusage(RUSAGE_SELF) user+sys of this process (all its threads: the AsyncClient's I/O
// threads included); wall is steady_clock. See bench/README.md for what each figure means.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http/async_client.h"
#include "model/entities.h"
#include "model/run_spec.h"
#include "server/agent_protocol.h"
#include "server/fleet_controller.h"
#include "server/reconciler.h"
#include "store/sqlite_store.h"
#include "util/clock.h"
#include "util/ids.h"

extern char** environ;

namespace fleetwatch::bench {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

const std::vector<model::RunStatus> kUnfinished = {
    model::RunStatus::kPending, model::RunStatus::kSubmitted, model::RunStatus::kProvisioning,
    model::RunStatus::kRunning, model::RunStatus::kTerminating};

// --- measuring ---

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

struct Cost {
  double cpu_s = 0;
  double wall_s = 0;
};

// CPU and wall time from construction to Elapsed().
class Stopwatch {
 public:
  Stopwatch() : cpu_(ProcessCpuSeconds()), wall_(steady_clock::now()) {}
  Cost Elapsed() const {
    return {ProcessCpuSeconds() - cpu_,
            std::chrono::duration<double>(steady_clock::now() - wall_).count()};
  }

 private:
  double cpu_;
  steady_clock::time_point wall_;
};

struct Summary {
  double mean = 0, p50 = 0, max = 0;
};

Summary Summarize(std::vector<double> values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.p50 = values[values.size() / 2];
  s.max = values.back();
  return s;
}

// Runs `body` `rounds` times; the mean cost of one round.
template <typename F>
Cost MeanCost(int rounds, F&& body) {
  Stopwatch watch;
  for (int r = 0; r < rounds; ++r) body();
  Cost c = watch.Elapsed();
  return {c.cpu_s / rounds, c.wall_s / rounds};
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "fleetwatch-collector-bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Must(Result<T> result, const std::string& what) {
  if (!result.ok()) Fail(what + ": " + result.status().ToString());
  return std::move(result).value();
}

void Must(const Status& status, const std::string& what) {
  if (!status.ok()) Fail(what + ": " + status.ToString());
}

// --- the environment ---

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("fleetwatch-bench-" + NewId())) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string FileSystemType(const fs::path& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) != 0) return "?";
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlayfs";
    default: {
      char text[32];
      std::snprintf(text, sizeof text, "fs 0x%lx", static_cast<unsigned long>(st.f_type));
      return text;
    }
  }
}

std::string CpuModel() {
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

// fleetwatch-sim-agents as a child process; stopped (SIGTERM) and reaped on destruction.
class SimAgents {
 public:
  SimAgents(int hosts, int jobs_per_host, int gpus_per_job, const std::string& token,
            const fs::path& ports_file) {
    std::vector<std::string> args = {FLEETWATCH_SIM_AGENTS,
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
                                     ports_file.string()};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      Fail(std::string("cannot start ") + FLEETWATCH_SIM_AGENTS + ": " + std::strerror(errno));
    }
    const auto deadline = steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(ports_file)) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        Fail("fleetwatch-sim-agents exited before listening");
      }
      if (steady_clock::now() > deadline) Fail("fleetwatch-sim-agents did not listen in 60 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream in(ports_file);
    int port = 0;
    while (in >> port) ports_.push_back(static_cast<uint16_t>(port));
    if (ports_.size() != static_cast<size_t>(hosts)) Fail("short ports file");
  }
  ~SimAgents() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  SimAgents(const SimAgents&) = delete;
  SimAgents& operator=(const SimAgents&) = delete;

  const std::vector<uint16_t>& ports() const { return ports_; }

 private:
  pid_t pid_ = 0;
  std::vector<uint16_t> ports_;
};

struct Fleet {
  std::vector<model::Instance> instances;
  std::vector<std::string> job_ids;
};

// A project with one fleet whose instance i is sim host i, and `jobs_per_host` one-job task runs
// running on each, named and placed exactly as the sim agents preload them.
Fleet CreateFleet(store::Store& store, const std::vector<uint16_t>& ports, int jobs_per_host,
                  int gpus_per_job, const std::string& token, TimeMicros now) {
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
  Fleet out;
  for (size_t i = 0; i < ports.size(); ++i) {
    model::Instance instance;
    instance.id = NewId();
    instance.project_id = project.id;
    instance.fleet_id = fleet.id;
    instance.name = "sim-" + std::to_string(i);
    instance.instance_num = static_cast<int>(i);
    instance.status = model::InstanceStatus::kPending;  // the first tick fetches the inventory
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
  for (size_t i = 0; i < ports.size(); ++i) {
    const model::Instance& instance = out.instances[i];
    for (int k = 0; k < jobs_per_host; ++k) {
      model::Run run;
      run.id = NewId();
      run.project_id = project.id;
      run.user_id = user.id;
      run.run_name = "train-" + std::to_string(i) + "-" + std::to_string(k);
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

// --- printing ---

// A duration in the unit that keeps it readable: "12.3 ms", "850 us", "2.41 s".
std::string Ms(double seconds) {
  char text[32];
  if (seconds >= 1) {
    std::snprintf(text, sizeof text, "%.2f s", seconds);
  } else if (seconds >= 1e-3) {
    std::snprintf(text, sizeof text, "%.1f ms", seconds * 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f us", seconds * 1e6);
  }
  return text;
}

std::string Us(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f us", seconds * 1e6);
  return text;
}

std::string Count(double n) {
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

std::string Percent(double part, double whole) {
  char text[32];
  const double percent = whole > 0 ? 100 * part / whole : 0.0;
  std::snprintf(text, sizeof text,
                percent < 1    ? "%.2f %%"
                : percent < 10 ? "%.1f %%"
                               : "%.0f %%",
                percent);
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

// --- the benchmarks ---

struct TickFigures {
  Summary cpu, wall;
  double points_per_tick = 0;
  double points_per_second = 0;
};

TickFigures MeasureTicks(server::FleetController& controller, int warmup, int ticks) {
  for (int t = 0; t < warmup; ++t) Must(controller.Tick(), "tick");
  std::vector<double> cpu, wall;
  const uint64_t points_before = controller.points_stored();
  Stopwatch all;
  for (int t = 0; t < ticks; ++t) {
    Stopwatch watch;
    Must(controller.Tick(), "tick");
    Cost c = watch.Elapsed();
    cpu.push_back(c.cpu_s);
    wall.push_back(c.wall_s);
  }
  const double seconds = all.Elapsed().wall_s;
  TickFigures f;
  f.cpu = Summarize(cpu);
  f.wall = Summarize(wall);
  const auto points = static_cast<double>(controller.points_stored() - points_before);
  f.points_per_tick = points / ticks;
  f.points_per_second = seconds > 0 ? points / seconds : 0;
  return f;
}

std::vector<model::JobMetricsPoint> PointBatch(const std::vector<std::string>& job_ids,
                                               TimeMicros at) {
  std::vector<model::JobMetricsPoint> batch;
  batch.reserve(job_ids.size());
  int64_t n = 0;
  for (const std::string& id : job_ids) {
    model::JobMetricsPoint p;
    p.job_id = id;
    p.timestamp_micro = at;
    p.cpu_usage_micro = 3'600'000'000 + n * 1000;
    p.memory_usage_bytes = (int64_t{20} << 30) + n;
    p.memory_working_set_bytes = (int64_t{18} << 30) + n;
    p.gpus_memory_usage_bytes = {(int64_t{60} << 30) + n};
    p.gpus_util_percent = {50 + n % 50};
    batch.push_back(std::move(p));
    ++n;
  }
  return batch;
}

int Main(int argc, char** argv) {
  CLI::App app{"Measures the job-metrics collector against simulated agents."};
  int hosts = 1000;
  int jobs_per_host = 8;
  int gpus_per_job = 1;
  int ticks = 20;
  int batches = 50;
  int single_points = 2000;
  app.add_option("--hosts", hosts, "Simulated hosts")->check(CLI::Range(1, 20000));
  app.add_option("--jobs-per-host", jobs_per_host, "Running jobs per host")
      ->check(CLI::Range(1, 8));
  app.add_option("--ticks", ticks, "Measured ticks per mode")->check(CLI::Range(1, 10000));
  app.add_option("--batches", batches, "Ingest batches of one tick's points")
      ->check(CLI::Range(1, 10000));
  app.add_option("--single-points", single_points, "Ingest calls of one point each")
      ->check(CLI::Range(1, 1'000'000));
  CLI11_PARSE(app, argc, argv);
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  spdlog::set_level(spdlog::level::warn);  // 1,000 "instance is up" lines are not figures
  RaiseFileLimit();
  TempDir dir;
  const std::string token = NewToken();
  const TimeMicros now = SystemClock::Get().Now();

  std::time_t today = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&today));
  std::printf("fleetwatch collector benchmark, %s\n", date);
  std::printf("  command: %s\n", command_line.c_str());
  std::printf("  machine: %u CPUs, %s\n", std::thread::hardware_concurrency(), CpuModel().c_str());
  std::printf("  store:   SQLite in %s (%s)\n", dir.path().c_str(),
              FileSystemType(dir.path()).c_str());
  std::fflush(stdout);

  SimAgents sim(hosts, jobs_per_host, gpus_per_job, token, dir.path() / "ports");
  std::unique_ptr<store::Store> store =
      Must(store::OpenSqliteStore((dir.path() / "fleetwatch.db").string()), "open store");
  Stopwatch setup;
  Fleet fleet = CreateFleet(*store, sim.ports(), jobs_per_host, gpus_per_job, token, now);
  std::printf("  setup:   %d sim hosts (one process), %zu running jobs stored in %.1f s\n", hosts,
              fleet.job_ids.size(), setup.Elapsed().wall_s);
  std::fflush(stdout);

  const Clock& clock = SystemClock::Get();
  std::mutex runs_mutex;
  http::AsyncClient client(2);  // as the server builds it (api/server_app.cc)

  // a. The tick, with and without metrics.
  server::FleetControllerOptions with_metrics;
  with_metrics.metrics_interval = std::chrono::milliseconds(0);
  with_metrics.min_point_spacing = 0;
  with_metrics.log_dir = (dir.path() / "logs").string();
  server::FleetController metrics_controller(*store, clock, runs_mutex, client, with_metrics);
  TickFigures on = MeasureTicks(metrics_controller, 2, ticks);
  const uint64_t bad_on = metrics_controller.bad_replies();

  server::FleetControllerOptions without_metrics = with_metrics;
  without_metrics.metrics_interval = std::chrono::hours(24);  // after its first tick
  server::FleetController plain_controller(*store, clock, runs_mutex, client, without_metrics);
  TickFigures off = MeasureTicks(plain_controller, 1, ticks);
  const uint64_t bad_off = plain_controller.bad_replies();

  size_t running = 0;
  for (const model::Run& run : Must(store->ListRunsWithStatus(kUnfinished), "list runs")) {
    for (const model::Job& job : run.jobs) running += job.status == model::JobStatus::kRunning;
  }

  std::printf("\na. Collector tick: %d hosts x %d jobs, %d ticks per mode back to back\n", hosts,
              jobs_per_host, ticks);
  std::printf("   (CPU = this process, user+sys, all threads; the sim agents are not counted)\n");
  Table ticks_table({"mode", "CPU mean", "CPU p50", "CPU max", "wall mean", "wall p50", "wall max",
                     "points/tick"});
  for (const auto& [name, f] :
       {std::pair<const char*, const TickFigures&>{"metrics every tick", on},
        {"metrics off", off}}) {
    ticks_table.Add({name, Ms(f.cpu.mean), Ms(f.cpu.p50), Ms(f.cpu.max), Ms(f.wall.mean),
                     Ms(f.wall.p50), Ms(f.wall.max), Count(f.points_per_tick)});
  }
  ticks_table.Print();
  std::printf("  points stored per second (metrics every tick): %s points/s\n",
              Count(on.points_per_second).c_str());
  const double default_cpu_per_s = (9 * off.cpu.mean + on.cpu.mean) / 10;
  std::printf(
      "  at the defaults (poll every 1 s, metrics every 10 s): %s CPU per second = %s of one "
      "core\n",
      Ms(default_cpu_per_s).c_str(), Percent(default_cpu_per_s, 1.0).c_str());
  const double metrics_share = (on.cpu.mean - off.cpu.mean) / 10;
  std::printf(
      "  of which the metrics (their tick minus a plain one, every 10 s): %s CPU per second "
      "= %s of one core\n",
      Ms(metrics_share).c_str(), Percent(metrics_share, 1.0).c_str());
  std::printf("  check: %zu of %zu jobs still running, %llu bad poll replies\n", running,
              fleet.job_ids.size(), static_cast<unsigned long long>(bad_on + bad_off));
  std::fflush(stdout);

  // c (first, while the table is the size that the ticks saw). Each part of a metrics tick alone.
  std::vector<http::AsyncRequest> requests;
  for (const model::Instance& instance : fleet.instances) {
    http::AsyncRequest r;
    r.host = instance.hostname;
    r.port = static_cast<uint16_t>(instance.agent_port);
    r.target = "/api/poll?metrics=1";
    r.headers = {{"Authorization", "Bearer " + instance.agent_token}};
    r.timeout = with_metrics.agent_timeout;
    r.max_response_bytes = with_metrics.max_poll_bytes;
    requests.push_back(std::move(r));
  }
  std::vector<std::string> bodies;
  const Cost io = MeanCost(3, [&] {
    bodies.clear();
    for (Result<http::Response>& reply : client.SendAll(requests)) {
      if (!reply.ok() || reply->status != 200) Fail("poll failed during the breakdown");
      bodies.push_back(std::move(reply->body));
    }
  });
  size_t reply_bytes = 0;
  for (const std::string& b : bodies) reply_bytes += b.size();

  std::string copy(reply_bytes, '\0');
  const Cost memcpy_floor = MeanCost(200, [&] {
    char* to = copy.data();
    for (const std::string& b : bodies) {
      std::memcpy(to, b.data(), b.size());
      to += b.size();
    }
    asm volatile("" : : "r"(copy.data()) : "memory");  // keep the copies
  });

  std::map<std::string, server::InstanceObservation> observations;
  const Cost parse = MeanCost(5, [&] {
    observations.clear();
    for (size_t i = 0; i < bodies.size(); ++i) {
      server::InstanceObservation& obs = observations[fleet.instances[i].id];
      obs.poll = Must(server::ParseAgentPoll(bodies[i]), "parse poll");
      obs.reached = true;
    }
  });

  server::ReconcileInput input;
  const Cost reads = MeanCost(5, [&] {
    input.instances = Must(store->ListInstances(""), "list instances");
    input.instances = Must(store->ListInstances(""), "list instances");
    input.runs = Must(store->ListRunsWithStatus(kUnfinished), "list runs");
  });
  input.now = clock.Now();
  input.observations = observations;
  size_t changed_instances = 0;
  const Cost reconcile = MeanCost(5, [&] {
    server::ReconcileOutput out = server::Reconcile(input, with_metrics.reconcile);
    changed_instances = out.instances.size();
  });
  std::vector<model::Instance> touched = input.instances;
  const Cost writes = MeanCost(3, [&] {
    const TimeMicros seen = clock.Now();
    for (model::Instance& instance : touched) {
      instance.last_seen_at = seen;
      Must(store->UpdateInstance(instance), "update instance");
    }
  });

  // b. Ingest. Timestamps far from the ticks' own, so no point collides with theirs.
  std::vector<double> batch_wall;
  Stopwatch ingest_watch;
  for (int b = 0; b < batches; ++b) {
    auto batch = PointBatch(fleet.job_ids, 1'000'000'000'000'000 + int64_t{b} * 1'000'000);
    Stopwatch one;
    Must(store->AddJobMetricsPoints(batch), "ingest batch");
    batch_wall.push_back(one.Elapsed().wall_s);
  }
  const Cost batched = ingest_watch.Elapsed();  // includes building the batches (small)
  const double batched_points = static_cast<double>(batches) * fleet.job_ids.size();
  const double batch_wall_total = std::accumulate(batch_wall.begin(), batch_wall.end(), 0.0);
  std::vector<std::vector<model::JobMetricsPoint>> singles;
  for (int i = 0; i < single_points; ++i) {
    model::JobMetricsPoint p;
    p.job_id = fleet.job_ids[static_cast<size_t>(i) % fleet.job_ids.size()];
    p.timestamp_micro = 900'000'000'000'000 + i;
    p.cpu_usage_micro = i;
    p.gpus_memory_usage_bytes = {1 << 30};
    p.gpus_util_percent = {50};
    singles.push_back({std::move(p)});
  }
  Stopwatch single_watch;
  for (const auto& one : singles) Must(store->AddJobMetricsPoints(one), "ingest one point");
  const Cost single = single_watch.Elapsed();

  std::printf("\nb. SQLite ingest: AddJobMetricsPoints into the benchmark's store file\n");
  Table ingest_table(
      {"points per call", "calls", "points", "wall", "points/s", "wall/call", "CPU/point"});
  ingest_table.Add({std::to_string(fleet.job_ids.size()), std::to_string(batches),
                    Count(batched_points), Ms(batch_wall_total),
                    Count(batched_points / batch_wall_total), Ms(batch_wall_total / batches),
                    Us(batched.cpu_s / batched_points)});
  ingest_table.Add({"1", std::to_string(single_points), Count(single_points), Ms(single.wall_s),
                    Count(single_points / single.wall_s), Us(single.wall_s / single_points),
                    Us(single.cpu_s / single_points)});
  ingest_table.Print();
  const Summary batch_summary = Summarize(batch_wall);
  std::printf("  one %zu-point batch: p50 %s, max %s wall\n", fleet.job_ids.size(),
              Ms(batch_summary.p50).c_str(), Ms(batch_summary.max).c_str());

  const double ingest_cpu = batched.cpu_s / batches;
  const double ingest_wall = batch_wall_total / batches;
  std::printf(
      "\nc. Where a metrics tick goes: each part alone, per tick (%d hosts, %s of replies)\n",
      hosts, (Count(static_cast<double>(reply_bytes)) + "B").c_str());
  Table parts({"part", "CPU", "wall", "share of tick CPU"});
  parts.Add({"floor: memcpy of the reply bytes", Ms(memcpy_floor.cpu_s), Ms(memcpy_floor.wall_s),
             Percent(memcpy_floor.cpu_s, on.cpu.mean)});
  parts.Add({"HTTP: " + std::to_string(hosts) + " polls (AsyncClient, 2 threads)", Ms(io.cpu_s),
             Ms(io.wall_s), Percent(io.cpu_s, on.cpu.mean)});
  parts.Add({"parse: ParseAgentPoll x " + std::to_string(hosts), Ms(parse.cpu_s), Ms(parse.wall_s),
             Percent(parse.cpu_s, on.cpu.mean)});
  parts.Add({"store reads: ListInstances x2 + ListRunsWithStatus", Ms(reads.cpu_s),
             Ms(reads.wall_s), Percent(reads.cpu_s, on.cpu.mean)});
  parts.Add({"Reconcile (pure)", Ms(reconcile.cpu_s), Ms(reconcile.wall_s),
             Percent(reconcile.cpu_s, on.cpu.mean)});
  parts.Add({"store writes: UpdateInstance x " + std::to_string(touched.size()), Ms(writes.cpu_s),
             Ms(writes.wall_s), Percent(writes.cpu_s, on.cpu.mean)});
  parts.Add({"store ingest: AddJobMetricsPoints x " + std::to_string(fleet.job_ids.size()),
             Ms(ingest_cpu), Ms(ingest_wall), Percent(ingest_cpu, on.cpu.mean)});
  const double sum_cpu =
      io.cpu_s + parse.cpu_s + reads.cpu_s + reconcile.cpu_s + writes.cpu_s + ingest_cpu;
  const double sum_wall =
      io.wall_s + parse.wall_s + reads.wall_s + reconcile.wall_s + writes.wall_s + ingest_wall;
  parts.Add({"sum of the parts", Ms(sum_cpu), Ms(sum_wall), Percent(sum_cpu, on.cpu.mean)});
  parts.Add({"measured metrics tick (mean, from a.)", Ms(on.cpu.mean), Ms(on.wall.mean), "100 %"});
  parts.Print();
  std::printf("  (Reconcile changed %zu instances per pass: last_seen_at, hence the writes)\n",
              changed_instances);
  return 0;
}

}  // namespace
}  // namespace fleetwatch::bench

int main(int argc, char** argv) { return fleetwatch::bench::Main(argc, argv); }
