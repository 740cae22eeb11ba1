// GPU health and utilization policies end to end: the real server polling a real agent on the
// fake NVML (readings set through its file, XIDs injected through its event file).
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
const std::filesystem::path kSource = FLEETWATCH_SOURCE_DIR;

class GpuHealthTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args = {}) {
    args.push_back("--no-local-fleet");
    server_ = std::make_unique<ServerProcess>(
        data_.str(), home_.str(), kAdminToken, args,
        std::map<std::string, std::string>{{"FLEETWATCH_POLL_INTERVAL_MS", "200"},
                                           {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
                                           {"FLEETWATCH_STOP_GRACE_SECONDS", "2"},
                                           {"DSTACK_ENABLE_PROMETHEUS_METRICS", "1"}});
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
    ASSERT_EQ(admin_->PostJson("/api/projects", {{"name", "ml"}}).status, 201);
  }

  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  // An agent with two fake GPUs whose readings come from `gpus_txt` and XIDs from xids.txt.
  std::unique_ptr<AgentProcess> StartAgent(const std::string& gpus_txt, int port = 0) {
    AgentProcessOptions options = AgentProcessOptions::FakeGpus(2, FAKE_NVML_LIBRARY);
    options.dir = agent_dir_.path();
    options.port = port;
    options.env["FAKE_NVML_XID_FILE"] = xids_.string();
    auto agent = std::make_unique<AgentProcess>(options);
    // The agent writes its own gpus.txt at start; the fake reads the file at every call.
    std::ofstream(agent_dir_.path() / "gpus.txt", std::ios::trunc) << gpus_txt;
    return agent;
  }

  void ApplyFleet(const AgentProcess& agent) {
    const std::string yaml =
        "type: fleet\nname: gpus\nssh_config:\n  tls: false\n  token: " +
        std::string(kTestAgentToken) +
        "\n  hosts:\n    - hostname: 127.0.0.1\n      port: " + std::to_string(agent.port()) + "\n";
    ApiReply r = admin_->Send("POST", "/api/project/ml/fleets", yaml, "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  void Submit(const std::string& yaml) {
    ApiReply r = admin_->Send("POST", "/api/project/ml/runs", yaml, "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  // Polls `get` until `done` holds or `seconds` pass; returns the last value.
  json::value WaitFor(const std::string& path, const std::function<bool(const json::value&)>& done,
                      int seconds = 30) {
    json::value last;
    auto deadline = steady_clock::now() + std::chrono::seconds(seconds);
    while (steady_clock::now() < deadline) {
      ApiReply r = admin_->Get(path);
      last = r.json;
      if (r.status == 200 && done(last)) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << path << " did not get there in " << seconds
                  << " s; last: " << json::serialize(last) << "\n"
                  << server_->Output();
    return last;
  }

  json::value Instance() { return admin_->Get("/api/project/ml/instances").json.at("items").at(0); }

  // GET /metrics, or /metrics/replica, where the GPU health families are: the server's own
  // readings of the hosts it polls.
  std::string Metrics(const std::string& path = "/metrics/replica") {
    ApiReply r = admin_->Get(path);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }

  TempDir data_, home_, agent_dir_;
  std::filesystem::path xids_ = agent_dir_.path() / "xids.txt";
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

constexpr char kIdleGpus[] =
    "NVIDIA A100-SXM4-80GB|GPU-fake-0|85899345920|1073741824|0|power=61000|temp=40\n"
    "NVIDIA A100-SXM4-80GB|GPU-fake-1|85899345920|1073741824|0|power=62000|temp=41\n";

TEST_F(GpuHealthTest, AnIdleRunIsTerminatedByItsUtilizationPolicy) {
  std::unique_ptr<AgentProcess> agent = StartAgent(kIdleGpus);
  ASSERT_GT(agent->port(), 0) << agent->Output();
  StartServer();
  ApplyFleet(*agent);
  const auto started = steady_clock::now();
  Submit(
      "type: task\nname: idle\ncommands: ['sleep 600']\nresources: {gpu: 2}\n"
      "utilization_policy: {min_gpu_utilization: 10, time_window: 1m}\n");
  json::value run = WaitFor(
      "/api/project/ml/runs/idle",
      [](const json::value& v) { return Str(v, "status") == "terminated"; }, 180);
  std::printf("terminated after %.1f s (window 60 s)\n",
              std::chrono::duration<double>(steady_clock::now() - started).count());
  const json::value& job = run.at("jobs").at(0);
  EXPECT_EQ(Str(job, "termination_reason"), "terminated_due_to_utilization_policy");
  EXPECT_EQ(Str(job, "status_message"), "terminated (GPUs 0,1 stayed below 10 % for 1m (max 0 %))");
  // It counts like any termination.
  const std::string body = Metrics("/metrics");
  EXPECT_NE(body.find("dstack_run_count_terminated_total{dstack_project_name=\"ml\""),
            std::string::npos)
      << body;
}

TEST_F(GpuHealthTest, AnUnhealthyGpuIsShownExportedAndSkippedAndCountersSurviveAnAgentRestart) {
  std::unique_ptr<AgentProcess> agent = StartAgent(kIdleGpus);
  ASSERT_GT(agent->port(), 0) << agent->Output();
  const int port = agent->port();
  StartServer();
  ApplyFleet(*agent);
  WaitFor("/api/project/ml/instances", [](const json::value& v) {
    const json::value& i = v.at("items").at(0);
    return i.at("health").is_object() && Str(i.at("health"), "status") == "healthy";
  });
  std::ofstream(xids_, std::ios::app) << "1 79\n";
  json::value list = WaitFor("/api/project/ml/instances", [](const json::value& v) {
    const json::value& h = v.at("items").at(0).at("health");
    return h.is_object() && Str(h, "status") == "unhealthy";
  });
  const json::value& health = list.at("items").at(0).at("health");
  EXPECT_EQ(Str(health, "reason"), "GPU 1: XID 79 (GPU has fallen off the bus; action reboot)");
  EXPECT_EQ(Str(health, "last_event"), "XID 79 on GPU 1: GPU has fallen off the bus");
  EXPECT_FALSE(Str(health, "last_event_at").empty());

  // A run that needs one GPU gets GPU 0; then one that needs both waits and says why.
  Submit(
      "type: task\nname: one\ncommands: ['sleep 600']\n"
      "resources: {gpu: 1}\n");
  WaitFor("/api/project/ml/runs/one",
          [](const json::value& v) { return Str(v, "status") == "running"; });
  EXPECT_EQ(Str(admin_->Get("/api/project/ml/runs/one").json.at("jobs").at(0), "status_message"),
            "running");
  Submit("type: task\nname: both\ncommands: ['sleep 600']\nresources: {gpu: 2}\n");
  json::value both = WaitFor("/api/project/ml/runs/both", [](const json::value& v) {
    return Str(v, "status_message").find("unhealthy") != std::string::npos;
  });
  EXPECT_EQ(Str(both, "status"), "submitted");
  EXPECT_EQ(Str(both, "status_message"),
            "submitted (waiting: 0 of 2 GPUs free on gpus (GPU 1 of gpus-0 is unhealthy: XID 79 "
            "(GPU has fallen off the bus; action reboot)))");

  // The families, checked by an independent parser and promtool.
  std::string body = Metrics();
  const std::string labels =
      R"(dstack_project_name="ml",dstack_fleet_name="gpus",dstack_instance_name="gpus-0")";
  EXPECT_NE(body.find("fleetwatch_gpu_xid_errors_total{" + labels +
                      R"(,gpu="1",xid="79",action="reboot"} 1.0)"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("fleetwatch_gpu_health{" + labels + R"(,gpu="1",status="unhealthy"} 1.0)"),
            std::string::npos);
  EXPECT_NE(body.find("fleetwatch_instance_health{" + labels + R"(,status="unhealthy"} 1.0)"),
            std::string::npos);
  EXPECT_NE(body.find("fleetwatch_gpu_power_watts{" + labels + R"(,gpu="0"} 61.0)"),
            std::string::npos);
  EXPECT_NE(body.find("fleetwatch_gpu_temperature_celsius{" + labels + R"(,gpu="1"} 41.0)"),
            std::string::npos);
  ProcessResult parsed = RunProcess(
      "/usr/bin/python3",
      {(kSource / "tests/integration/tools/parse_exposition.py").string(), "text"}, {}, body);
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err;
  if (std::filesystem::exists("/usr/bin/promtool")) {
    ProcessResult check = RunProcess("/usr/bin/promtool", {"check", "metrics"}, {}, body);
    // Findings only for dstack's own names (its `_count` gauges), never for ours.
    const std::string report = check.out + check.err;
    EXPECT_EQ(report.find("error while linting"), std::string::npos) << report;
    EXPECT_EQ(report.find("parse"), std::string::npos) << report;
    EXPECT_EQ(report.find("fleetwatch_"), std::string::npos) << report;
  }

  // The agent restarts (after the host was "rebooted": no XIDs any more). Its counts start from
  // zero; the exported counter does not go back, and the GPU is healthy again.
  for (const char* run : {"both", "one"}) {
    admin_->PostJson(std::string("/api/project/ml/runs/") + run + "/stop", {{"abort", true}});
    WaitFor(std::string("/api/project/ml/runs/") + run,
            [](const json::value& v) { return Str(v, "status") == "terminated"; });
  }
  agent->Stop(SIGKILL);
  std::ofstream(xids_, std::ios::trunc).flush();
  agent = StartAgent(kIdleGpus, port);
  ASSERT_GT(agent->port(), 0) << agent->Output();
  WaitFor(
      "/api/project/ml/instances",
      [](const json::value& v) {
        const json::value& h = v.at("items").at(0).at("health");
        return h.is_object() && Str(h, "status") == "healthy";
      },
      60);
  body = Metrics();
  EXPECT_NE(body.find("fleetwatch_gpu_xid_errors_total{" + labels +
                      R"(,gpu="1",xid="79",action="reboot"} 1.0)"),
            std::string::npos)
      << body;
}

TEST_F(GpuHealthTest, UnderAvoidADegradedGpuTakesNoNewJob) {
  // GPU 0 slows down for heat (hw_thermal_slowdown, bit 6): degraded.
  std::unique_ptr<AgentProcess> agent = StartAgent(
      "NVIDIA A100-SXM4-80GB|GPU-fake-0|85899345920|1073741824|0|throttle=64\n"
      "NVIDIA A100-SXM4-80GB|GPU-fake-1|85899345920|1073741824|0\n");
  ASSERT_GT(agent->port(), 0) << agent->Output();
  StartServer({"--degraded-gpus=avoid"});
  ApplyFleet(*agent);
  json::value list = WaitFor("/api/project/ml/instances", [](const json::value& v) {
    const json::value& h = v.at("items").at(0).at("health");
    return h.is_object() && Str(h, "status") == "degraded";
  });
  EXPECT_EQ(Str(list.at("items").at(0).at("health"), "reason"),
            "GPU 0: throttled: hw_thermal_slowdown");
  Submit(
      "type: task\nname: one\ncommands: ['echo gpu=$CUDA_VISIBLE_DEVICES']\n"
      "resources: {gpu: 1}\n");
  WaitFor("/api/project/ml/runs/one",
          [](const json::value& v) { return Str(v, "status") == "done"; });
  EXPECT_EQ(admin_->Get("/api/project/ml/runs/one/logs").body, "gpu=1\n");
  Submit("type: task\nname: both\ncommands: ['true']\nresources: {gpu: 2}\n");
  json::value both = WaitFor("/api/project/ml/runs/both", [](const json::value& v) {
    return Str(v, "status_message").find("degraded") != std::string::npos;
  });
  EXPECT_EQ(Str(both, "status_message"),
            "submitted (waiting: 1 of 2 GPUs free on gpus (GPU 0 of gpus-0 is degraded: "
            "throttled: hw_thermal_slowdown))");
  admin_->PostJson("/api/project/ml/runs/both/stop", {{"abort", true}});
}

TEST_F(GpuHealthTest, ABadDegradedGpusPolicyRefusesToStartAndMakesNothing) {
  const std::filesystem::path data = data_.path() / "never";
  for (const auto& [args, env] :
       std::vector<std::pair<std::vector<std::string>, std::map<std::string, std::string>>>{
           {{"--degraded-gpus", "sometimes"}, {}},
           {{}, {{"FLEETWATCH_DEGRADED_GPUS", "sometimes"}}}}) {
    std::vector<std::string> argv = {"server", "--port", "0", "--data-dir", data.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> full_env = env;
    full_env["HOME"] = home_.str();
    ProcessResult r = RunProcess(FLEETWATCH_BINARY, argv, full_env, "", 60);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("--degraded-gpus"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("sometimes"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(data));
  }
}

}  // namespace
}  // namespace fleetwatch::testing
