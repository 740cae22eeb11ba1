// fleetwatch-exposition-bench: what serving GET /metrics costs, against prometheus-cpp, in one run.
//
//  a. Synthetic fleets built in memory through the server's own path (RenderServerFamilies for
//     the instance, run and job families; RelabelDcgmText + SetDcgm for each job's
//     DCGM text), then: ExpositionSnapshot::Render uncached; a full scrape, Body(gzip) after a
//     change; prometheus-cpp holding the same series, Collect + TextSerializer, and that plus
//     zlib level-1 gzip; and the floor, a memcpy of our body's bytes.
//  b. wrk on /metrics of the real server (the fleetwatch executable) while its collector ingests
//     from simulated agents (fleetwatch-sim-agents).
//
// Times are medians of repeated runs, wall (steady_clock) and the calling thread's CPU; see
// bench/README.md for what each figure means.

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench_support.h"
#include "dcgm_text.h"
#include "expose/dcgm.h"
#include "expose/family.h"
#include "expose/snapshot.h"
#include "expose/text_format.h"
#include "http/async_client.h"
#include "model/entities.h"
#include "model/metrics.h"
#include "model/run_spec.h"
#include "model/status.h"
#include "process_cpu.h"
#include "server/exposition_updater.h"
#include "store/sqlite_store.h"
#include "util/clock.h"
#include "util/ids.h"

namespace fleetwatch::bench {
namespace {

using expose::Format;
using expose::MetricType;

constexpr TimeMicros kSecond = 1'000'000;
constexpr int kGpusPerHost = 8;
constexpr char kGpuModel[] = "NVIDIA H100 80GB HBM3";
// The family the scrape timing changes before each call (a small one, as a tick would).
constexpr char kChangedFamily[] = "dstack_pending_runs_total";

// --- the synthetic fleet ---

constexpr const char* kUsers[] = {"alice", "bob", "carol"};  // of every project

// A host's dcgm-exporter text: every field for each of its GPUs.
std::string DcgmText(const model::Instance& host, std::mt19937_64& rng) {
  std::vector<DcgmGpu> gpus;
  for (const model::Gpu& gpu : host.resources.gpus) gpus.push_back({gpu.index, gpu.uuid, gpu.name});
  return DcgmExporterText(host.hostname, gpus, rng);
}

// `instances` busy 8-GPU hosts in instances/25 projects, each running one 8-GPU job of a run
// (mostly tasks, some services and dev environments) with a fresh metrics point; the same 3 users
// in every project, with finished runs counted too; and each host's DCGM text.
struct SyntheticFleet {
  std::string name;
  int instances = 0;
  server::ExpositionState state;
  std::vector<std::string> dcgm_texts;  // by run: the text of the host its job runs on
};

SyntheticFleet MakeFleet(std::string name, int instances, TimeMicros now) {
  std::mt19937_64 rng(static_cast<uint64_t>(instances));
  SyntheticFleet fleet;
  fleet.name = std::move(name);
  fleet.instances = instances;
  server::ExpositionState& state = fleet.state;
  const int projects = std::max(1, instances / 25);
  std::vector<std::string> fleet_ids;
  for (int p = 0; p < projects; ++p) fleet_ids.push_back(NewId());
  model::RunConfiguration config;
  config.type = model::RunType::kTask;
  config.commands = {"torchrun train.py"};
  config.resources.cpus = 96;
  config.resources.memory_bytes = int64_t{1} << 40;
  config.resources.gpu.count = kGpusPerHost;
  const std::string config_json = model::ToJson(config);

  for (int i = 0; i < instances; ++i) {
    const int p = i % projects;
    char project[32];
    std::snprintf(project, sizeof project, "project-%02d", p);
    const std::string user = kUsers[static_cast<size_t>(i / projects % 3)];

    model::Instance host;
    host.id = NewId();
    host.project_id = project;
    host.project_name = project;
    host.fleet_id = fleet_ids[static_cast<size_t>(p)];
    host.fleet_name = "h100-fleet";
    host.instance_num = i / projects;
    host.name = host.fleet_name + "-" + std::to_string(host.instance_num);
    host.status = model::InstanceStatus::kBusy;
    host.backend = "remote";
    host.hostname = "gpu-node-" + std::to_string(i);
    host.price = 23.92;
    host.resources.cpus = 208;
    host.resources.memory_bytes = int64_t{2} << 40;
    for (int g = 0; g < kGpusPerHost; ++g) {
      host.resources.gpus.push_back(
          {g, kGpuModel, "GPU-" + NewId(), int64_t{80} << 30, std::string("nvidia")});
    }
    host.created_at = now - (86'400 + int64_t{i} * 60) * kSecond;

    model::Run run;
    run.id = NewId();
    run.project_id = project;
    run.project_name = project;
    run.user_id = user;
    run.user_name = user;
    run.run_name = "train-" + std::to_string(i);
    run.type = i % 10 == 9   ? model::RunType::kService
               : i % 10 == 8 ? model::RunType::kDevEnvironment
                             : model::RunType::kTask;
    run.status = model::RunStatus::kRunning;
    run.submitted_at = now - (3'600 + int64_t{i} * 7) * kSecond;
    run.configuration_json = config_json;
    model::Job job;
    job.id = NewId();
    job.run_id = run.id;
    job.job_name = run.run_name + "-0-0";
    job.status = model::JobStatus::kRunning;
    job.instance_id = host.id;
    job.instance_name = host.name;
    for (int g = 0; g < kGpusPerHost; ++g) job.gpu_indices.push_back(g);
    job.submitted_at = run.submitted_at;
    job.started_at = run.submitted_at + 90 * kSecond;
    run.jobs.push_back(job);

    model::JobMetricsPoint point;
    point.job_id = job.id;
    point.timestamp_micro = now - 2 * kSecond;
    point.cpu_usage_micro = static_cast<int64_t>(rng() % 100'000'000'000);
    point.memory_usage_bytes = (int64_t{400} << 30) + static_cast<int64_t>(rng() % (1 << 30));
    point.memory_working_set_bytes = point.memory_usage_bytes - (int64_t{20} << 30);
    for (int g = 0; g < kGpusPerHost; ++g) {
      point.gpus_memory_usage_bytes.push_back((int64_t{40} << 30) +
                                              static_cast<int64_t>(rng() % (int64_t{38} << 30)));
      point.gpus_util_percent.push_back(static_cast<int64_t>(55 + rng() % 46));
    }
    state.newest_points[job.id] = point;
    fleet.dcgm_texts.push_back(DcgmText(host, rng));
    state.unfinished_runs.push_back(std::move(run));
    state.instances.push_back(std::move(host));
  }
  for (int p = 0; p < projects; ++p) {
    char project[32];
    std::snprintf(project, sizeof project, "project-%02d", p);
    for (const char* type : {"task", "service", "dev-environment"}) {
      // 50 provisioned runs, 20 s to 1833 s, and 2 pending, as the store totals them.
      std::map<int, store::RunEventTotal> buckets;
      for (int k = 0; k < 50; ++k) {
        const double seconds = 20.0 + 37.0 * k;
        const int bucket = server::SubmitToProvisionBucket(seconds);
        store::RunEventTotal& t = buckets[bucket];
        t = {project, type, store::kRunEventProvisioned, bucket, t.count + 1, t.seconds + seconds};
      }
      for (auto& [bucket, total] : buckets) state.run_events.push_back(std::move(total));
      state.run_events.push_back({project, type, store::kRunEventPending, 0, 2, 0});
    }
    for (const char* user : kUsers) {
      state.usage.push_back({project, user, 12'345.67 + p, 3.2e7 + p});
      state.run_counts.push_back({project, user, model::RunStatus::kRunning, 8, 8});
      state.run_counts.push_back({project, user, model::RunStatus::kDone, 140, 120});
      state.run_counts.push_back({project, user, model::RunStatus::kFailed, 12, 10});
      state.run_counts.push_back({project, user, model::RunStatus::kTerminated, 31, 30});
    }
  }
  return fleet;
}

// The fleet in an ExpositionSnapshot, stored as the server stores it.
struct LoadedFleet {
  expose::ExpositionSnapshot snapshot;
  std::map<std::string, expose::FamilyId> ids;  // server family name → id
  expose::DcgmHeaderCache headers;              // as the server shares DCGM family headers
  double ingest_s = 0;                          // RelabelDcgmText, all hosts (one job each)
  double ingest_one_gpu_jobs_s = 0;             // RelabelDcgmText, 8 one-GPU jobs per host
  size_t ingest_one_gpu_jobs_hosts = 0;         // hosts timed for ingest_one_gpu_jobs_s
};

// `timed_durations`: the durations as the server holds them, time-valued samples each render
// evaluates; false: as fixed text rendered at `now` (for comparing what the evaluation costs).
void Load(const SyntheticFleet& fleet, TimeMicros now, bool timed_durations, LoadedFleet& out) {
  for (const server::ServerFamily& f : server::ServerFamilies()) {
    out.ids[f.name] =
        Must(out.snapshot.RegisterFamily(f.section, f.name, f.type, f.help), "register family");
  }
  for (auto& [name, samples] : server::RenderServerFamilies(fleet.state, now, {})) {
    if (!samples.empty()) out.snapshot.SetFragment(out.ids.at(name), "all", {samples, {}});
  }
  // The durations as the server holds them: time-valued samples the scrape evaluates.
  if (timed_durations) {
    expose::Fragment ages;
    std::vector<const model::Instance*> instances;
    for (const model::Instance& i : fleet.state.instances) {
      if (server::InstanceExported(i.status)) instances.push_back(&i);
    }
    std::sort(instances.begin(), instances.end(),
              [](const auto* a, const auto* b) { return server::InstanceBefore(*a, *b); });
    for (const model::Instance* i : instances) {
      ages.timed.push_back(server::InstanceDuration(server::InstancePairs(*i), i->created_at));
    }
    out.snapshot.SetFragment(out.ids.at("dstack_instance_duration_seconds_total"), "all",
                             std::move(ages));
    std::map<std::string, expose::TimedSample> jobs;  // by JobKey
    std::map<std::string_view, const model::Instance*> by_id;
    for (const model::Instance& i : fleet.state.instances) by_id[i.id] = &i;
    for (const model::Run& run : fleet.state.unfinished_runs) {
      for (const model::Job& job : run.jobs) {
        if (!server::JobExported(job.status)) continue;
        const model::Instance* on = job.instance_id ? by_id.at(*job.instance_id) : nullptr;
        jobs.emplace(server::JobKey(run, job),
                     server::JobDuration(server::JobPairs(run, job, on), job.submitted_at));
      }
    }
    expose::Fragment durations;
    for (auto& entry : jobs) durations.timed.push_back(std::move(entry.second));
    out.snapshot.SetFragment(out.ids.at("dstack_job_duration_seconds_total"), "all",
                             std::move(durations));
  }
  const model::Instance* hosts = fleet.state.instances.data();
  std::vector<std::string_view> server_families;
  for (const server::ServerFamily& f : server::ServerFamilies()) server_families.push_back(f.name);
  for (size_t i = 0; i < fleet.state.unfinished_runs.size(); ++i) {
    const model::Run& run = fleet.state.unfinished_runs[i];
    const model::Job& job = run.jobs.front();
    const model::Instance& host = hosts[i];
    // As ExpositionUpdater ingests a host's DCGM text for a job on it.
    const expose::JobLabelValues values = server::JobLabelValuesOf(run, job, &host);
    const std::array<expose::Label, 11> labels = expose::JobLabels(values);
    std::vector<std::string> uuids;
    for (int index : job.gpu_indices) {
      uuids.push_back(host.resources.gpus[static_cast<size_t>(index)].uuid);
    }
    const expose::DcgmJob jobs[] = {{uuids, labels}};
    double cpu = ThreadCpuSeconds();
    expose::RelabeledDcgm relabeled =
        Must(expose::RelabelDcgmText(fleet.dcgm_texts[i], jobs, server_families, &out.headers),
             "relabel DCGM text");
    out.ingest_s += ThreadCpuSeconds() - cpu;
    std::string key = run.project_name + '\0' + job.job_name + '\0' + job.id;  // the server's
    out.snapshot.SetDcgm(std::move(key), std::move(relabeled.jobs[0]), now + 600 * kSecond);
  }
  // The same texts for hosts that each run 8 one-GPU jobs (one pass serves all 8), on a sample of
  // the hosts, results dropped.
  const size_t sample = std::min<size_t>(fleet.dcgm_texts.size(), 200);
  for (size_t i = 0; i < sample; ++i) {
    const model::Run& run = fleet.state.unfinished_runs[i];
    const model::Instance& host = hosts[i];
    const expose::JobLabelValues values = server::JobLabelValuesOf(run, run.jobs.front(), &host);
    const std::array<expose::Label, 11> labels = expose::JobLabels(values);
    std::vector<std::vector<std::string>> uuids;
    for (const model::Gpu& gpu : host.resources.gpus) uuids.push_back({gpu.uuid});
    std::vector<expose::DcgmJob> jobs;
    for (const auto& one : uuids) jobs.push_back({one, labels});
    const double cpu = ThreadCpuSeconds();
    Must(expose::RelabelDcgmText(fleet.dcgm_texts[i], jobs, server_families, &out.headers),
         "relabel DCGM text");
    out.ingest_one_gpu_jobs_s += ThreadCpuSeconds() - cpu;
  }
  out.ingest_one_gpu_jobs_hosts = sample;
}

// --- the peer: prometheus-cpp ---

// Adds a histogram family read from text (cumulative `_bucket` samples with `le`, `_sum`,
// `_count`) to `registry`: one prometheus-cpp Histogram per label set, with the same buckets,
// per-bucket counts and sum.
void AddHistogram(const expose::DcgmFamily& family, prometheus::Registry& registry) {
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count), in text order
    double sum = 0;
  };
  std::map<prometheus::Labels, Series> series;
  for (const expose::DcgmSample& s : family.samples) {
    prometheus::Labels labels;
    std::optional<double> le;
    for (const auto& [name, value] : s.labels) {
      if (name == "le") {
        le = value == "+Inf" ? INFINITY : std::stod(value);
      } else {
        labels.emplace(name, value);
      }
    }
    Series& one = series[labels];
    if (s.name.ends_with("_bucket") && le) one.buckets.emplace_back(*le, s.value);
    if (s.name.ends_with("_sum")) one.sum = s.value;
  }
  auto& f = prometheus::BuildHistogram().Name(family.name).Help(family.help).Register(registry);
  for (const auto& [labels, one] : series) {
    prometheus::Histogram::BucketBoundaries bounds;
    std::vector<double> increments;
    double previous = 0;
    for (const auto& [le, cumulative] : one.buckets) {
      if (!std::isinf(le)) bounds.push_back(le);
      increments.push_back(cumulative - previous);
      previous = cumulative;
    }
    f.Add(labels, bounds).ObserveMultiple(increments, one.sum);
  }
}

// A prometheus-cpp registry holding the families of `body` (text 0.0.4), read back from it with
// our strict parser one family at a time: the same names, HELP, types, label sets and values.
// Counters become Counters (Increment by the value), gauges Gauges, histograms Histograms; the
// fleets have no other types.
std::shared_ptr<prometheus::Registry> PeerRegistry(std::string_view body) {
  auto registry = std::make_shared<prometheus::Registry>();
  expose::DcgmParseLimits limits;
  limits.max_bytes = body.size() + 1;
  size_t start = 0;
  while (start < body.size()) {
    size_t next = body.find("\n# HELP ", start);
    next = next == std::string_view::npos ? body.size() : next + 1;
    expose::DcgmText text =
        Must(expose::ParseDcgmText(body.substr(start, next - start), limits), "parse our own body");
    start = next;
    for (const expose::DcgmFamily& family : text.families) {
      if (family.type == MetricType::kCounter) {
        auto& f =
            prometheus::BuildCounter().Name(family.name).Help(family.help).Register(*registry);
        for (const expose::DcgmSample& s : family.samples) {
          f.Add(prometheus::Labels(s.labels.begin(), s.labels.end())).Increment(s.value);
        }
      } else if (family.type == MetricType::kGauge) {
        auto& f = prometheus::BuildGauge().Name(family.name).Help(family.help).Register(*registry);
        for (const expose::DcgmSample& s : family.samples) {
          f.Add(prometheus::Labels(s.labels.begin(), s.labels.end())).Set(s.value);
        }
      } else if (family.type == MetricType::kHistogram) {
        AddHistogram(family, *registry);
      } else {
        Fail("family " + family.name + " is not a counter, gauge or histogram");
      }
    }
  }
  return registry;
}

// A gzip member of `data` made with zlib's deflate at `level` (what a prometheus-cpp exposer
// would do with zlib).
std::string ZlibGzip(std::string_view data, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    Fail("deflateInit2");
  }
  std::string out(deflateBound(&zs, data.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) Fail("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct TextShape {
  size_t sample_lines = 0;
  size_t families = 0;  // TYPE lines
};

TextShape Shape(std::string_view text) {
  TextShape shape;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (line.starts_with("# TYPE ")) {
      ++shape.families;
    } else if (!line.empty() && line.front() != '#') {
      ++shape.sample_lines;
    }
    start = end + 1;
  }
  return shape;
}

// Peak resident memory of this process, MB.
double MaxRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024;
}

// --- a. one fleet ---

struct Runs {
  int ours = 30;  // Render, memcpy
  int scrape = 15;
  int peer = 7;
  bool with_peer = true;
  bool timed_durations = true;  // Load's
};

// Writes `text` to `path`, or fails.
void WriteFile(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) Fail("cannot write " + path.string());
}

// `dump_dir`, when not empty: where both texts go, NAME.fleetwatch.txt and NAME.prometheus-cpp.txt.
void BenchFleet(const std::string& name, int instances, Runs runs, const std::string& dump_dir) {
  const TimeMicros now = SystemClock::Get().Now();
  auto setup_start = std::chrono::steady_clock::now();
  SyntheticFleet fleet = MakeFleet(name, instances, now);
  LoadedFleet loaded;
  Load(fleet, now, runs.timed_durations, loaded);
  fleet = SyntheticFleet{};  // the snapshot holds all it needs: free the texts before the peer
  const double setup_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count();
  expose::ExpositionSnapshot& snapshot = loaded.snapshot;

  const std::string body = snapshot.Render(Format::kText004, now);
  const TextShape ours_shape = Shape(body);
  std::printf(
      "\na. %s: %d instances, %d running jobs x %d GPUs x %zu DCGM fields, %s series, %s "
      "body\n",
      name.c_str(), instances, instances, kGpusPerHost, std::size(kDcgmFields),
      Count(static_cast<double>(ours_shape.sample_lines)).c_str(),
      Megabytes(static_cast<double>(body.size())).c_str());
  std::printf(
      "   built in %.1f s; DCGM ingest cost (CPU, RelabelDcgmText: parse and relabel in one "
      "pass): %s for all hosts, %s per host with one 8-GPU job, %s per host with 8 one-GPU jobs\n",
      setup_s, Ms(loaded.ingest_s).c_str(), Ms(loaded.ingest_s / instances).c_str(),
      Ms(loaded.ingest_one_gpu_jobs_s /
         static_cast<double>(std::max<size_t>(1, loaded.ingest_one_gpu_jobs_hosts)))
          .c_str());
  std::fflush(stdout);

  // Ours: Render, uncached.
  const Timing render = Measure(
      runs.ours, [] {}, [&] { return snapshot.Render(Format::kText004, now); });

  // Ours: the scrape a Prometheus makes (Accept-Encoding: gzip), with a cold cache: a changed
  // fragment before each call. The previous bodies are held until after the clock stops, so the
  // timed call does not free them.
  const expose::FamilyId changed = loaded.ids.at(kChangedFamily);
  double errors = 3;
  std::shared_ptr<const std::string> held_plain, held_gzip;
  size_t gzip_size = 0;
  const Timing scrape = Measure(
      runs.scrape,
      [&] {
        held_plain = snapshot.Body(Format::kText004, false, now);
        held_gzip = snapshot.Body(Format::kText004, true, now);
        std::string samples;
        expose::AppendSample(samples, kChangedFamily, "", ++errors);
        snapshot.SetFragment(changed, "all", {samples, {}});
      },
      [&] {
        auto gz = snapshot.Body(Format::kText004, true, now);
        gzip_size = gz->size();
        return gz;
      });
  held_plain.reset();
  held_gzip.reset();

  // The floor: the same bytes, allocated and copied, with the huge-page advice Render gives a
  // body this large (src/expose/snapshot.cc), so that both pay the same page faults.
  const Timing floor = Measure(
      runs.ours, [] {},
      [&] {
        std::unique_ptr<char[]> copy(new char[body.size()]);
        fleetwatch::expose::AdviseHugePages(copy.get(), body.size());
        std::memcpy(copy.get(), body.data(), body.size());
        asm volatile("" : : "r"(copy.get()) : "memory");  // keep the copy
        return copy;
      });

  // The peer.
  std::optional<Timing> peer, peer_gzip;
  size_t peer_size = 0, peer_gzip_size = 0;
  TextShape peer_shape;
  double peer_setup_s = 0;
  if (runs.with_peer) {
    setup_start = std::chrono::steady_clock::now();
    std::shared_ptr<prometheus::Registry> registry = PeerRegistry(body);
    peer_setup_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count();
    struct PeerScrape {
      std::vector<prometheus::MetricFamily> families;
      std::string text;
      std::string gzip;
    };
    const prometheus::TextSerializer serializer;
    peer = Measure(
        runs.peer, [] {},
        [&] {
          PeerScrape s;
          s.families = registry->Collect();
          s.text = serializer.Serialize(s.families);
          return s;
        });
    peer_gzip = Measure(
        runs.peer, [] {},
        [&] {
          PeerScrape s;
          s.families = registry->Collect();
          s.text = serializer.Serialize(s.families);
          s.gzip = ZlibGzip(s.text, 1);
          peer_size = s.text.size();
          peer_gzip_size = s.gzip.size();
          return s;
        });
    const std::string peer_text = serializer.Serialize(registry->Collect());
    peer_shape = Shape(peer_text);
    if (!dump_dir.empty()) {
      fs::create_directories(dump_dir);
      WriteFile(fs::path(dump_dir) / (name + ".fleetwatch.txt"), body);
      WriteFile(fs::path(dump_dir) / (name + ".prometheus-cpp.txt"), peer_text);
    }
  }

  const auto mb = [](size_t bytes) { return Megabytes(static_cast<double>(bytes)); };
  Table table({"what", "CPU p50", "wall p50", "runs", "output"});
  table.Add({"fleetwatch: ExpositionSnapshot::Render (uncached)", Ms(render.cpu_s),
             Ms(render.wall_s), std::to_string(render.runs), mb(body.size())});
  table.Add({"fleetwatch: scrape = Body(gzip) after a change (render + libdeflate 1)",
             Ms(scrape.cpu_s), Ms(scrape.wall_s), std::to_string(scrape.runs), mb(gzip_size)});
  if (peer) {
    table.Add({"prometheus-cpp: Registry::Collect + TextSerializer", Ms(peer->cpu_s),
               Ms(peer->wall_s), std::to_string(peer->runs), mb(peer_size)});
    table.Add({"prometheus-cpp: the same + zlib level-1 gzip", Ms(peer_gzip->cpu_s),
               Ms(peer_gzip->wall_s), std::to_string(peer_gzip->runs), mb(peer_gzip_size)});
  }
  table.Add({"floor: memcpy of our body (allocate + copy)", Ms(floor.cpu_s), Ms(floor.wall_s),
             std::to_string(floor.runs), mb(body.size())});
  table.Print();
  if (peer) {
    std::printf(
        "  same series: fleetwatch %zu sample lines in %zu families, prometheus-cpp %zu in %zu "
        "(%s; order and number formatting differ)\n",
        ours_shape.sample_lines, ours_shape.families, peer_shape.sample_lines, peer_shape.families,
        ours_shape.sample_lines == peer_shape.sample_lines &&
                ours_shape.families == peer_shape.families
            ? "equal"
            : "DIFFERENT");
    std::printf("  peer registry loaded in %.1f s; peak RSS so far %.0f MB\n", peer_setup_s,
                MaxRssMb());
  }

  // Decided on CPU time: on a shared machine a long call is preempted more often than a short
  // one, which inflates wall ratios; on an idle machine the two agree.
  Table targets({"target (decided on CPU p50s; wall p50s alongside)", "CPU", "wall", "want", ""});
  if (peer) {
    const double vs_peer = peer->cpu_s / render.cpu_s;
    targets.Add({"render faster than prometheus-cpp by", Times(vs_peer),
                 Times(peer->wall_s / render.wall_s), ">= 50x", vs_peer >= 50 ? "PASS" : "MISS"});
  }
  const double vs_floor = render.cpu_s / floor.cpu_s;
  targets.Add({"render slower than memcpy by", Times(vs_floor), Times(render.wall_s / floor.wall_s),
               "<= 5x", vs_floor <= 5 ? "PASS" : "MISS"});
  if (peer) {
    const double vs_peer_gzip = peer_gzip->cpu_s / scrape.cpu_s;
    targets.Add({"gzip'd scrape faster than prometheus-cpp + zlib by", Times(vs_peer_gzip),
                 Times(peer_gzip->wall_s / scrape.wall_s), ">= 5x",
                 vs_peer_gzip >= 5 ? "PASS" : "MISS"});
  }
  targets.Print();
  std::fflush(stdout);
}

// --- b. wrk against the real server ---

std::string RunCommand(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) Fail("cannot run " + command);
  std::string output;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  if (pclose(pipe) != 0) Fail(command + " failed:\n" + output);
  return output;
}

// wrk's figures, from its --latency report.
struct WrkFigures {
  double requests_per_s = 0;
  int64_t requests = 0;
  int64_t non_2xx = 0;
  int64_t socket_errors = 0;
  std::string p50, p90, p99, transfer_per_s;
};

WrkFigures ParseWrk(const std::string& out) {
  WrkFigures f;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) {
    f.requests_per_s = std::stod(m[1]);
  }
  if (std::regex_search(out, m, std::regex(R"((\d+) requests in)"))) f.requests = std::stoll(m[1]);
  if (std::regex_search(out, m, std::regex(R"(Non-2xx or 3xx responses:\s+(\d+))"))) {
    f.non_2xx = std::stoll(m[1]);
  }
  if (std::regex_search(
          out, m,
          std::regex(R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))"))) {
    for (int i = 1; i <= 4; ++i) f.socket_errors += std::stoll(m[i]);
  }
  const auto percentile = [&](const char* p) {
    std::smatch pm;
    return std::regex_search(out, pm, std::regex(std::string(R"(\s)") + p + R"(%\s+(\S+))"))
               ? pm[1].str()
               : std::string("?");
  };
  f.p50 = percentile("50");
  f.p90 = percentile("90");
  f.p99 = percentile("99");
  if (std::regex_search(out, m, std::regex(R"(Transfer/sec:\s+(\S+))"))) f.transfer_per_s = m[1];
  return f;
}

struct WrkOptions {
  int hosts = 1000;
  int seconds = 15;
  int threads = 4;
  int connections = 16;
  int quiet_seconds = 5;  // before wrk: the ingest rate without scrapes
};

http::Response Get(http::AsyncClient& client, uint16_t port, bool gzip) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (gzip) headers.emplace_back("Accept-Encoding", "gzip");
  return FetchMetrics(client, port, std::move(headers), std::chrono::seconds(30), size_t{1} << 30);
}

size_t CountPrefix(std::string_view text, std::string_view prefix) {
  size_t n = 0;
  for (size_t at = text.find(prefix); at != std::string_view::npos;
       at = text.find(prefix, at + 1)) {
    n += at == 0 || text[at - 1] == '\n';
  }
  return n;
}

void BenchWrk(const WrkOptions& o) {
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) {
    Fail("wrk is not installed (scripts/install-deps.sh --bench installs it)");
  }
  TempDir dir;
  const std::string token = NewToken();
  const TimeMicros now = SystemClock::Get().Now();
  SimAgents sim(FLEETWATCH_SIM_AGENTS, o.hosts, 1, kGpusPerHost, token, dir.path());
  const fs::path data = dir.path() / "data";
  fs::create_directories(data);
  SimFleet fleet;
  {
    std::unique_ptr<store::Store> store =
        Must(store::OpenSqliteStore((data / "fleetwatch.db").string()), "open store");
    fleet = CreateSimFleet(*store, sim.ports(), 1, kGpusPerHost, token, now);
  }
  const fs::path log = dir.path() / "server.log";
  ChildProcess server({FLEETWATCH_BINARY, "server", "--host", "127.0.0.1", "--port", "0",
                       "--data-dir", data.string(), "--no-local-fleet", "--log-level", "warn"},
                      {"DSTACK_ENABLE_PROMETHEUS_METRICS=1", "HOME=" + dir.path().string(),
                       "FLEETWATCH_POLL_INTERVAL_MS=1000", "FLEETWATCH_METRICS_INTERVAL_SECONDS=1"},
                      log);
  const uint16_t port = WaitForServerPort(server, log);

  // Wait until every job has a point on /metrics: the collector is ingesting.
  http::AsyncClient client(1);
  const auto ingest_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  size_t jobs_with_points = 0;
  while (jobs_with_points < fleet.job_ids.size()) {
    jobs_with_points =
        CountPrefix(Get(client, port, false).body, "dstack_job_cpu_time_seconds_total{");
    if (std::chrono::steady_clock::now() > ingest_deadline) {
      Fail("only " + std::to_string(jobs_with_points) + " jobs have points after 120 s");
    }
    if (jobs_with_points < fleet.job_ids.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  char command[256];
  std::snprintf(command, sizeof command,
                "wrk -t%d -c%d -d%ds --latency -H 'Accept-Encoding: gzip' "
                "http://127.0.0.1:%u/metrics",
                o.threads, o.connections, o.seconds, static_cast<unsigned>(port));
  std::printf("\nb. %s\n", command);
  std::printf(
      "   against `fleetwatch server` ingesting from %d simulated hosts x 1 job x %d GPUs\n",
      o.hosts, kGpusPerHost);
  std::printf(
      "   (poll every 1 s, a metrics point per job every 1 s; /metrics rebuilt each tick)\n");
  std::fflush(stdout);
  // A quiet window first, the same server with no scrapes, for comparison.
  const TimeMicros quiet_start = SystemClock::Get().Now();
  const double quiet_cpu_start = ProcessCpuSeconds(server.pid());
  std::this_thread::sleep_for(std::chrono::seconds(o.quiet_seconds));
  const double quiet_cpu = ProcessCpuSeconds(server.pid()) - quiet_cpu_start;
  const TimeMicros wrk_start = SystemClock::Get().Now();
  const double server_cpu_start = ProcessCpuSeconds(server.pid());
  const std::string output = RunCommand(std::string(command) + " 2>&1");
  const double server_cpu = ProcessCpuSeconds(server.pid()) - server_cpu_start;
  const TimeMicros wrk_end = SystemClock::Get().Now();
  const http::Response plain = Get(client, port, false);
  const http::Response gzipped = Get(client, port, true);
  server.Stop();

  // Points the collector stored in each window, by their (agent) timestamps.
  int64_t quiet_points = 0, points = 0;
  {
    std::unique_ptr<store::Store> store =
        Must(store::OpenSqliteStore((data / "fleetwatch.db").string()), "reopen store");
    for (const std::string& job : fleet.job_ids) {
      quiet_points += static_cast<int64_t>(
          Must(store->ListJobMetricsPoints(job, quiet_start, wrk_start, 1'000'000), "list points")
              .size());
      points += static_cast<int64_t>(
          Must(store->ListJobMetricsPoints(job, wrk_start, wrk_end, 1'000'000), "list points")
              .size());
    }
  }
  const double quiet_s = static_cast<double>(wrk_start - quiet_start) / 1e6;
  const double wrk_s = static_cast<double>(wrk_end - wrk_start) / 1e6;
  const WrkFigures f = ParseWrk(output);
  bool gzip_header = false;
  for (const auto& [name, value] : gzipped.headers) gzip_header |= name == "content-encoding";

  Table table(
      {"requests/s", "requests", "errors (non-2xx + socket)", "p50", "p90", "p99", "transfer/s"});
  table.Add({Count(f.requests_per_s), std::to_string(f.requests),
             std::to_string(f.non_2xx + f.socket_errors), f.p50, f.p90, f.p99, f.transfer_per_s});
  table.Print();
  std::printf("  body: %s plain, %s gzip'd (Content-Encoding: gzip %s), %zu sample lines\n",
              Megabytes(static_cast<double>(plain.body.size())).c_str(),
              Megabytes(static_cast<double>(gzipped.body.size())).c_str(),
              gzip_header ? "present" : "MISSING", Shape(plain.body).sample_lines);
  std::printf(
      "  ingest (%zu jobs): %.0f points/s stored during wrk, %.0f points/s in %.0f s without "
      "scrapes before it\n",
      fleet.job_ids.size(), static_cast<double>(points) / wrk_s,
      static_cast<double>(quiet_points) / quiet_s, quiet_s);
  std::printf(
      "  server CPU: %.2f cores during wrk, %.2f cores without scrapes (the machine has %u, "
      "shared with wrk and the sim agents)\n",
      server_cpu / wrk_s, quiet_cpu / quiet_s, std::thread::hardware_concurrency());
  const int64_t errors = f.non_2xx + f.socket_errors;
  std::printf("  target: zero errors: %s\n", errors == 0 && f.requests > 0 ? "PASS" : "MISS");
  std::printf("  wrk's own report:\n");
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) std::printf("    %s\n", line.c_str());
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  CLI::App app{"Measures GET /metrics: render, scrape and wrk, against prometheus-cpp."};
  std::vector<int> fleets = {100, 1000};
  Runs runs;
  int large_runs_divisor = 3;
  WrkOptions wrk;
  bool no_wrk = false;
  bool only_wrk = false;
  bool no_peer = false;
  bool durations_as_text = false;
  std::string dump_dir;
  app.add_option("--fleets", fleets, "Instances of each synthetic fleet (fleet-N)")
      ->check(CLI::Range(1, 10000));
  app.add_option("--runs", runs.ours, "Timed runs of Render and memcpy")
      ->check(CLI::Range(1, 10000));
  app.add_option("--scrape-runs", runs.scrape, "Timed runs of the gzip'd scrape")
      ->check(CLI::Range(1, 10000));
  app.add_option("--peer-runs", runs.peer, "Timed runs of each prometheus-cpp measurement")
      ->check(CLI::Range(1, 10000));
  app.add_option("--large-divisor", large_runs_divisor,
                 "Fleets of 1,000 instances or more run this many times fewer (at least 3)")
      ->check(CLI::Range(1, 100));
  app.add_option("--wrk-hosts", wrk.hosts, "Simulated hosts the server ingests from during wrk")
      ->check(CLI::Range(1, 20000));
  app.add_option("--wrk-seconds", wrk.seconds, "wrk's duration")->check(CLI::Range(1, 3600));
  app.add_flag("--no-wrk", no_wrk, "Skip b. (wrk)");
  app.add_flag("--only-wrk", only_wrk, "Skip a. (the synthetic fleets)");
  app.add_flag("--no-peer", no_peer, "Time only ours in a. (for profiling it)");
  app.add_flag("--durations-as-text", durations_as_text,
               "Hold the durations as fixed text, not as samples each render evaluates (to "
               "measure what evaluating them costs)");
  app.add_option("--dump", dump_dir, "Write each fleet's two texts (ours, prometheus-cpp's) here");
  CLI11_PARSE(app, argc, argv);
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  spdlog::set_level(spdlog::level::warn);
  std::time_t today = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&today));
  std::printf("fleetwatch exposition benchmark, %s\n", date);
  std::printf("  command: %s\n", command_line.c_str());
  std::printf("  machine: %u CPUs, %s; prometheus-cpp 1.0 (Debian), zlib %s\n",
              std::thread::hardware_concurrency(), CpuModel().c_str(), zlibVersion());
  std::fflush(stdout);

  if (!only_wrk) {
    for (int instances : fleets) {
      Runs r = runs;
      if (instances >= 1000) {
        r.ours = std::max(3, r.ours / large_runs_divisor);
        r.scrape = std::max(3, r.scrape / large_runs_divisor);
        r.peer = std::max(3, r.peer / large_runs_divisor);
      }
      r.with_peer = !no_peer;
      r.timed_durations = !durations_as_text;
      BenchFleet("fleet-" + std::to_string(instances), instances, r, dump_dir);
    }
  }
  if (!no_wrk) BenchWrk(wrk);
  return 0;
}

}  // namespace
}  // namespace fleetwatch::bench

int main(int argc, char** argv) {
  try {
    return fleetwatch::bench::Main(argc, argv);
  } catch (const fleetwatch::bench::BenchmarkFailure& failure) {
    std::fflush(stdout);
    std::fprintf(stderr, "fleetwatch-exposition-bench: %s\n", failure.what());
    return 1;
  }
}
