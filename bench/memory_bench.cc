// fleetwatch-memory-bench: the real server's memory against what it exports.
//
// Starts fleetwatch-sim-agents with DCGM text (--dcgm: 49 fields x 8 GPUs per host), writes a
// fleet of those hosts with one running 8-GPU job each into a fresh SQLite file, starts
// `fleetwatch server` on it with DSTACK_ENABLE_PROMETHEUS_METRICS=1, waits until every job's DCGM
// samples are on /metrics, then for --seconds scrapes /metrics every --scrape-interval seconds as
// Prometheus does (asking for OpenMetrics, with gzip) while sampling the server's resident set
// (VmRSS). Last, one uncompressed text scrape gives the exposition's size. Prints the RSS (median
// and max of the samples, and the kernel's high-water mark VmHWM) next to that size. See
// bench/README.md.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "http/async_client.h"
#include "store/sqlite_store.h"
#include "util/clock.h"
#include "util/ids.h"

namespace fleetwatch::bench {
namespace {

constexpr int kGpusPerHost = 8;

// A field of /proc/PID/status in bytes ("VmRSS", "VmHWM"); 0 when absent.
double ProcStatusBytes(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::stod(line.substr(field.size() + 1)) * 1024;  // "  123456 kB"
    }
  }
  return 0;
}

http::Response Scrape(http::AsyncClient& client, uint16_t port, bool prometheus) {
  if (!prometheus) return FetchMetrics(client, port, {}, std::chrono::seconds(60), size_t{2} << 30);
  return FetchMetrics(client, port,
                      {{"Accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
                       {"Accept-Encoding", "gzip"}},
                      std::chrono::seconds(60), size_t{2} << 30);
}

size_t CountLines(std::string_view text, std::string_view prefix) {
  size_t n = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    n += text.substr(at, end - at).starts_with(prefix) ? 1 : 0;
    at = end + 1;
  }
  return n;
}

int Main(int argc, char** argv) {
  CLI::App app{"Measures the server's RSS against the size of its /metrics exposition."};
  int hosts = 1000;
  int seconds = 60;
  int scrape_interval = 5;
  int metrics_interval = 10;
  std::string server_binary = FLEETWATCH_BINARY;
  app.add_option("--hosts", hosts, "Simulated hosts, one 8-GPU job each")
      ->check(CLI::Range(1, 10000));
  app.add_option("--seconds", seconds, "How long to scrape and sample")->check(CLI::Range(1, 3600));
  app.add_option("--scrape-interval", scrape_interval, "Seconds between scrapes")
      ->check(CLI::Range(1, 600));
  app.add_option("--metrics-interval", metrics_interval,
                 "FLEETWATCH_METRICS_INTERVAL_SECONDS: how often DCGM text is collected")
      ->check(CLI::Range(1, 3600));
  app.add_option("--fleetwatch", server_binary, "The fleetwatch executable to measure");
  CLI11_PARSE(app, argc, argv);

  TempDir dir;
  const std::string token = NewToken();
  const TimeMicros now = SystemClock::Get().Now();
  SimAgents sim(FLEETWATCH_SIM_AGENTS, hosts, 1, kGpusPerHost, token, dir.path(), /*dcgm=*/true);
  const fs::path data = dir.path() / "data";
  fs::create_directories(data);
  SimFleet fleet;
  {
    std::unique_ptr<store::Store> store =
        Must(store::OpenSqliteStore((data / "fleetwatch.db").string()), "open store");
    fleet = CreateSimFleet(*store, sim.ports(), 1, kGpusPerHost, token, now);
  }
  const fs::path log = dir.path() / "server.log";
  ChildProcess server({server_binary, "server", "--host", "127.0.0.1", "--port", "0", "--data-dir",
                       data.string(), "--no-local-fleet", "--log-level", "warn"},
                      {"DSTACK_ENABLE_PROMETHEUS_METRICS=1", "HOME=" + dir.path().string(),
                       "FLEETWATCH_POLL_INTERVAL_MS=1000",
                       "FLEETWATCH_METRICS_INTERVAL_SECONDS=" + std::to_string(metrics_interval)},
                      log);
  const uint16_t port = WaitForServerPort(server, log);

  // Every job's GPUs on /metrics with their DCGM samples.
  http::AsyncClient client(1);
  const size_t want = fleet.job_ids.size() * kGpusPerHost;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  const auto started = std::chrono::steady_clock::now();
  for (size_t seen = 0; seen < want;) {
    seen = CountLines(Scrape(client, port, false).body, "DCGM_FI_DEV_GPU_UTIL{");
    if (std::chrono::steady_clock::now() > deadline) {
      Fail("only " + std::to_string(seen) + " of " + std::to_string(want) +
           " GPUs have DCGM samples after 300 s");
    }
    if (seen < want) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::printf("server: %s, %d hosts x %d GPUs with DCGM text, all on /metrics after %.0f s\n",
              server_binary.c_str(), hosts, kGpusPerHost,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());

  // Scrape as Prometheus does, sampling the resident set every second.
  std::vector<double> rss;
  size_t gzip_bytes = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  auto next_scrape = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end) {
    if (std::chrono::steady_clock::now() >= next_scrape) {
      gzip_bytes = Scrape(client, port, true).body.size();
      next_scrape += std::chrono::seconds(scrape_interval);
    }
    rss.push_back(ProcStatusBytes(server.pid(), "VmRSS"));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  const double hwm = ProcStatusBytes(server.pid(), "VmHWM");
  // Last, the uncompressed text exposition, once.
  const std::string body = Scrape(client, port, false).body;
  const auto size = static_cast<double>(body.size());
  const size_t samples =
      static_cast<size_t>(std::count(body.begin(), body.end(), '\n')) - CountLines(body, "#");
  const double median = Median(rss);
  const double max = *std::max_element(rss.begin(), rss.end());
  std::printf(
      "  exposition: %s uncompressed text (%zu series), %s as Prometheus gets it "
      "(its Accept and gzip)\n",
      Megabytes(size).c_str(), samples, Megabytes(static_cast<double>(gzip_bytes)).c_str());
  std::printf(
      "  server RSS over %d s, a scrape every %d s, DCGM every %d s: median %s (%.2fx the "
      "exposition), max %s (%.2fx); peak VmHWM %s (%.2fx)\n",
      seconds, scrape_interval, metrics_interval, Megabytes(median).c_str(), median / size,
      Megabytes(max).c_str(), max / size, Megabytes(hwm).c_str(), hwm / size);
  return 0;
}

}  // namespace
}  // namespace fleetwatch::bench

int main(int argc, char** argv) {
  return fleetwatch::bench::RunBenchmark("fleetwatch-memory-bench", fleetwatch::bench::Main, argc,
                                         argv);
}
