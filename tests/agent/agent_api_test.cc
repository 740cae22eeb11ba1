// The agent API over a real process runtime, requests handed straight to AgentApi::Handle;
// GPUs come from the fake NVML or a fake AMD sysfs tree.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "agent/agent_api.h"
#include "agent/amd_sysfs_backend.h"
#include "agent/host_gpus.h"
#include "agent/job_env.h"
#include "agent/nvml_backend.h"
#include "agent/process_job_runtime.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace json = boost::json;
using fleetwatch::testing::TempDir;
using testing::WaitUntil;
using testing::WriteFile;

constexpr char kToken[] = "agent-token-for-tests";

struct Reply {
  int status = 0;
  std::string body;
  json::value json;
  http::Response response;
};

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(OpenNvmlBackend(FAKE_NVML_LIBRARY)); }

  void Build(std::unique_ptr<GpuBackend> gpus) {
    api_.reset();
    runtime_.reset();
    gpus_ = std::move(gpus);
    ProcessJobRuntimeOptions options;
    options.data_dir = data_.path();
    options.use_cgroups = false;  // the runtime tests cover cgroups
    options.gpu_vendor = HostGpuVendor(*gpus_);
    options.agent_env = CurrentEnvironment();
    runtime_ = NewProcessJobRuntime(options, clock_);
    api_ =
        std::make_unique<AgentApi>(AgentIdentity{"agent-1", 1000, kToken},
                                   CollectInventory(*gpus_, CgroupMode::kNone), *runtime_, clock_);
  }

  Reply Send(const std::string& method, const std::string& target, const std::string& body = "",
             std::optional<std::string> auth = std::string("Bearer ") + kToken) {
    http::Request request;
    request.method = method;
    request.target = target;
    size_t q = target.find('?');
    request.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string query = target.substr(q + 1);
      size_t pos = 0;
      while (pos <= query.size()) {
        size_t amp = query.find('&', pos);
        std::string pair =
            query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        size_t eq = pair.find('=');
        request.query[pair.substr(0, eq)] = eq == std::string::npos ? "" : pair.substr(eq + 1);
        if (amp == std::string::npos) break;
        pos = amp + 1;
      }
    }
    request.body = body;
    if (auth) request.headers.emplace_back("authorization", *auth);
    Reply reply;
    reply.response = api_->Handle(request);
    reply.status = reply.response.status;
    reply.body = reply.response.body;
    boost::system::error_code ec;
    reply.json = json::parse(reply.body, ec);
    return reply;
  }

  std::string WaitForState(const std::string& job_id, const std::string& state) {
    std::string last;
    WaitUntil([&] {
      Reply poll = Send("GET", "/api/poll");
      for (const auto& job : poll.json.at("jobs").as_array()) {
        if (job.at("job_id").as_string() == job_id) last = job.at("state").as_string().c_str();
      }
      return last == state;
    });
    return last;
  }

  std::string Log(const std::string& job_id) {
    return Send("GET", "/api/jobs/" + job_id + "/logs").body;
  }

  TempDir data_;
  TempDir dir_;
  testing::ScopedEnv nvml_file_{"FAKE_NVML_FILE", (dir_.path() / "gpus.txt").string()};
  bool written_ = [this] {
    WriteFile(dir_.path() / "gpus.txt", "GPU A|GPU-a|1000|0|0\nGPU B|GPU-b|1000|0|0\n");
    return true;
  }();
  FakeClock clock_{1'700'000'000'000'000};
  std::unique_ptr<GpuBackend> gpus_;
  std::unique_ptr<JobRuntime> runtime_;
  std::unique_ptr<AgentApi> api_;
};

TEST_F(AgentApiTest, EveryRouteNeedsTheToken) {
  for (const auto& auth : std::vector<std::optional<std::string>>{
           std::nullopt, "Bearer wrong", "Bearer ", kToken, std::string("bearer ") + kToken,
           std::string("Bearer ") + kToken + "x"}) {
    Reply r = Send("GET", "/api/healthcheck", "", auth);
    EXPECT_EQ(r.status, 401) << auth.value_or("<none>");
    EXPECT_EQ(r.json.at("error").at("code").as_string(), "unauthenticated");
  }
  EXPECT_EQ(Send("POST", "/api/jobs", R"({"job_id":"a","commands":["true"]})", "Bearer x").status,
            401);
  EXPECT_EQ(Send("GET", "/api/nothing-here", "", std::nullopt).status, 401);
  EXPECT_TRUE(runtime_->List().empty());
}

TEST_F(AgentApiTest, HealthcheckAndInventory) {
  Reply health = Send("GET", "/api/healthcheck");
  ASSERT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(health.json.at("service").as_string(), "fleetwatch-agent");
  EXPECT_EQ(health.json.at("version").as_string(), "0.1.0");
  EXPECT_EQ(health.json.at("agent_id").as_string(), "agent-1");
  EXPECT_EQ(health.json.at("started_at").as_int64(), 1000);

  Reply inventory = Send("GET", "/api/inventory");
  ASSERT_EQ(inventory.status, 200);
  EXPECT_EQ(inventory.json.at("agent_id").as_string(), "agent-1");
  EXPECT_GE(inventory.json.at("cpus").as_int64(), 1);
  EXPECT_GT(inventory.json.at("memory_bytes").as_int64(), 0);
  EXPECT_EQ(inventory.json.at("cgroup").as_string(), "none");
  const auto& gpus = inventory.json.at("gpus").as_array();
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(gpus[1].at("index").as_int64(), 1);
  EXPECT_EQ(gpus[1].at("name").as_string(), "GPU B");
  EXPECT_EQ(gpus[1].at("uuid").as_string(), "GPU-b");
  EXPECT_EQ(gpus[1].at("memory_bytes").as_int64(), 1000);
  EXPECT_EQ(gpus[1].at("vendor").as_string(), "nvidia");
  EXPECT_EQ(Send("GET", "/api/nothing-here").status, 404);
  EXPECT_EQ(Send("DELETE", "/api/inventory").status, 405);
}

TEST_F(AgentApiTest, StartPollLogsStopAcknowledge) {
  Reply started =
      Send("POST", "/api/jobs",
           R"({"job_id":"job-1","run_name":"train","commands":["echo hello","sleep 600"],
                           "gpu_indices":[1],"memory_bytes":null})");
  ASSERT_EQ(started.status, 201) << started.body;
  EXPECT_EQ(started.json.at("job_id").as_string(), "job-1");
  EXPECT_EQ(started.json.at("state").as_string(), "running");
  EXPECT_GT(started.json.at("pid").as_int64(), 0);
  EXPECT_EQ(started.json.at("started_at").as_int64(), 1'700'000'000'000'000);

  Reply again = Send("POST", "/api/jobs", R"({"job_id":"job-1","commands":["echo other"]})");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json.at("pid"), started.json.at("pid"));

  ASSERT_TRUE(WaitUntil([&] { return Log("job-1") == "hello\n"; })) << Log("job-1");
  Reply logs = Send("GET", "/api/jobs/job-1/logs?offset=1&limit=3");
  EXPECT_EQ(logs.status, 200);
  EXPECT_EQ(logs.body, "ell");
  EXPECT_EQ(logs.response.content_type, "application/octet-stream");
  ASSERT_EQ(logs.response.headers.size(), 1u);
  EXPECT_EQ(logs.response.headers[0].first, "X-Log-Size");
  EXPECT_EQ(logs.response.headers[0].second, "6");

  Reply poll = Send("GET", "/api/poll");
  ASSERT_EQ(poll.status, 200);
  EXPECT_EQ(poll.json.at("agent_id").as_string(), "agent-1");
  EXPECT_EQ(poll.json.at("now").as_int64(), 1'700'000'000'000'000);
  ASSERT_EQ(poll.json.at("jobs").as_array().size(), 1u);
  const auto& job = poll.json.at("jobs").at(0);
  for (const char* key : {"job_id", "state", "pid", "exit_code", "signal", "stop_requested",
                          "started_at", "finished_at", "error"}) {
    EXPECT_TRUE(job.as_object().contains(key)) << key;
  }

  Reply busy = Send("DELETE", "/api/jobs/job-1");
  EXPECT_EQ(busy.status, 409);
  EXPECT_EQ(busy.json.at("error").at("code").as_string(), "failed_precondition");

  Reply stopping = Send("POST", "/api/jobs/job-1/stop", R"({"grace_seconds": 5})");
  EXPECT_EQ(stopping.status, 200) << stopping.body;
  EXPECT_TRUE(stopping.json.at("stop_requested").as_bool());
  EXPECT_EQ(WaitForState("job-1", "exited"), "exited");
  Reply ended = Send("POST", "/api/jobs/job-1/stop");  // idempotent, empty body
  EXPECT_EQ(ended.status, 200);
  EXPECT_EQ(ended.json.at("signal").as_int64(), 15);
  EXPECT_TRUE(ended.json.at("exit_code").is_null());

  EXPECT_EQ(Send("DELETE", "/api/jobs/job-1").status, 200);
  EXPECT_TRUE(Send("GET", "/api/poll").json.at("jobs").as_array().empty());
  EXPECT_EQ(Send("GET", "/api/jobs/job-1/logs").status, 404);
}

TEST_F(AgentApiTest, NvidiaVisibilityFromTheFakeNvml) {
  ASSERT_EQ(Send("POST", "/api/jobs",
                 R"({"job_id":"env","run_name":"r","commands":["env"],"gpu_indices":[1]})")
                .status,
            201);
  ASSERT_EQ(WaitForState("env", "exited"), "exited");
  std::string log = Log("env");
  EXPECT_NE(log.find("\nCUDA_VISIBLE_DEVICES=1\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nNVIDIA_VISIBLE_DEVICES=1\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nDSTACK_RUN_NAME=r\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nDSTACK_GPUS_NUM=1\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("ROCR_VISIBLE_DEVICES"), std::string::npos) << log;
}

TEST_F(AgentApiTest, AmdVisibilityFromAFakeSysfsTree) {
  TempDir sysfs;
  for (const char* card : {"card0", "card1"}) {
    WriteFile(sysfs.path() / "class" / "drm" / card / "device" / "vendor", "0x1002\n");
  }
  Build(OpenHostGpuBackend("/nonexistent/libnvidia-ml.so.1", sysfs.path()));
  ASSERT_EQ(Send("POST", "/api/jobs", R"({"job_id":"amd","commands":["env"],"gpu_indices":[0,1]})")
                .status,
            201);
  ASSERT_EQ(WaitForState("amd", "exited"), "exited");
  std::string log = Log("amd");
  EXPECT_NE(log.find("\nROCR_VISIBLE_DEVICES=0,1\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nHIP_VISIBLE_DEVICES=0,1\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("CUDA_VISIBLE_DEVICES"), std::string::npos) << log;
  EXPECT_EQ(
      Send("POST", "/api/jobs", R"({"job_id":"x","commands":["env"],"gpu_indices":[2]})").status,
      400);
}

TEST_F(AgentApiTest, FailedToStartIsCreatedWithItsError) {
  Reply r = Send("POST", "/api/jobs",
                 R"({"job_id":"nodir","commands":["true"],"working_dir":"/nonexistent"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json.at("state").as_string(), "failed_to_start");
  EXPECT_NE(std::string(r.json.at("error").as_string()).find("/nonexistent"), std::string::npos);
  EXPECT_TRUE(r.json.at("pid").is_null());
}

TEST_F(AgentApiTest, BadBodiesAndParametersAre400AndChangeNothing) {
  for (const char* body :
       {"", "not json", "[]", R"({"job_id":"a"})", R"({"job_id":"a b","commands":["x"]})",
        R"({"job_id":"a","commands":["x"],"extra":1})",
        R"({"job_id":"a","commands":["x"],"gpu_indices":[0,0]})",
        R"({"job_id":"a","commands":["x"],"env":{"BAD NAME":"x"}})"}) {
    Reply r = Send("POST", "/api/jobs", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.json.at("error").at("code").as_string(), "invalid_argument") << body;
  }
  EXPECT_TRUE(runtime_->List().empty());
  ASSERT_EQ(Send("POST", "/api/jobs", R"({"job_id":"ok","commands":["true"]})").status, 201);
  EXPECT_EQ(Send("POST", "/api/jobs/ok/stop", R"({"grace_seconds": 9999})").status, 400);
  EXPECT_EQ(Send("POST", "/api/jobs/ok/stop", "nope").status, 400);
  EXPECT_EQ(Send("GET", "/api/jobs/ok/logs?offset=-1").status, 400);
  EXPECT_EQ(Send("GET", "/api/jobs/ok/logs?limit=abc").status, 400);
  EXPECT_EQ(Send("GET", "/api/jobs/ok/logs?offset=").status, 400);
}

TEST_F(AgentApiTest, UnknownJobsAre404) {
  EXPECT_EQ(Send("POST", "/api/jobs/ghost/stop").status, 404);
  EXPECT_EQ(Send("GET", "/api/jobs/ghost/logs").status, 404);
  Reply r = Send("DELETE", "/api/jobs/ghost");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json.at("error").at("code").as_string(), "not_found");
}

}  // namespace
}  // namespace fleetwatch::agent
