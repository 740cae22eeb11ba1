// fleetwatch-scaleout-bench: several `fleetwatch server` replicas on one PostgreSQL database
// (docs/scale-out.md).
//
// Starts a private PostgreSQL cluster (the tests' own, tests/support/postgres_cluster.h),
// fleetwatch-sim-agents (--hosts, each running --jobs-per-host preloaded one-GPU jobs) and a first
// replica, which creates the schema and the admin; writes the sim fleet and its running runs into
// the database; starts the other replicas and waits until every host is leased and each replica
// holds some. Then, for --seconds, it measures each replica's CPU time (utime + stime of
// /proc/PID/stat) per tick and the database's connections (pg_stat_activity). Last it SIGKILLs the
// newest replica and times until the survivors see it gone and hold every host between them
// (bounded below by the lease time). With --ramp it measures with 1, 2, ... --replicas replicas in
// turn, starting one more before each window, and adds the database's own CPU time (its
// processes' utime + stime) and transactions per second to each window. See bench/README.md.

#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "http/async_client.h"
#include "process_cpu.h"
#include "store/postgres_store.h"
#include "support/postgres_cluster.h"
#include "util/clock.h"
#include "util/ids.h"

namespace fleetwatch::bench {
namespace {

using std::chrono::steady_clock;

constexpr char kAdminToken[] = "scaleout-bench-admin-token-0123456789";

// The parent pid of `pid` (field 4 of /proc/PID/stat); -1 when it cannot be read.
pid_t ParentPid(pid_t pid) {
  const std::vector<std::string> fields = ProcStatFields(pid);
  return fields.size() < 2 ? -1 : static_cast<pid_t>(std::stol(fields[1]));
}

// utime + stime of the postmaster `postmaster` and all its children (the backends, the
// checkpointer, the WAL writer, autovacuum...), in seconds. A backend that exited since an
// earlier reading takes its time with it: the replicas' connections last.
double PostgresCpuSeconds(pid_t postmaster) {
  double total = std::max(0.0, ProcessCpuSeconds(postmaster));
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    if (ParentPid(pid) == postmaster) total += std::max(0.0, ProcessCpuSeconds(pid));
  }
  return total;
}

// One connection of the bench's own to the database, for its samples.
class Sampler {
 public:
  explicit Sampler(const std::string& url) : conn_(PQconnectdb(url.c_str())) {}
  ~Sampler() { PQfinish(conn_); }
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  // The first column of the first row of `sql` as an integer; -1 on any failure.
  int64_t Int(const char* sql) {
    int64_t out = -1;
    PGresult* result = PQexec(conn_, sql);
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0 &&
        !PQgetisnull(result, 0, 0)) {
      out = std::stoll(PQgetvalue(result, 0, 0));
    }
    PQclear(result);
    return out;
  }
  // Committed and rolled-back transactions of the database so far (pg_stat_database, which
  // the server updates about once a second).
  int64_t Transactions() {
    return Int(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = "
        "current_database()");
  }

 private:
  PGconn* conn_;
};

struct ReplicaView {
  int64_t replicas = -1;  // live, as of the replica's last tick
  int64_t leased = -1;    // hosts it holds
};

// GET /api/server/info of the replica on `port`; -1s when it does not answer.
ReplicaView Info(http::AsyncClient& client, uint16_t port) {
  http::AsyncRequest request;
  request.host = "127.0.0.1";
  request.port = port;
  request.target = "/api/server/info";
  request.headers = {{"Authorization", std::string("Bearer ") + kAdminToken}};
  request.timeout = std::chrono::seconds(10);
  request.max_response_bytes = 1 << 20;
  Result<http::Response> reply = std::move(client.SendAll({request}).front());
  if (!reply.ok() || reply->status != 200) return {};
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(reply->body, ec);
  if (ec || !v.is_object()) return {};
  const boost::json::object& o = v.as_object();
  ReplicaView view;
  if (const auto* r = o.if_contains("replicas"); r != nullptr && r->is_int64()) {
    view.replicas = r->as_int64();
  }
  if (const auto* l = o.if_contains("leased_instances"); l != nullptr && l->is_int64()) {
    view.leased = l->as_int64();
  }
  return view;
}

struct Replica {
  fs::path data;
  fs::path log;
  std::unique_ptr<ChildProcess> process;
  uint16_t port = 0;
};

int Main(int argc, char** argv) {
  CLI::App app{
      "Measures N server replicas on one PostgreSQL: CPU per tick, connections, takeover."};
  int replicas = 3;
  int hosts = 300;
  int jobs_per_host = 8;
  int seconds = 30;
  int poll_ms = 1000;
  int lease_seconds = 10;
  bool ramp = false;
  std::string server_binary = FLEETWATCH_BINARY;
  app.add_option("--replicas", replicas, "Server replicas (at least 1)")->check(CLI::Range(1, 32));
  app.add_option("--hosts", hosts, "Simulated hosts")->check(CLI::Range(1, 10000));
  app.add_option("--jobs-per-host", jobs_per_host, "Running one-GPU jobs per host")
      ->check(CLI::Range(0, 8));
  app.add_option("--seconds", seconds, "How long to measure")->check(CLI::Range(1, 3600));
  app.add_option("--poll-ms", poll_ms, "FLEETWATCH_POLL_INTERVAL_MS")
      ->check(CLI::Range(100, 60000));
  app.add_option("--lease-seconds", lease_seconds, "FLEETWATCH_LEASE_SECONDS")
      ->check(CLI::Range(1, 3600));
  app.add_option("--fleetwatch", server_binary, "The fleetwatch executable to measure");
  app.add_flag("--ramp", ramp,
               "Measure with 1, 2, ... --replicas replicas in turn (one window each, one more "
               "replica started before each), with the database's CPU and transactions");
  CLI11_PARSE(app, argc, argv);

  TempDir dir;
  std::string error;
  std::unique_ptr<testing::PostgresCluster> cluster =
      testing::PostgresCluster::StartPrivate(&error);
  if (cluster == nullptr) Fail("cannot start PostgreSQL: " + error);
  const std::string url = cluster->CreateDatabase(&error);
  if (url.empty()) Fail("cannot create the database: " + error);

  const std::string token = NewToken();
  SimAgents sim(FLEETWATCH_SIM_AGENTS, hosts, jobs_per_host, 1, token, dir.path());
  http::AsyncClient client(1);
  std::vector<Replica> started;
  auto start_replica = [&](int i) {
    Replica r;
    r.data = dir.path() / ("replica-" + std::to_string(i));
    static int starts = 0;  // a restarted replica logs to a new file (its port is read there)
    r.log = dir.path() / ("replica-" + std::to_string(i) + "-" + std::to_string(starts++) + ".log");
    fs::create_directories(r.data);
    r.process = std::make_unique<ChildProcess>(
        std::vector<std::string>{server_binary, "server", "--host", "127.0.0.1", "--port", "0",
                                 "--data-dir", r.data.string(), "--no-local-fleet", "--log-level",
                                 "warn"},
        std::vector<std::string>{"HOME=" + dir.path().string(), "FLEETWATCH_DATABASE_URL=" + url,
                                 "FLEETWATCH_ENCRYPTION_KEY=" + std::string(64, 'a'),
                                 std::string("FLEETWATCH_SERVER_ADMIN_TOKEN=") + kAdminToken,
                                 "FLEETWATCH_POLL_INTERVAL_MS=" + std::to_string(poll_ms),
                                 "FLEETWATCH_LEASE_SECONDS=" + std::to_string(lease_seconds)},
        r.log);
    r.port = WaitForServerPort(*r.process, r.log);
    started.push_back(std::move(r));
  };
  // The first replica creates the schema and the admin and stops; the fleet and its runs go in;
  // then it starts again, as a replica does on a populated database (reading it all at start,
  // and not racing the bulk creation's writes).
  start_replica(0);
  started.front().process->Stop();
  started.clear();
  {
    store::PostgresStoreOptions options;
    options.secret_key.fill(0xaa);  // FLEETWATCH_ENCRYPTION_KEY above
    std::unique_ptr<store::Store> store =
        Must(store::OpenPostgresStore(url, options), "open the database");
    CreateSimFleet(*store, sim.ports(), jobs_per_host, 1, token, SystemClock::Get().Now());
  }
  start_replica(0);
  Sampler sampler(url);
  const pid_t postmaster = ParentPid(static_cast<pid_t>(sampler.Int("SELECT pg_backend_pid()")));
  if (postmaster <= 1) Fail("cannot find the PostgreSQL postmaster");
  std::printf("%d sim hosts x %d running jobs; poll %d ms, lease %d s; %s\n", hosts, jobs_per_host,
              poll_ms, lease_seconds, server_binary.c_str());
  std::printf("CPU: %s\n", CpuModel().c_str());

  // Starts replicas up to `count`, waits until every host is leased and each holds some, then
  // measures one window.
  auto measure = [&](int count) {
    while (static_cast<int>(started.size()) < count) {
      start_replica(static_cast<int>(started.size()));
    }
    const auto split_deadline = steady_clock::now() + std::chrono::seconds(300);
    const auto split_started = steady_clock::now();
    while (true) {
      int64_t leased = 0;
      bool each = true;
      for (Replica& r : started) {
        const ReplicaView view = Info(client, r.port);
        each = each && view.replicas == count && view.leased >= 1;
        leased += std::max<int64_t>(view.leased, 0);
      }
      if (each && leased == hosts) break;
      if (steady_clock::now() > split_deadline) Fail("the hosts were not split in 300 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const double split_seconds =
        std::chrono::duration<double>(steady_clock::now() - split_started).count();
    // Settle: the leases' moves and the first full reads are not the steady state.
    std::this_thread::sleep_for(std::chrono::seconds(std::max(3, lease_seconds / 2)));
    std::vector<double> cpu_before;
    for (Replica& r : started) cpu_before.push_back(ProcessCpuSeconds(r.process->pid()));
    const double pg_before = PostgresCpuSeconds(postmaster);
    const int64_t xact_before = sampler.Transactions();
    const auto window_start = steady_clock::now();
    int64_t max_connections = 0;
    while (steady_clock::now() < window_start + std::chrono::seconds(seconds)) {
      max_connections = std::max(
          max_connections, sampler.Int("SELECT COUNT(*) - 1 FROM pg_stat_activity WHERE datname = "
                                       "current_database()"));
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    const double window = std::chrono::duration<double>(steady_clock::now() - window_start).count();
    const double pg_cpu = PostgresCpuSeconds(postmaster) - pg_before;
    const int64_t xacts = sampler.Transactions() - xact_before;
    const double ticks = window * 1000.0 / poll_ms;
    std::printf("\n%d replica(s); hosts split %.1f s after the last one started; window %.0f s\n",
                count, split_seconds, window);
    Table table({"replica", "hosts held", "CPU per tick", "CPU % of a core", "millicores/host"});
    double total = 0;
    for (size_t i = 0; i < started.size(); ++i) {
      const double cpu = ProcessCpuSeconds(started[i].process->pid()) - cpu_before[i];
      total += cpu;
      const ReplicaView view = Info(client, started[i].port);
      char per_host[32];
      std::snprintf(
          per_host, sizeof(per_host), "%.3f",
          view.leased > 0 ? 1000.0 * cpu / window / static_cast<double>(view.leased) : 0.0);
      table.Add({std::to_string(i), std::to_string(view.leased), Ms(cpu / ticks),
                 std::to_string(static_cast<int>(100 * cpu / window + 0.5)) + " %", per_host});
    }
    char all_per_host[32];
    std::snprintf(all_per_host, sizeof(all_per_host), "%.3f", 1000.0 * total / window / hosts);
    table.Add({"all", std::to_string(hosts), Ms(total / ticks),
               std::to_string(static_cast<int>(100 * total / window + 0.5)) + " %", all_per_host});
    table.Print();
    std::printf(
        "PostgreSQL: CPU %.1f %% of a core (%.3f millicores/host), %.1f transactions/s; "
        "connections (the replicas' and their listeners'): at most %lld\n",
        100 * pg_cpu / window, 1000 * pg_cpu / window / hosts, static_cast<double>(xacts) / window,
        static_cast<long long>(max_connections));
  };
  if (ramp) {
    for (int count = 1; count <= replicas; ++count) measure(count);
  } else {
    measure(replicas);
  }

  if (replicas < 2) return 0;
  // Takeover: the newest replica killed; the survivors hold every host again.
  Replica& victim = started.back();
  const int64_t victim_held = Info(client, victim.port).leased;
  kill(victim.process->pid(), SIGKILL);
  const auto killed_at = steady_clock::now();
  const auto takeover_deadline = killed_at + std::chrono::seconds(lease_seconds + 300);
  while (true) {
    int64_t leased = 0;
    bool each = true;
    for (size_t i = 0; i + 1 < started.size(); ++i) {
      const ReplicaView view = Info(client, started[i].port);
      each = each && view.replicas == replicas - 1;
      leased += std::max<int64_t>(view.leased, 0);
    }
    if (each && leased == hosts) break;
    if (steady_clock::now() > takeover_deadline) Fail("the killed replica's hosts stayed orphaned");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf(
      "takeover: %lld hosts of a SIGKILLed replica held by the survivors %.1f s after the kill "
      "(lease %d s)\n",
      static_cast<long long>(victim_held),
      std::chrono::duration<double>(steady_clock::now() - killed_at).count(), lease_seconds);
  return 0;
}

}  // namespace
}  // namespace fleetwatch::bench

int main(int argc, char** argv) {
  return fleetwatch::bench::RunBenchmark("fleetwatch-scaleout-bench", fleetwatch::bench::Main, argc,
                                         argv);
}
