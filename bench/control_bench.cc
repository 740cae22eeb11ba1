// fleetwatch-control-bench: what the server's whole control loop costs per tick, in one run.
//
// Against 1,000 simulated agents (fleetwatch-sim-agents, a child process, so its CPU is not
// counted) x 8 running jobs, each host with a full DCGM text (49 fields x 8 GPUs), on a real
// SQLite store: the loop the server runs (poll, reconcile, usage accounting, exposition update)
// for --seconds at the server's defaults (a poll every second, metrics every 10 s, /metrics on),
// with the real clock. Prints CPU per tick (the whole process: the AsyncClient's I/O threads
// included) and its split by stage, the process's RSS, and the real tick period against the
// configured one. --no-dcgm runs the same without DCGM texts: the difference is what they cost.
//
// The same file builds against a tree without server/control_loop.h, where the server ran the
// stages from a periodic task that waited `poll interval` after each pass; there it measures that
// loop the same way, so that one command gives the figures before and after.

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "expose/snapshot.h"
#include "http/async_client.h"
#include "process_cpu.h"
#include "server/energy_accountant.h"
#include "server/energy_families.h"
#include "server/exposition_updater.h"
#include "server/fleet_controller.h"
#include "server/usage.h"
#include "store/sqlite_store.h"
#include "util/clock.h"

#if __has_include("server/control_loop.h")
#include "server/control_loop.h"
#define FLEETWATCH_CONTROL_LOOP 1
#else
#define FLEETWATCH_CONTROL_LOOP 0
#endif

namespace fleetwatch::bench {
namespace {

// VmRSS or VmHWM of this process, bytes.
double ProcStatusBytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) * 1024;
  }
  return 0;
}

// A stage's error, as the server would log it.
[[maybe_unused]] void Report(const Status& s) {
  if (!s.ok()) std::fprintf(stderr, "stage failed: %s\n", s.ToString().c_str());
}

double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU of the loop's thread per stage, seconds in all.
struct Split {
  std::mutex mu;
  double control = 0, usage = 0, exposition = 0, retention = 0, energy = 0;
  std::vector<double> starts;  // tick starts, steady seconds
  std::vector<double> wall;    // tick lengths, seconds
  // At each tick start: the process's CPU and the stages' totals so far.
  std::vector<double> process_cpu;
  std::vector<std::array<double, 5>> stages;
  // The exposition update's CPU per tick, split by whether the tick brought DCGM texts or
  // metrics points (the hosts' metrics polls) or neither.
  std::vector<double> expose_with_data, expose_plain;
  size_t dcgm_texts = 0;  // the DCGM texts of the ticks in expose_with_data

  void Start() {
    std::lock_guard lock(mu);
    starts.push_back(SteadySeconds());
    process_cpu.push_back(ProcessCpuSeconds());
    stages.push_back({control, usage, exposition, retention, energy});
  }

  template <typename F>
  auto Timed(double& into, F&& f) {
    const double start = ThreadCpuSeconds();
    auto result = f();
    std::lock_guard lock(mu);
    into += ThreadCpuSeconds() - start;
    return result;
  }
};

#if FLEETWATCH_CONTROL_LOOP
// ServerStages, timed: each report stage counts as energy ("energy and job summaries") or as
// exposition (the rest: the exposition update and the energy families; the bench adds no GPU
// ledger or sharing).
class TimedStages final : public server::ControlStages {
 public:
  TimedStages(server::ServerStages& inner, Split& split) : inner_(inner), split_(split) {
    for (const server::ReportStage& stage : inner_.report_stages()) {
      const bool energy = stage.name == "energy and job summaries";
      const bool last = &stage == &inner_.report_stages().back();
      timed_.push_back({stage.name, [this, &stage, energy, last](server::TickReport& report) {
                          return energy ? split_.Timed(split_.energy,
                                                       [&] { return stage.run(report); })
                                        : Expose(stage, report, last);
                        }});
    }
  }
  Result<server::TickReport> Control() override {
    split_.Start();
    exposition_at_start_ = split_.exposition;
    return split_.Timed(split_.control, [&] { return inner_.Control(); });
  }
  Status AccountUsage() override {
    return split_.Timed(split_.usage, [&] { return inner_.AccountUsage(); });
  }
  const std::vector<server::ReportStage>& report_stages() const override { return timed_; }
  Status Retain(TimeMicros now) override {
    return split_.Timed(split_.retention, [&] { return inner_.Retain(now); });
  }

 private:
  // The exposition's share of the tick; after the last stage, the tick's wall time and its
  // exposition stages' CPU, all of them.
  Status Expose(const server::ReportStage& stage, server::TickReport& report, bool last) {
    const double before = exposition_at_start_;
    Status s = split_.Timed(split_.exposition, [&] { return stage.run(report); });
    if (!last) return s;
    std::lock_guard lock(split_.mu);
    split_.wall.push_back(SteadySeconds() - split_.starts.back());
    if (split_.wall.size() > 2) {
      const bool data = !report.dcgm.empty() || report.points_stored > 0;
      (data ? split_.expose_with_data : split_.expose_plain).push_back(split_.exposition - before);
      split_.dcgm_texts += report.dcgm.size();
    }
    return s;
  }

  server::ServerStages& inner_;
  Split& split_;
  std::vector<server::ReportStage> timed_;
  double exposition_at_start_ = 0;  // split_.exposition when the tick started
};
#endif

int Main(int argc, char** argv) {
  CLI::App app{"Measures the server's control loop against simulated agents."};
  int hosts = 1000;
  int jobs_per_host = 8;
  int seconds = 40;
  int poll_ms = 1000;
  int metrics_s = 10;
  std::string sim_agents = FLEETWATCH_SIM_AGENTS;
  bool no_dcgm = false;
  app.add_option("--hosts", hosts, "Simulated hosts")->check(CLI::Range(1, 20000));
  app.add_option("--jobs-per-host", jobs_per_host, "Running jobs per host")
      ->check(CLI::Range(1, 8));
  app.add_option("--seconds", seconds, "How long the loop runs")->check(CLI::Range(5, 3600));
  app.add_option("--poll-ms", poll_ms, "Poll interval")->check(CLI::Range(100, 60'000));
  app.add_option("--metrics-seconds", metrics_s, "Metrics interval")->check(CLI::Range(1, 3600));
  app.add_option("--sim-agents", sim_agents, "The fleetwatch-sim-agents to run");
  app.add_flag("--no-dcgm", no_dcgm,
               "Metrics polls without DCGM text (what a metrics round costs without it)");
  CLI11_PARSE(app, argc, argv);
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  spdlog::set_level(spdlog::level::err);  // 1,000 "instance is up" lines are not figures
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  TempDir dir;
  const std::string token = NewToken();
  const Clock& clock = SystemClock::Get();
  std::printf("fleetwatch control loop benchmark (%s)\n",
              FLEETWATCH_CONTROL_LOOP ? "ControlLoop" : "periodic task, as before ControlLoop");
  std::printf("  command: %s\n", command_line.c_str());
  std::printf("  machine: %u CPUs, %s; allocator: %s\n", std::thread::hardware_concurrency(),
              CpuModel().c_str(), AllocatorName());
  std::fflush(stdout);

  SimAgents sim(sim_agents, hosts, jobs_per_host, 1, token, dir.path(), /*dcgm=*/!no_dcgm);
  std::unique_ptr<store::Store> store =
      Must(store::OpenSqliteStore((dir.path() / "fleetwatch.db").string()), "open store");
  SimFleet fleet = CreateSimFleet(*store, sim.ports(), jobs_per_host, 1, token, clock.Now());
  std::printf("  setup:   %d sim hosts %s DCGM text, %zu running jobs\n", hosts,
              no_dcgm ? "without" : "with", fleet.job_ids.size());
  std::fflush(stdout);

  // Wired as api/server_app.cc wires the server.
  Mutex runs_mutex;
  http::AsyncClient client(2);
  const auto poll = std::chrono::milliseconds(poll_ms);
  const auto metrics = std::chrono::seconds(metrics_s);
  server::FleetControllerOptions options;
  options.metrics_interval = metrics;
  options.min_point_spacing =
      std::chrono::duration_cast<std::chrono::microseconds>(metrics).count() * 9 / 10;
  options.collect_dcgm = !no_dcgm;
  options.log_dir = (dir.path() / "logs").string();
#if FLEETWATCH_CONTROL_LOOP
  options.tick_budget = std::max(poll / 2, std::chrono::milliseconds(50));
#else
  options.tick_budget = std::max(poll, std::chrono::milliseconds(200));
#endif
  server::FleetController controller(*store, clock, runs_mutex, client, options);
  expose::ExpositionSnapshot snapshot;
  server::ExpositionOptions exposition_options;
  exposition_options.stale_after =
      3 * std::chrono::duration_cast<std::chrono::microseconds>(metrics).count();
  expose::ExpositionSnapshot replica_snapshot;  // GET /metrics/replica, as the server has it
  server::ExpositionUpdater updater(*store, clock, snapshot, &replica_snapshot, exposition_options);
  server::UsageAccountant usage(*store, clock);
  server::EnergyAccountant energy(
      *store, clock,
      server::EnergyOptions{
          .default_carbon_intensity = 400,
          .store_interval =
              std::chrono::duration_cast<std::chrono::microseconds>(metrics).count()});
  // As the server has them: the energy families rendered from the store after the exposition.
  server::StoredEnergyFamilies energy_families(
      *store, snapshot, std::chrono::duration_cast<std::chrono::microseconds>(metrics).count());
  Split split;

  const double cpu_before = ProcessCpuSeconds();
  const double wall_before = SteadySeconds();
#if FLEETWATCH_CONTROL_LOOP
  server::ServerStages stages(controller, usage, *store, std::chrono::hours(1),
                              std::chrono::hours(24 * 7));
  stages.AddReportStage("energy and job summaries",
                        [&energy](server::TickReport& r) { return energy.Update(r); });
  stages.AddReportStage("metrics exposition",
                        [&updater](server::TickReport& r) { return updater.Update(r); });
  stages.AddReportStage("energy families", [&energy_families](server::TickReport& r) {
    return energy_families.Refresh(r, /*moved=*/false);
  });
  TimedStages timed(stages, split);
  server::ControlLoop loop(
      timed, clock,
      server::ControlLoopOptions{.tick_interval = poll,
                                 .usage_interval = metrics,
                                 .retention_interval = std::chrono::milliseconds(300'000)});
  loop.Start();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  loop.Stop();
  const uint64_t skipped = loop.stats().skipped_beats;
#else
  // The server's loop before ControlLoop: a periodic task that ran the stages, then waited the
  // poll interval.
  std::atomic<bool> stop{false};
  std::thread loop([&] {
    TimeMicros next_usage = 0;
    while (!stop) {
      split.Start();
      Report(split.Timed(split.control, [&] { return controller.Tick(); }));
      if (clock.Now() >= next_usage) {
        next_usage =
            clock.Now() + std::chrono::duration_cast<std::chrono::microseconds>(metrics).count();
        Report(split.Timed(split.usage, [&] { return usage.Account(); }));
      }
      Report(split.Timed(split.exposition, [&] {
        return updater.Update(
            {controller.bad_replies(), controller.TakeDcgmReports(), controller.TakeRunEvents()});
      }));
      {
        std::lock_guard lock(split.mu);
        split.wall.push_back(SteadySeconds() - split.starts.back());
      }
      const auto until = std::chrono::steady_clock::now() + poll;
      while (!stop && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  loop.join();
  const uint64_t skipped = 0;
#endif
  const double cpu_all = ProcessCpuSeconds() - cpu_before;
  const double wall = SteadySeconds() - wall_before;

  std::lock_guard lock(split.mu);
  const size_t ticks = split.wall.size();
  if (ticks < 6) Fail("fewer than 6 ticks ran");
  // The first two ticks fetch 1,000 inventories and the first points: the figures per tick are
  // over the ticks from the third on (up to the start of the last).
  const size_t first = 2, last = split.starts.size() - 1;
  const double measured = static_cast<double>(last - first);
  const double period = (split.starts[last] - split.starts[first]) / measured;
  const double cpu = split.process_cpu[last] - split.process_cpu[first];
  auto stage = [&](size_t k) {
    return (split.stages[last][k] - split.stages[first][k]) / measured;
  };
  const double loop_thread = (stage(0) + stage(1) + stage(2) + stage(3) + stage(4)) * measured;
  std::printf("\n%zu ticks in %.1f s, %d hosts x %d jobs, %s\n", ticks, wall, hosts, jobs_per_host,
              no_dcgm ? "no DCGM text" : "DCGM text on every metrics poll");
  std::printf("  CPU per tick (process, ticks 3 to %zu): %s\n", last, Ms(cpu / measured).c_str());
  std::printf("    controller (loop thread):   %s\n", Ms(stage(0)).c_str());
  std::printf("    usage accounting:           %s\n", Ms(stage(1)).c_str());
  std::printf("    exposition update:          %s\n", Ms(stage(2)).c_str());
  std::printf("    retention:                  %s\n", Ms(stage(3)).c_str());
  std::printf("    energy and job summaries:   %s\n", Ms(stage(4)).c_str());
#if FLEETWATCH_CONTROL_LOOP
  auto median_of = [](const std::vector<double>& v) {
    return v.empty() ? std::string("-") : Ms(Median(v));
  };
  std::printf(
      "      exposition, median: %s on the %zu ticks with DCGM texts or points, %s on the %zu "
      "without\n",
      median_of(split.expose_with_data).c_str(), split.expose_with_data.size(),
      median_of(split.expose_plain).c_str(), split.expose_plain.size());
  // A metrics round may span two ticks when polls straggle: the CPU of all the ticks with data
  // per round (a DCGM text from every host), whichever ticks the texts came in.
  if (split.dcgm_texts > 0) {
    double with_data = 0;
    for (double t : split.expose_with_data) with_data += t;
    const double rounds = static_cast<double>(split.dcgm_texts) / hosts;
    std::printf("      exposition per metrics round: %s (%.1f rounds of %d DCGM texts)\n",
                Ms(with_data / rounds).c_str(), rounds, hosts);
  }
#endif
  std::printf("    other threads (HTTP I/O):   %s\n", Ms((cpu - loop_thread) / measured).c_str());
  std::printf("  CPU per second (whole run):   %.0f %% of one core\n", 100 * cpu_all / wall);
  std::printf("  tick wall: median %s, max %s\n", Ms(Median(split.wall)).c_str(),
              Ms(*std::max_element(split.wall.begin(), split.wall.end())).c_str());
  std::printf("  tick period: %s configured, %s measured (%+.1f %%), %llu beats skipped\n",
              Ms(poll_ms / 1e3).c_str(), Ms(period).c_str(),
              100 * (period - poll_ms / 1e3) / (poll_ms / 1e3),
              static_cast<unsigned long long>(skipped));
  std::printf("  RSS: %.0f MiB now, %.0f MiB peak\n", ProcStatusBytes("VmRSS") / (1 << 20),
              ProcStatusBytes("VmHWM") / (1 << 20));
  std::printf("  points stored: %llu, bad poll replies: %llu, quiet ticks: %llu\n",
              static_cast<unsigned long long>(controller.points_stored()),
              static_cast<unsigned long long>(controller.bad_replies()),
              static_cast<unsigned long long>(controller.quiet_ticks()));
  return 0;
}

}  // namespace
}  // namespace fleetwatch::bench

int main(int argc, char** argv) {
  return fleetwatch::bench::RunBenchmark("fleetwatch-control-bench", fleetwatch::bench::Main, argc,
                                         argv);
}
