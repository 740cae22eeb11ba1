// Two `fleetwatch server` replicas on one PostgreSQL database (docs/scale-out.md): real server
// processes, real agents on 127.0.0.1 and the ctest run's PostgreSQL. The replicas split the
// hosts without a leader (each host leased to exactly one), one is SIGKILLed, the other takes its
// hosts over after the lease time, and every job is started exactly once and finishes once.
#include <signal.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "integration/replica_support.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr int kHosts = 4;
constexpr int kLeaseSeconds = 3;

// How often each job id appears in "job <id> started" lines of the agents' logs.
std::map<std::string, int> Starts(const std::vector<std::unique_ptr<AgentProcess>>& agents) {
  static const std::regex kStarted("job ([0-9a-f-]+) started, pid");
  std::map<std::string, int> starts;
  for (const auto& agent : agents) {
    const std::string out = agent->Output();
    for (auto it = std::sregex_iterator(out.begin(), out.end(), kStarted);
         it != std::sregex_iterator(); ++it) {
      ++starts[(*it)[1].str()];
    }
  }
  return starts;
}

// The DCGM text of host `host`'s one fake GPU (the agents' fake NVML names it GPU-fake-0): its
// Hostname label tells the hosts apart in /metrics.
std::string DcgmFixture(int host) {
  const std::string labels =
      "{gpu=\"0\",UUID=\"GPU-fake-0\",device=\"nvidia0\",modelName=\"NVIDIA "
      "A100-SXM4-80GB\",Hostname=\"host-" +
      std::to_string(host) + "\"}";
  return "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
         "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
         "DCGM_FI_DEV_GPU_UTIL" +
         labels + " " + std::to_string(40 + host) +
         "\n"
         "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).\n"
         "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
         "DCGM_FI_DEV_POWER_USAGE" +
         labels + " " + std::to_string(300 + host) + "\n";
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = CreateReplicaDatabase();
    if (url_.empty()) return;  // skipped, or failed
    for (int i = 0; i < kHosts; ++i) {
      AgentProcessOptions options = AgentProcessOptions::FakeGpus(1, FAKE_NVML_LIBRARY);
      if (with_dcgm_) {
        UseFakeDcgm(options, dcgm_dir_.path() / std::to_string(i), DcgmFixture(i));
      }
      agents_.push_back(std::make_unique<AgentProcess>(std::move(options)));
      ASSERT_GT(agents_.back()->port(), 0) << agents_.back()->Output();
    }
  }

  std::unique_ptr<ServerProcess> StartReplica(TempDir& data) {
    std::map<std::string, std::string> env{
        {"FLEETWATCH_DATABASE_URL", url_},
        // Every replica on one database is given the same key.
        {"FLEETWATCH_ENCRYPTION_KEY", std::string(64, 'a')},
        {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
        {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
        {"FLEETWATCH_LEASE_SECONDS", std::to_string(kLeaseSeconds)},
        {"FLEETWATCH_INSTANCE_UNREACHABLE_SECONDS", "60"},
        {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}};
    if (with_dcgm_) env["DSTACK_ENABLE_PROMETHEUS_METRICS"] = "";
    return std::make_unique<ServerProcess>(data.str(), home_.str(), kAdminToken,
                                           std::vector<std::string>{"--no-local-fleet"}, env);
  }

  // Creates the fleet of every agent's host through `admin`.
  void CreateFleet(const ApiClient& admin) {
    std::vector<uint16_t> ports;
    for (const auto& agent : agents_) ports.push_back(agent->port());
    ApiReply created =
        admin.Send("POST", "/api/project/main/fleets", PoolFleetYaml(ports), "application/yaml");
    ASSERT_EQ(created.status, 201) << created.body;
  }

  static json::value Info(const ApiClient& client) { return client.Get("/api/server/info").json; }

  void SubmitRun(const ApiClient& client, const std::string& name, int seconds) {
    ApiReply r =
        client.Send("POST", "/api/project/main/runs",
                    "type: task\nname: " + name + "\nresources: {gpu: 1}\ncommands:\n  - sleep " +
                        std::to_string(seconds) + "\n",
                    "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  bool with_dcgm_ = false;  // agents with a DCGM exporter, replicas with /metrics
  std::string url_;
  TempDir dcgm_dir_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  TempDir data_a_;
  TempDir data_b_;
  TempDir data_c_;
  TempDir home_;
};

TEST_F(ReplicasTest, TwoReplicasSplitTheHostsAndTheSurvivorTakesOverAKilledOnesHosts) {
  std::unique_ptr<ServerProcess> a = StartReplica(data_a_);
  ASSERT_TRUE(a->started()) << a->Output();
  ApiClient admin_a(a->url(), kAdminToken);
  ASSERT_NO_FATAL_FAILURE(CreateFleet(admin_a));

  std::unique_ptr<ServerProcess> b = StartReplica(data_b_);
  ASSERT_TRUE(b->started()) << b->Output();
  ApiClient admin_b(b->url(), kAdminToken);

  // Both replicas live, the hosts split between them: each host leased to exactly one.
  json::value info_a, info_b;
  const bool split = WaitUntil([&] {
    info_a = Info(admin_a);
    info_b = Info(admin_b);
    return JsonInt(info_a, "replicas") == 2 && JsonInt(info_b, "replicas") == 2 &&
           JsonInt(info_a, "leased_instances") >= 1 && JsonInt(info_b, "leased_instances") >= 1 &&
           JsonInt(info_a, "leased_instances") + JsonInt(info_b, "leased_instances") == kHosts;
  });
  ASSERT_TRUE(split) << json::serialize(info_a) << "\n"
                     << json::serialize(info_b) << "\n"
                     << a->Output() << b->Output();
  EXPECT_EQ(Str(info_a, "database"), "postgresql");
  const std::string id_a = Str(info_a, "replica_id");
  const std::string id_b = Str(info_b, "replica_id");
  EXPECT_NE(id_a, id_b);
  std::printf("replica %s holds %lld hosts, replica %s %lld\n", id_a.c_str(),
              static_cast<long long>(JsonInt(info_a, "leased_instances")), id_b.c_str(),
              static_cast<long long>(JsonInt(info_b, "leased_instances")));
  std::vector<std::string> owners = QueryColumn(
      url_, "SELECT lock_owner FROM instances WHERE lock_owner IS NOT NULL ORDER BY id");
  EXPECT_EQ(owners.size(), static_cast<size_t>(kHosts));
  EXPECT_EQ(std::set<std::string>(owners.begin(), owners.end()),
            (std::set<std::string>{id_a, id_b}));
  // Every host came up, through whichever replica holds it.
  ASSERT_TRUE(WaitUntil([&] {
    return QueryColumn(url_, "SELECT COUNT(*) FROM instances WHERE status = 'idle'") ==
           std::vector<std::string>{std::to_string(kHosts)};
  })) << a->Output()
      << b->Output();

  // A run on every host (one GPU each), submitted through either replica: two of them run on
  // hosts of the replica that is then killed, and run on across the kill.
  for (int i = 0; i < kHosts; ++i) {
    SubmitRun(i % 2 == 0 ? admin_a : admin_b, "across-" + std::to_string(i), 6);
  }
  for (int i = 0; i < kHosts; ++i) {
    ApiReply across = WaitForRunStatus(admin_a, "main", "across-" + std::to_string(i), "running");
    ASSERT_EQ(Str(across.json, "status"), "running") << across.body << a->Output();
  }
  const std::vector<std::string> on_b = QueryColumn(
      url_,
      "SELECT j.id FROM jobs j JOIN instances i ON i.id = j.instance_id WHERE j.status = "
      "'running' AND i.lock_owner = '" +
          id_b + "'");
  EXPECT_GE(on_b.size(), 1u);

  ASSERT_EQ(b->Stop(SIGKILL), 128 + SIGKILL);
  const auto killed_at = steady_clock::now();
  for (int i = 0; i < kHosts; ++i) SubmitRun(admin_a, "after-" + std::to_string(i), 1);

  // The survivor alone, holding every host: the killed one's leases expired and were taken.
  const bool took_over = WaitUntil([&] {
    info_a = Info(admin_a);
    return JsonInt(info_a, "replicas") == 1 && JsonInt(info_a, "leased_instances") == kHosts;
  });
  ASSERT_TRUE(took_over) << json::serialize(info_a) << "\n" << a->Output();
  std::printf(
      "replica %s took over the killed replica's hosts %.1f s after the kill (lease %d s)\n",
      id_a.c_str(), std::chrono::duration<double>(steady_clock::now() - killed_at).count(),
      kLeaseSeconds);
  owners = QueryColumn(url_, "SELECT DISTINCT lock_owner FROM instances");
  EXPECT_EQ(owners, std::vector<std::string>{id_a});

  // Every run done, each job started once by one agent.
  std::vector<std::string> names;
  for (int i = 0; i < kHosts; ++i) {
    names.push_back("across-" + std::to_string(i));
    names.push_back("after-" + std::to_string(i));
  }
  std::set<std::string> job_ids;
  for (const std::string& name : names) {
    ApiReply run = WaitForRunStatus(admin_a, "main", name, "done", std::chrono::seconds(120));
    ASSERT_EQ(Str(run.json, "status"), "done") << name << ": " << run.body << "\n" << a->Output();
    job_ids.insert(Str(run.json.at("jobs").at(0), "id"));
  }
  // An agent logs a start as it happens; the runs are done, so every start is in the logs.
  std::map<std::string, int> starts = Starts(agents_);
  for (const std::string& id : job_ids) EXPECT_EQ(starts[id], 1) << "job " << id;
  for (const std::string& id : on_b) EXPECT_TRUE(job_ids.count(id)) << "job " << id;
  EXPECT_EQ(starts.size(), job_ids.size());
  EXPECT_EQ(QueryColumn(url_, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"),
            std::vector<std::string>{std::to_string(names.size())});

  // GPU time accounted exactly once, though both replicas account every job. Each charge moves
  // its job's accounted time on by what it charges, so once every job is accounted to its end the
  // totals equal the accounted stretches (one GPU each): a charge applied twice would make them
  // more. The stretches cover the jobs' running time (a running job is charged up to the tick
  // that sees it end, so they may exceed it by that much).
  const std::string pending =
      "SELECT COUNT(*) FROM jobs WHERE started_at IS NOT NULL AND (usage_accounted_until IS NULL "
      "OR usage_accounted_until < finished_at)";
  ASSERT_TRUE(WaitUntil([&] {
    return QueryColumn(url_, pending) == std::vector<std::string>{"0"};
  })) << a->Output();
  auto seconds = [&](const std::string& sql) {
    std::vector<std::string> v = QueryColumn(url_, sql);
    return v.size() == 1 && !v[0].empty() ? std::stod(v[0]) : -1.0;
  };
  const double accounted = seconds(
      "SELECT SUM(usage_accounted_until - started_at) / 1e6 FROM jobs WHERE started_at IS NOT "
      "NULL");
  const double ran = seconds(
      "SELECT SUM(finished_at - started_at) / 1e6 FROM jobs WHERE status = "
      "'done'");
  const double charged = seconds("SELECT COALESCE(SUM(gpu_seconds), 0) FROM usage_totals");
  EXPECT_NEAR(charged, accounted, 1e-6);
  EXPECT_GE(charged, ran - 1e-6);
  std::printf("GPU seconds charged %.6f, accounted stretches %.6f, jobs ran %.6f\n", charged,
              accounted, ran);

  // A graceful stop releases the leases at once.
  EXPECT_EQ(a->Stop(SIGTERM), 0) << a->Output();
  EXPECT_EQ(QueryColumn(url_, "SELECT COUNT(*) FROM instances WHERE lock_owner IS NOT NULL"),
            std::vector<std::string>{"0"});
  EXPECT_EQ(QueryColumn(url_, "SELECT COUNT(*) FROM replicas WHERE id = '" + id_a + "'"),
            std::vector<std::string>{"0"});
}

// The whole log of `run` through `client`, page by page (each at most the route's 1 MiB).
std::string ReadLog(const ApiClient& client, const std::string& run, int64_t offset = 0) {
  std::string log;
  for (int pages = 0; pages < 100; ++pages) {
    ApiReply r = client.Get("/api/project/main/runs/" + run +
                            "/logs?offset=" + std::to_string(offset + log.size()));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200 || r.body.empty()) break;
    log += r.body;
  }
  return log;
}

TEST_F(ReplicasTest, AFinishedJobsLogIsServedWhoseverHostItRanOn) {
  std::unique_ptr<ServerProcess> a = StartReplica(data_a_);
  ASSERT_TRUE(a->started()) << a->Output();
  ApiClient admin_a(a->url(), kAdminToken);
  ASSERT_NO_FATAL_FAILURE(CreateFleet(admin_a));
  std::unique_ptr<ServerProcess> b = StartReplica(data_b_);
  ASSERT_TRUE(b->started()) << b->Output();
  ApiClient admin_b(b->url(), kAdminToken);
  json::value info_a, info_b;
  ASSERT_TRUE(WaitUntil([&] {
    info_a = Info(admin_a);
    info_b = Info(admin_b);
    return JsonInt(info_a, "leased_instances") >= 1 && JsonInt(info_b, "leased_instances") >= 1 &&
           JsonInt(info_a, "leased_instances") + JsonInt(info_b, "leased_instances") == kHosts;
  })) << json::serialize(info_a)
      << "\n"
      << json::serialize(info_b);
  const std::string id_a = Str(info_a, "replica_id");

  // More than one stored chunk (256 KiB) of bytes that are not UTF-8, on whichever host.
  constexpr int kLines = 50'000;
  std::string line = "\xff\xfe ok \x80\n";
  std::string expected;
  for (int i = 0; i < kLines; ++i) expected += line;
  ApiReply submitted =
      admin_a.Send("POST", "/api/project/main/runs",
                   "type: task\nname: bytes\nresources: {gpu: 1}\ncommands:\n  - 'yes \"$(printf "
                   "''\\377\\376 ok \\200'')\" | head -n " +
                       std::to_string(kLines) + "'\n",
                   "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  ApiReply done = WaitForRunStatus(admin_a, "main", "bytes", "done", std::chrono::seconds(120));
  ASSERT_EQ(Str(done.json, "status"), "done") << done.body << a->Output() << b->Output();
  const std::string job_id = Str(done.json.at("jobs").at(0), "id");
  // Acknowledged by the replica that holds the host: its log copied into the database, every
  // chunk in (the copy's writer token cleared).
  ASSERT_TRUE(WaitUntil([&] {
    return QueryColumn(url_, "SELECT size FROM job_logs WHERE job_id = '" + job_id +
                                 "' AND writer IS NULL") ==
           std::vector<std::string>{std::to_string(expected.size())};
  })) << a->Output()
      << b->Output();
  EXPECT_EQ(
      QueryColumn(url_, "SELECT COUNT(*) FROM job_log_chunks WHERE job_id = '" + job_id + "'"),
      std::vector<std::string>{"2"});
  const std::vector<std::string> holder = QueryColumn(
      url_,
      "SELECT i.lock_owner FROM jobs j JOIN instances i ON i.id = j.instance_id WHERE j.id "
      "= '" +
          job_id + "'");
  ASSERT_EQ(holder.size(), 1u);
  const bool a_holds = holder[0] == id_a;
  ServerProcess& holding = a_holds ? *a : *b;
  const ApiClient& other = a_holds ? admin_b : admin_a;
  std::printf("the job ran on a host of replica %s; its %zu log bytes are read through the other\n",
              holder[0].c_str(), expected.size());

  EXPECT_TRUE(ReadLog(other, "bytes") == expected);
  EXPECT_TRUE(ReadLog(other, "bytes", static_cast<int64_t>(expected.size()) - 9) ==
              expected.substr(expected.size() - 9));
  // The holder gone, its data directory with it: the log is the database's.
  ASSERT_EQ(holding.Stop(SIGKILL), 128 + SIGKILL);
  EXPECT_TRUE(ReadLog(other, "bytes") == expected);

  // Deleting the run deletes its log.
  ASSERT_EQ(other.Delete("/api/project/main/runs/bytes").status / 100, 2);
  EXPECT_EQ(
      QueryColumn(url_, "SELECT COUNT(*) FROM job_log_chunks WHERE job_id = '" + job_id + "'"),
      std::vector<std::string>{"0"});
}

// Replicas with /metrics, on hosts whose agents run a DCGM exporter.
class SharedMetricsTest : public ReplicasTest {
 protected:
  SharedMetricsTest() { with_dcgm_ = true; }
};

// The families (name prefixes) whose samples are each replica's own on /metrics, skipped when the
// replicas' /metrics are compared: the GPU ledger's idle ratio and the energy families, which a
// replica refreshes from the readings of the hosts it polls (docs/scale-out.md "Not done yet").
const std::vector<std::string> kPerReplicaFamilies = {
    "fleetwatch_run_gpu_idle_ratio",
    "fleetwatch_run_gpu_energy_joules",
    "fleetwatch_project_gpu_energy_joules_total",
    "fleetwatch_project_gpu_busy_seconds_total",
    "fleetwatch_project_carbon_grams_total",
};

// The sample lines of an exposition as "series value", or only "series" for families whose
// values move with time or with each replica's view (durations, counters of work done).
std::set<std::string> Series(const std::string& body) {
  std::set<std::string> out;
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    const std::string name = line.substr(0, name_end);
    bool skipped = false;
    for (const std::string& family : kPerReplicaFamilies) {
      skipped |= name.rfind(family, 0) == 0;
    }
    if (skipped) continue;
    const size_t value_at = line.rfind(' ');
    const bool dcgm = name.rfind("DCGM_", 0) == 0;
    out.insert(dcgm ? line : line.substr(0, value_at));
  }
  return out;
}

std::string Difference(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::string out;
  for (const std::string& line : a) {
    if (!b.count(line)) out += "  - " + line + "\n";
  }
  for (const std::string& line : b) {
    if (!a.count(line)) out += "  + " + line + "\n";
  }
  return out;
}

TEST_F(SharedMetricsTest, EveryReplicaServesEveryHostsDcgmSamplesAndJobPoints) {
  std::unique_ptr<ServerProcess> a = StartReplica(data_a_);
  ASSERT_TRUE(a->started()) << a->Output();
  ApiClient admin_a(a->url(), kAdminToken);
  ASSERT_NO_FATAL_FAILURE(CreateFleet(admin_a));
  std::unique_ptr<ServerProcess> b = StartReplica(data_b_);
  ASSERT_TRUE(b->started()) << b->Output();
  std::unique_ptr<ServerProcess> c = StartReplica(data_c_);
  ASSERT_TRUE(c->started()) << c->Output();
  std::vector<ApiClient> clients{admin_a, ApiClient(b->url(), kAdminToken),
                                 ApiClient(c->url(), kAdminToken)};
  auto outputs = [&] { return a->Output() + b->Output() + c->Output(); };

  // Three live replicas holding every host, at least two of them some (a third may hold none:
  // replicas give hosts up only above their share plus one).
  std::vector<int64_t> leased(3);
  ASSERT_TRUE(WaitUntil([&] {
    int64_t total = 0, holding = 0;
    for (size_t r = 0; r < clients.size(); ++r) {
      json::value info = Info(clients[r]);
      if (JsonInt(info, "replicas") != 3) return false;
      leased[r] = JsonInt(info, "leased_instances");
      total += leased[r];
      holding += leased[r] > 0 ? 1 : 0;
    }
    return total == kHosts && holding >= 2;
  })) << outputs();
  std::printf("replicas hold %lld, %lld and %lld hosts\n", static_cast<long long>(leased[0]),
              static_cast<long long>(leased[1]), static_cast<long long>(leased[2]));

  // A job on every host (DCGM samples are exported for the GPUs jobs hold).
  for (int i = 0; i < kHosts; ++i) SubmitRun(clients[i % 3], "share-" + std::to_string(i), 300);
  for (int i = 0; i < kHosts; ++i) {
    ApiReply run = WaitForRunStatus(admin_a, "main", "share-" + std::to_string(i), "running");
    ASSERT_EQ(Str(run.json, "status"), "running") << run.body << outputs();
  }

  // Every replica's /metrics: every host's DCGM samples (relabeled for its job) and every job's
  // newest point, whichever replica polls the host.
  auto complete = [](const std::string& body, std::string* missing) {
    missing->clear();
    for (int i = 0; i < kHosts; ++i) {
      // Host i's text (relabeled for whichever job runs there), job i's DCGM samples and point.
      const std::string n = std::to_string(i);
      const std::regex host("\nDCGM_FI_DEV_GPU_UTIL\\{[^\n]*Hostname=\"host-" + n + "\"");
      const std::regex dcgm("\nDCGM_FI_DEV_GPU_UTIL\\{[^\n]*dstack_run_name=\"share-" + n + "\"");
      const std::regex point("\ndstack_job_gpu_usage_ratio\\{[^\n]*dstack_run_name=\"share-" + n +
                             "\"");
      if (!std::regex_search(body, host)) *missing += " DCGM of host-" + n;
      if (!std::regex_search(body, dcgm)) *missing += " DCGM of share-" + n;
      if (!std::regex_search(body, point)) *missing += " point of share-" + n;
    }
    return missing->empty();
  };
  const auto start = steady_clock::now();
  for (size_t r = 0; r < clients.size(); ++r) {
    std::string body, missing;
    const bool all = WaitUntil([&] {
      body = clients[r].Get("/metrics").body;
      return complete(body, &missing);
    });
    ASSERT_TRUE(all) << "replica " << r << " lacks" << missing << "\n" << body << outputs();
    std::printf("replica %zu (%lld hosts) shows all %d hosts after %.1f s\n", r,
                static_cast<long long>(leased[r]), kHosts,
                std::chrono::duration<double>(steady_clock::now() - start).count());
  }
  // Shared through the database: one text per host.
  EXPECT_EQ(QueryColumn(url_, "SELECT COUNT(*) FROM host_dcgm WHERE dcgm_text <> ''"),
            std::vector<std::string>{std::to_string(kHosts)});

  // Scraped together, the replicas show the same series (and the same DCGM values), but for the
  // families that are each replica's own.
  std::string diff;
  const bool same = WaitUntil(
      [&] {
        std::vector<std::set<std::string>> series;
        for (const ApiClient& client : clients)
          series.push_back(Series(client.Get("/metrics").body));
        diff = Difference(series[0], series[1]) + Difference(series[0], series[2]);
        return diff.empty();
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(same) << "replicas differ:\n" << diff;

  for (auto* replica : {a.get(), b.get(), c.get()}) {
    EXPECT_EQ(replica->Stop(SIGTERM), 0) << replica->Output();
  }
}

TEST_F(ReplicasTest, ALeaseShorterThanTwoPollIntervalsIsRefused) {
  ProcessResult refused = RunProcess(FLEETWATCH_BINARY,
                                     {"server", "--host", "127.0.0.1", "--port", "0", "--data-dir",
                                      data_a_.str(), "--no-local-fleet"},
                                     {{"HOME", home_.str()},
                                      {"FLEETWATCH_DATABASE_URL", url_},
                                      {"FLEETWATCH_ENCRYPTION_KEY", std::string(64, 'a')},
                                      {"FLEETWATCH_POLL_INTERVAL_MS", "1000"},
                                      {"FLEETWATCH_LEASE_SECONDS", "1"}});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("FLEETWATCH_LEASE_SECONDS (1 s) must be at least twice the poll "
                             "interval (1000 ms)"),
            std::string::npos)
      << refused.err;
  // Nothing registered.
  EXPECT_EQ(QueryColumn(url_, "SELECT COUNT(*) FROM replicas"), std::vector<std::string>{"0"});
}

}  // namespace
}  // namespace fleetwatch::testing
