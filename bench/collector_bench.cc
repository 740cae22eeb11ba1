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

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/vfs.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_support.h"
#include "http/async_client.h"
#include "model/entities.h"
#include "process_cpu.h"
#include "server/agent_protocol.h"
#include "server/fleet_controller.h"
#include "server/reconciler.h"
#include "store/sqlite_store.h"
#include "util/clock.h"
#include "util/ids.h"

namespace fleetwatch::bench {
namespace {

using std::chrono::steady_clock;

const std::vector<model::RunStatus> kUnfinished = {
    model::RunStatus::kPending, model::RunStatus::kSubmitted, model::RunStatus::kProvisioning,
    model::RunStatus::kRunning, model::RunStatus::kTerminating};

// --- measuring ---

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

// --- the environment ---

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

// --- printing ---

// A duration as Ms prints it, with one decimal from 1 to 10 ms too ("4.6 ms"), as the figures in
// bench/README.md read.
std::string Duration(double seconds) { return Ms(seconds, 1); }

std::string Us(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f us", seconds * 1e6);
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

// --- the benchmarks ---

struct TickFigures {
  Summary cpu, wall;
  Summary thread_cpu;  // the ticking thread's alone
  double points_per_tick = 0;
  double points_per_second = 0;
};

TickFigures MeasureTicks(server::FleetController& controller, int warmup, int ticks) {
  for (int t = 0; t < warmup; ++t) Must(controller.Tick(), "tick");
  std::vector<double> cpu, wall, thread_cpu;
  const uint64_t points_before = controller.points_stored();
  Stopwatch all;
  for (int t = 0; t < ticks; ++t) {
    Stopwatch watch;
    const double thread_before = ThreadCpuSeconds();
    Must(controller.Tick(), "tick");
    thread_cpu.push_back(ThreadCpuSeconds() - thread_before);
    Cost c = watch.Elapsed();
    cpu.push_back(c.cpu_s);
    wall.push_back(c.wall_s);
  }
  const double seconds = all.Elapsed().wall_s;
  TickFigures f;
  f.cpu = Summarize(cpu);
  f.wall = Summarize(wall);
  f.thread_cpu = Summarize(thread_cpu);
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
  std::printf("  machine: %u CPUs, %s; allocator: %s\n", std::thread::hardware_concurrency(),
              CpuModel().c_str(), AllocatorName());
  std::printf("  store:   SQLite in %s (%s)\n", dir.path().c_str(),
              FileSystemType(dir.path()).c_str());
  std::fflush(stdout);

  SimAgents sim(FLEETWATCH_SIM_AGENTS, hosts, jobs_per_host, gpus_per_job, token, dir.path());
  std::unique_ptr<store::Store> store =
      Must(store::OpenSqliteStore((dir.path() / "fleetwatch.db").string()), "open store");
  Stopwatch setup;
  SimFleet fleet = CreateSimFleet(*store, sim.ports(), jobs_per_host, gpus_per_job, token, now);
  std::printf("  setup:   %d sim hosts (one process), %zu running jobs stored in %.1f s\n", hosts,
              fleet.job_ids.size(), setup.Elapsed().wall_s);
  std::fflush(stdout);

  const Clock& clock = SystemClock::Get();
  Mutex runs_mutex;
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
  std::printf(
      "   (CPU = this process, user+sys, all threads; the sim agents are not counted;\n"
      "    Tick thread = the CPU of the thread that calls Tick, the loop thread's share)\n");
  Table ticks_table({"mode", "CPU mean", "CPU p50", "CPU max", "Tick thread mean", "wall mean",
                     "wall p50", "wall max", "points/tick"});
  for (const auto& [name, f] :
       {std::pair<const char*, const TickFigures&>{"metrics every tick", on},
        {"metrics off", off}}) {
    ticks_table.Add({name, Duration(f.cpu.mean), Duration(f.cpu.p50), Duration(f.cpu.max),
                     Duration(f.thread_cpu.mean), Duration(f.wall.mean), Duration(f.wall.p50),
                     Duration(f.wall.max), Count(f.points_per_tick)});
  }
  ticks_table.Print();
  std::printf("  points stored per second (metrics every tick): %s points/s\n",
              Count(on.points_per_second).c_str());
  const double default_cpu_per_s = (9 * off.cpu.mean + on.cpu.mean) / 10;
  std::printf(
      "  at the defaults (poll every 1 s, metrics every 10 s): %s CPU per second = %s of one "
      "core\n",
      Duration(default_cpu_per_s).c_str(), Percent(default_cpu_per_s, 1.0).c_str());
  const double metrics_share = (on.cpu.mean - off.cpu.mean) / 10;
  std::printf(
      "  of which the metrics (their tick minus a plain one, every 10 s): %s CPU per second "
      "= %s of one core\n",
      Duration(metrics_share).c_str(), Percent(metrics_share, 1.0).c_str());
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

  // What a tick reads when the store's runs and instances changed since the last one (a tick
  // whose store did not change reads neither: the controller keeps them).
  server::ReconcileInput input;
  const Cost reads = MeanCost(5, [&] {
    input.instances = Must(store->ListInstances(""), "list instances");
    input.runs = Must(store->ListRunsWithStatus(kUnfinished), "list runs");
  });
  input.now = clock.Now();
  input.observations = observations;
  size_t changed_instances = 0;
  // As the controller calls it: on the runs it keeps, changed in place (none change here), with
  // their configurations parsed once (the controller keeps them too).
  std::unordered_map<std::string, Result<model::RunConfiguration>> configs;
  for (const model::Run& run : input.runs) {
    configs.emplace(
        run.id, model::ParseRunConfiguration(run.configuration_json, model::ConfigFormat::kJson));
  }
  input.parsed_configs = &configs;
  const Cost reconcile = MeanCost(5, [&] {
    server::ReconcileOutput out = server::ReconcileInPlace(input, with_metrics.reconcile);
    changed_instances = out.instances.size();
  });
  // When last_seen_at is due (every 10 s at the defaults): one transaction for every instance.
  std::vector<std::pair<std::string, TimeMicros>> seen;
  const Cost writes = MeanCost(3, [&] {
    const TimeMicros at = clock.Now();
    seen.clear();
    for (const model::Instance& instance : input.instances) seen.emplace_back(instance.id, at);
    Must(store->SetInstancesLastSeen(seen), "set last seen");
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
                    Count(batched_points), Duration(batch_wall_total),
                    Count(batched_points / batch_wall_total), Duration(batch_wall_total / batches),
                    Us(batched.cpu_s / batched_points)});
  ingest_table.Add({"1", std::to_string(single_points), Count(single_points),
                    Duration(single.wall_s), Count(single_points / single.wall_s),
                    Us(single.wall_s / single_points), Us(single.cpu_s / single_points)});
  ingest_table.Print();
  const Summary batch_summary = Summarize(batch_wall);
  std::printf("  one %zu-point batch: p50 %s, max %s wall\n", fleet.job_ids.size(),
              Duration(batch_summary.p50).c_str(), Duration(batch_summary.max).c_str());

  const double ingest_cpu = batched.cpu_s / batches;
  const double ingest_wall = batch_wall_total / batches;
  std::printf(
      "\nc. Where a metrics tick goes: each part alone, per tick (%d hosts, %s of replies)\n",
      hosts, (Count(static_cast<double>(reply_bytes)) + "B").c_str());
  Table parts({"part", "CPU", "wall", "share of tick CPU"});
  parts.Add({"floor: memcpy of the reply bytes", Duration(memcpy_floor.cpu_s),
             Duration(memcpy_floor.wall_s), Percent(memcpy_floor.cpu_s, on.cpu.mean)});
  parts.Add({"HTTP: " + std::to_string(hosts) + " polls (AsyncClient, 2 threads)",
             Duration(io.cpu_s), Duration(io.wall_s), Percent(io.cpu_s, on.cpu.mean)});
  parts.Add({"parse: ParseAgentPoll x " + std::to_string(hosts), Duration(parse.cpu_s),
             Duration(parse.wall_s), Percent(parse.cpu_s, on.cpu.mean)});
  parts.Add({"store reads (store changed): ListInstances + ListRunsWithStatus",
             Duration(reads.cpu_s), Duration(reads.wall_s), Percent(reads.cpu_s, on.cpu.mean)});
  parts.Add({"ReconcileInPlace (pure)", Duration(reconcile.cpu_s), Duration(reconcile.wall_s),
             Percent(reconcile.cpu_s, on.cpu.mean)});
  parts.Add({"store writes: SetInstancesLastSeen of " + std::to_string(seen.size()),
             Duration(writes.cpu_s), Duration(writes.wall_s), Percent(writes.cpu_s, on.cpu.mean)});
  parts.Add({"store ingest: AddJobMetricsPoints x " + std::to_string(fleet.job_ids.size()),
             Duration(ingest_cpu), Duration(ingest_wall), Percent(ingest_cpu, on.cpu.mean)});
  const double sum_cpu =
      io.cpu_s + parse.cpu_s + reads.cpu_s + reconcile.cpu_s + writes.cpu_s + ingest_cpu;
  const double sum_wall =
      io.wall_s + parse.wall_s + reads.wall_s + reconcile.wall_s + writes.wall_s + ingest_wall;
  parts.Add(
      {"sum of the parts", Duration(sum_cpu), Duration(sum_wall), Percent(sum_cpu, on.cpu.mean)});
  parts.Add({"measured metrics tick (mean, from a.)", Duration(on.cpu.mean), Duration(on.wall.mean),
             "100 %"});
  parts.Print();
  std::printf(
      "  (Reconcile changed %zu instances per pass: last_seen_at, written when it moved 10 s)\n",
      changed_instances);
  return 0;
}

}  // namespace
}  // namespace fleetwatch::bench

int main(int argc, char** argv) {
  return fleetwatch::bench::RunBenchmark("fleetwatch-collector-bench", fleetwatch::bench::Main,
                                         argc, argv);
}
