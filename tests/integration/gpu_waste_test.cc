// The GPU state ledger end to end: a real server runs a real job on its local fleet (fake NVML
// GPUs at the hardware edge: one busy, one idle with no memory in use), and /metrics, the run
// API, the waste API and `fleetwatch waste` all show the idle half.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";

class GpuWasteIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // GPU 0 at 90 % with 1 GiB used; GPU 1 at 0 % with nothing used.
    WriteFile(dir_.path() / "gpus.txt",
              "NVIDIA H100 80GB HBM3|GPU-0|85899345920|1073741824|90\n"
              "NVIDIA H100 80GB HBM3|GPU-1|85899345920|0|0\n");
    StartServer();
  }

  void TearDown() override {
    // A SIGKILLed server leaves its local agent running, by design.
    if (server_) server_->StopLeftoverLocalAgent();
  }

  // Starts the server on the test's data dir (again, after a kill).
  void StartServer() {
    server_ = std::make_unique<ServerProcess>(
        (dir_.path() / "data").string(), home_.str(), kAdminToken, std::vector<std::string>{},
        std::map<std::string, std::string>{
            {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
            {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
            {"FLEETWATCH_NVML_LIBRARY", FAKE_NVML_LIBRARY},
            {"FAKE_NVML_FILE", (dir_.path() / "gpus.txt").string()},
            {"DSTACK_ENABLE_PROMETHEUS_METRICS", ""},
        });
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
  }

  std::string Scrape() {
    ApiReply r = ApiClient(server_->url(), "").Get("/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }

  // The client, configured as the admin on project main.
  ProcessResult Cli(const std::vector<std::string>& args) {
    std::map<std::string, std::string> env = {{"HOME", client_home_.str()},
                                              {"COLUMNS", "200"},
                                              {"FLEETWATCH_URL", server_->url()},
                                              {"FLEETWATCH_TOKEN", kAdminToken},
                                              {"FLEETWATCH_PROJECT", "main"}};
    return RunProcess(FLEETWATCH_BINARY, args, env, {}, 60);
  }

  TempDir dir_;
  TempDir home_;
  TempDir client_home_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

// The lines of `body` that belong to families whose name starts with `prefix`.
std::string FamiliesOf(const std::string& body, const std::string& prefix) {
  std::istringstream lines(body);
  std::string line, out;
  while (std::getline(lines, line)) {
    std::string name = line;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) name = line.substr(7);
    if (name.rfind(prefix, 0) == 0) out += line + "\n";
  }
  return out;
}

double SampleValue(const std::string& body, const std::string& series) {
  size_t at = body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + series.size() + 2));
}

TEST_F(GpuWasteIntegrationTest, AnIdleHalfOfAJobsGpusShowsInMetricsApiAndCli) {
  ApiReply submitted =
      admin_->Send("POST", "/api/project/main/runs",
                   "type: task\nname: train\ncommands: ['sleep 300']\nresources: {gpu: 2}\n",
                   "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;

  const std::string gpu = R"(dstack_project_name="main",dstack_fleet_name="local",)"
                          R"(dstack_instance_name="local-0",dstack_gpu="H100",gpu=")";
  const std::string busy = "fleetwatch_gpu_state_seconds_total{" + gpu + R"(0",state="busy"})";
  const std::string idle =
      "fleetwatch_gpu_state_seconds_total{" + gpu + R"(1",state="reserved_idle"})";
  std::string body;
  ASSERT_TRUE(WaitUntil([&] {
    body = Scrape();
    return SampleValue(body, idle) > 0 && SampleValue(body, busy) > 0 &&
           body.find("fleetwatch_run_gpu_idle_ratio{") != std::string::npos &&
           body.find("fleetwatch_project_gpu_idle_seconds_total{") != std::string::npos;
  })) << body
      << "\n"
      << server_->Output();

  // The GPU being idle never counts as busy, and the other way round.
  EXPECT_EQ(SampleValue(
                body, "fleetwatch_gpu_state_seconds_total{" + gpu + R"(0",state="reserved_idle"})"),
            0);
  EXPECT_EQ(SampleValue(body, "fleetwatch_gpu_state_seconds_total{" + gpu + R"(1",state="busy"})"),
            0);
  // Both GPUs were held for the same intervals, one of them idle: exactly half.
  const std::string ratio_series =
      std::string(
          R"(fleetwatch_run_gpu_idle_ratio{dstack_project_name="main",dstack_user_name="admin",)"
          R"(dstack_run_name="train",dstack_run_id=")") +
      std::string(submitted.json.at("id").as_string()) + R"(",dstack_run_type="task"})";
  EXPECT_EQ(SampleValue(body, ratio_series), 0.5) << body;

  // promtool finds nothing wrong with the ledger's families, not even a warning.
  const std::string ours = FamiliesOf(body, "fleetwatch_gpu_state_") +
                           FamiliesOf(body, "fleetwatch_run_gpu_idle_") +
                           FamiliesOf(body, "fleetwatch_project_");
  ProcessResult check = RunProcess("/usr/bin/promtool", {"check", "metrics"}, {}, ours);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << ours;
  ProcessResult whole = RunProcess("/usr/bin/promtool", {"check", "metrics"}, {}, body);
  EXPECT_TRUE(whole.exit_code == 0 || whole.exit_code == 3) << whole.out << whole.err;

  // The run API carries the idle share.
  ApiReply run = admin_->Get("/api/project/main/runs/train");
  ASSERT_EQ(run.status, 200) << run.body;
  EXPECT_EQ(run.json.at("gpu_idle_ratio").to_number<double>(), 0.5) << run.body;
  EXPECT_GE(run.json.at("idle_cost").to_number<double>(), 0.0);
  ApiReply list = admin_->Get("/api/project/main/runs");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json.at("items").as_array()[0].at("gpu_idle_ratio").to_number<double>(), 0.5);

  // The waste API: per run, per project and server-wide, from the persisted hours.
  ApiReply by_run = admin_->Get("/api/project/main/waste?since=1d&by=run");
  ASSERT_EQ(by_run.status, 200) << by_run.body;
  const json::array& items = by_run.json.at("items").as_array();
  ASSERT_EQ(items.size(), 1u) << by_run.body;
  EXPECT_EQ(items[0].at("run_name").as_string(), "train");
  EXPECT_EQ(items[0].at("user_name").as_string(), "admin");
  EXPECT_GT(items[0].at("held_seconds").to_number<double>(), 0);
  EXPECT_EQ(items[0].at("idle_ratio").to_number<double>(), 0.5);
  EXPECT_EQ(by_run.json.at("total").at("idle_ratio").to_number<double>(), 0.5);
  ApiReply all = admin_->Get("/api/waste");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.json.at("by").as_string(), "project");
  EXPECT_EQ(all.json.at("items").as_array().size(), 1u);

  // Bad input: a clear 400 naming the parameter.
  for (const char* bad : {"/api/project/main/waste?since=garbage", "/api/waste?since=-3d",
                          "/api/project/main/waste?by=garbage", "/api/waste?by="}) {
    ApiReply r = admin_->Get(bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    const std::string message(r.json.at("error").at("message").as_string());
    EXPECT_TRUE(message.find("'since'") != std::string::npos ||
                message.find("'by'") != std::string::npos)
        << message;
  }
  // Another project's waste is not anyone's business but its members'.
  ApiReply user = admin_->Send("POST", "/api/users", R"({"name": "bob"})", "application/json");
  ASSERT_EQ(user.status, 201) << user.body;
  ApiClient bob(server_->url(), std::string(user.json.at("token").as_string()));
  EXPECT_EQ(bob.Get("/api/project/main/waste").status, 403);
  EXPECT_EQ(bob.Get("/api/waste").status, 403);

  // The client: a table with a total line; a bad --since is one clear error line.
  ProcessResult table = Cli({"waste", "--since", "7d", "--by", "run"});
  ASSERT_EQ(table.exit_code, 0) << table.out << table.err;
  std::istringstream lines(table.out);
  std::string header, row, total;
  std::getline(lines, header);
  std::getline(lines, row);
  std::getline(lines, total);
  EXPECT_EQ(header.rfind("PROJECT  USER   RUN    GPU HOURS  IDLE HOURS  IDLE %  IDLE COST", 0), 0u)
      << table.out;
  EXPECT_EQ(row.rfind("main     admin  train  ", 0), 0u) << table.out;
  EXPECT_NE(row.find("  50%  "), std::string::npos) << table.out;
  EXPECT_EQ(total.rfind("total", 0), 0u) << table.out;
  ProcessResult ps = Cli({"ps"});
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  EXPECT_NE(ps.out.find("IDLE COST"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("50%"), std::string::npos) << ps.out;
  ProcessResult bad = Cli({"waste", "--since", "garbage"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("'since'"), std::string::npos) << bad.err;
}

// Every sample of the persisted GPU-time families (per GPU state, idle seconds and idle dollars
// per project and user), by series.
std::map<std::string, double> LedgerSamples(const std::string& body) {
  std::map<std::string, double> samples;
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("fleetwatch_gpu_state_seconds_total{", 0) != 0 &&
        line.rfind("fleetwatch_project_gpu_idle_seconds_total{", 0) != 0 &&
        line.rfind("fleetwatch_project_idle_cost_dollars_total{", 0) != 0) {
      continue;
    }
    const size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

// The counters never go backwards when the server is SIGKILLed: what was charged is persisted
// with the time it covers, and the restarted server goes on from there.
TEST_F(GpuWasteIntegrationTest, NoCounterDecreasesAcrossASigkillOfTheServer) {
  ApiReply submitted =
      admin_->Send("POST", "/api/project/main/runs",
                   "type: task\nname: train\ncommands: ['sleep 300']\nresources: {gpu: 2}\n",
                   "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  const std::string busy =
      R"(fleetwatch_gpu_state_seconds_total{dstack_project_name="main",dstack_fleet_name="local",)"
      R"(dstack_instance_name="local-0",dstack_gpu="H100",gpu="0",state="busy"})";
  std::map<std::string, double> before;
  ASSERT_TRUE(WaitUntil([&] {
    before = LedgerSamples(Scrape());
    return before[busy] > 2 && before.size() >= 12;
  })) << server_->Output();

  ASSERT_EQ(server_->Stop(SIGKILL), 128 + SIGKILL);
  StartServer();
  std::map<std::string, double> after;
  ASSERT_TRUE(WaitUntil([&] {
    after = LedgerSamples(Scrape());
    return after[busy] > before[busy] && after.size() >= before.size();
  })) << server_->Output();
  for (const auto& [series, value] : before) {
    ASSERT_TRUE(after.count(series)) << series;
    EXPECT_GE(after[series], value) << series;
  }
}

}  // namespace
}  // namespace fleetwatch::testing
