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
// (bounded below by the lease time). See bench/README.md.

#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "http/async_client.h"
#include "store/postgres_store.h"
#include "support/postgres_cluster.h"
#include "util/clock.h"
#include "util/ids.h"

namespace fleetwatch::bench {
namespace {

using std::chrono::steady_clock;

constexpr char kAdminToken[] = "scaleout-bench-admin-token-0123456789";

// utime + stime of process `pid` in seconds; -1 when it cannot be read.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t name_end = stat.rfind(')');
  if (name_end == std::string::npos) return -1;
  std::istringstream fields(stat.substr(name_end + 1));
  std::vector<std::string> after_name;  // from field 3 (state) on
  for (std::string f; fields >> f;) after_name.push_back(f);
  if (after_name.size() < 13) return -1;
  // Fields 14 and 15 of proc(5): utime and stime, in clock ticks.
  return (std::stod(after_name[11]) + std::stod(after_name[12])) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The first column of the first row of `sql` on `url` as an integer; -1 on any failure.
int64_t PgInt(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  int64_t out = -1;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* result = PQexec(conn, sql.c_str());
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
      out = std::stoll(PQgetvalue(result, 0, 0));
    }
    PQclear(result);
  }
  PQfinish(conn);
  return out;
}

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
    r.log = dir.path() / ("replica-" + std::to_string(i) + ".log");
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
  // The first replica creates the schema and the admin; then the fleet goes in.
  start_replica(0);
  {
    store::PostgresStoreOptions options;
    options.secret_key.fill(0xaa);  // FLEETWATCH_ENCRYPTION_KEY above
    std::unique_ptr<store::Store> store =
        Must(store::OpenPostgresStore(url, options), "open the database");
    CreateSimFleet(*store, sim.ports(), jobs_per_host, 1, token, SystemClock::Get().Now());
  }
  for (int i = 1; i < replicas; ++i) start_replica(i);

  // Every host leased, each replica holding some.
  const auto split_deadline = steady_clock::now() + std::chrono::seconds(300);
  const auto split_started = steady_clock::now();
  while (true) {
    int64_t leased = 0;
    bool each = true;
    for (Replica& r : started) {
      const ReplicaView view = Info(client, r.port);
      each = each && view.replicas == replicas && view.leased >= 1;
      leased += std::max<int64_t>(view.leased, 0);
    }
    if (each && leased == hosts) break;
    if (steady_clock::now() > split_deadline) Fail("the hosts were not split in 300 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double split_seconds =
      std::chrono::duration<double>(steady_clock::now() - split_started).count();
  std::printf(
      "%d replicas of %s on one PostgreSQL; %d sim hosts x %d running jobs; poll %d ms, lease "
      "%d s; hosts split %.1f s after the last replica started\n",
      replicas, server_binary.c_str(), hosts, jobs_per_host, poll_ms, lease_seconds, split_seconds);
  std::printf("CPU: %s\n", CpuModel().c_str());

  // CPU per tick of each replica over the window, and the database's connections.
  std::vector<double> cpu_before;
  for (Replica& r : started) cpu_before.push_back(ProcessCpuSeconds(r.process->pid()));
  const auto window_start = steady_clock::now();
  int64_t max_connections = 0;
  while (steady_clock::now() < window_start + std::chrono::seconds(seconds)) {
    max_connections = std::max(
        max_connections,
        PgInt(url, "SELECT COUNT(*) - 1 FROM pg_stat_activity WHERE datname = current_database()"));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  const double window = std::chrono::duration<double>(steady_clock::now() - window_start).count();
  const double ticks = window * 1000.0 / poll_ms;
  Table table({"replica", "hosts held", "CPU per tick", "CPU % of a core"});
  double total = 0;
  for (size_t i = 0; i < started.size(); ++i) {
    const double cpu = ProcessCpuSeconds(started[i].process->pid()) - cpu_before[i];
    total += cpu;
    const ReplicaView view = Info(client, started[i].port);
    table.Add({std::to_string(i), std::to_string(view.leased), Ms(cpu / ticks),
               std::to_string(static_cast<int>(100 * cpu / window + 0.5)) + " %"});
  }
  table.Add({"all", std::to_string(hosts), Ms(total / ticks),
             std::to_string(static_cast<int>(100 * total / window + 0.5)) + " %"});
  table.Print();
  std::printf("database connections (the replicas'): at most %lld over %.0f s\n",
              static_cast<long long>(max_connections), window);

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
