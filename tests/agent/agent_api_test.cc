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
constexpr char kCgroupGroup[] = "fleetwatch-api-test";
const std::filesystem::path kTestdata = AGENT_TESTDATA_DIR;

struct Reply {
  int status = 0;
  std::string body;
  json::value json;
  http::Response response;
};

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(OpenNvmlBackend(FAKE_NVML_LIBRARY)); }

  // Without `cgroup_root` jobs run without cgroups (the runtime tests cover real ones).
  void Build(std::unique_ptr<GpuBackend> gpus,
             std::optional<std::filesystem::path> cgroup_root = std::nullopt) {
    api_.reset();
    runtime_.reset();
    gpus_ = std::move(gpus);
    ProcessJobRuntimeOptions options;
    options.data_dir = data_.path();
    options.use_cgroups = cgroup_root.has_value();
    if (cgroup_root) {
      options.cgroup_root = *cgroup_root;
      options.cgroup_group = kCgroupGroup;
    }
    options.gpu_vendor = HostGpuVendor(*gpus_);
    runtime_ = NewProcessJobRuntime(options, clock_);
    api_ = std::make_unique<AgentApi>(AgentIdentity{"agent-1", 1000, kToken, metrics_token_},
                                      CollectInventory(*gpus_, CgroupMode::kNone), *runtime_,
                                      *gpus_, clock_);
  }

  std::optional<std::string> metrics_token_;

  // The "jobs" entry of a poll reply for `job_id` (null when absent).
  static json::value JobOf(const Reply& poll, const std::string& job_id) {
    for (const auto& job : poll.json.at("jobs").as_array()) {
      if (job.at("job_id").as_string() == job_id) return job;
    }
    return nullptr;
  }

  void SetGpus(const std::string& lines) { WriteFile(dir_.path() / "gpus.txt", lines); }

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
           std::nullopt, "Bearer wrong", "Bearer ", kToken, std::string("Basic ") + kToken,
           std::string("Bearer ") + kToken + "x", std::string("Bearer ") + kToken + " junk"}) {
    Reply r = Send("GET", "/api/healthcheck", "", auth);
    EXPECT_EQ(r.status, 401) << auth.value_or("<none>");
    EXPECT_EQ(r.json.at("error").at("code").as_string(), "unauthenticated");
  }
  EXPECT_EQ(Send("POST", "/api/jobs", R"({"job_id":"a","commands":["true"]})", "Bearer x").status,
            401);
  EXPECT_EQ(Send("GET", "/api/nothing-here", "", std::nullopt).status, 401);
  EXPECT_TRUE(runtime_->List().empty());
  // The scheme in any case, like the server (http/bearer.h).
  EXPECT_EQ(Send("GET", "/api/healthcheck", "", std::string("bearer ") + kToken).status, 200);
  EXPECT_EQ(Send("GET", "/api/healthcheck", "", std::string("BEARER  ") + kToken).status, 200);
}

TEST_F(AgentApiTest, MetricsAreOpenByDefaultOrNeedTheirOwnToken) {
  Reply open = Send("GET", "/metrics", "", std::nullopt);
  EXPECT_EQ(open.status, 200) << open.body;
  EXPECT_EQ(open.response.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(open.body.find("fleetwatch_agent_info{version=\"0.1.0\",agent_id=\"agent-1\","),
            std::string::npos)
      << open.body;
  EXPECT_NE(open.body.find("fleetwatch_agent_jobs{state=\"running\"} 0.0\n"), std::string::npos);
  EXPECT_NE(open.body.find("fleetwatch_agent_gpus "), std::string::npos);
  EXPECT_EQ(open.body.find("dcgm"), std::string::npos) << "DCGM is off here";
  EXPECT_EQ(Send("POST", "/metrics", "", std::nullopt).status, 405);

  metrics_token_ = "scrape-me";
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY));
  EXPECT_EQ(Send("GET", "/metrics", "", std::nullopt).status, 401);
  EXPECT_EQ(Send("GET", "/metrics").status, 401);  // the agent token is not the metrics token
  EXPECT_EQ(Send("GET", "/metrics", "", "Bearer scrape-me").status, 200);
  // And the metrics token opens nothing else.
  EXPECT_EQ(Send("GET", "/api/healthcheck", "", "Bearer scrape-me").status, 401);
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

TEST_F(AgentApiTest, PollWithMetricsAddsAPointToRunningJobsOnly) {
  ASSERT_EQ(Send("POST", "/api/jobs",
                 R"({"job_id":"gpu","commands":["echo ready","sleep 600"],"gpu_indices":[1]})")
                .status,
            201);
  ASSERT_EQ(Send("POST", "/api/jobs", R"({"job_id":"done","commands":["true"]})").status, 201);
  ASSERT_EQ(WaitForState("done", "exited"), "exited");
  ASSERT_TRUE(WaitUntil([&] { return Log("gpu") == "ready\n"; }));
  SetGpus("GPU A|GPU-a|1000|10|5\nGPU B|GPU-b|1000|600|42\n");
  clock_.Advance(5'000'000);

  Reply poll = Send("GET", "/api/poll?metrics=1");
  ASSERT_EQ(poll.status, 200) << poll.body;
  ASSERT_EQ(poll.json.at("jobs").as_array().size(), 2u);
  json::value done = JobOf(poll, "done");
  ASSERT_TRUE(done.as_object().contains("metrics")) << poll.body;
  EXPECT_TRUE(done.at("metrics").is_null());
  json::value running = JobOf(poll, "gpu");
  ASSERT_TRUE(running.at("metrics").is_object()) << poll.body;
  const json::object& point = running.at("metrics").as_object();
  EXPECT_EQ(point.size(), 5u) << poll.body;
  EXPECT_EQ(point.at("timestamp_micro").as_int64(), 1'700'000'005'000'000);
  EXPECT_GE(point.at("cpu_usage_micro").as_int64(), 0);
  EXPECT_GT(point.at("memory_usage_bytes").as_int64(), 0);  // /proc: resident pages
  EXPECT_EQ(point.at("memory_working_set_bytes"), point.at("memory_usage_bytes"));
  // Exactly GPU 1, not GPU 0 or the host's.
  ASSERT_EQ(point.at("gpus").as_array().size(), 1u);
  const json::object& gpu = point.at("gpus").at(0).as_object();
  EXPECT_EQ(gpu.size(), 2u);
  EXPECT_EQ(gpu.at("gpu_memory_usage_bytes").as_int64(), 600);
  EXPECT_EQ(gpu.at("gpu_util_percent").as_int64(), 42);

  // Taken now: a new reading shows at the next poll.
  SetGpus("GPU A|GPU-a|1000|10|5\nGPU B|GPU-b|1000|900|97\n");
  Reply later = Send("GET", "/api/poll?metrics=1");
  json::value later_gpu = JobOf(later, "gpu").at("metrics").at("gpus").at(0);
  EXPECT_EQ(later_gpu.at("gpu_memory_usage_bytes").as_int64(), 900);
  EXPECT_EQ(later_gpu.at("gpu_util_percent").as_int64(), 97);

  // Without the parameter, or with metrics=0, there is no metrics key at all.
  for (const char* target : {"/api/poll", "/api/poll?metrics=0"}) {
    Reply plain = Send("GET", target);
    ASSERT_EQ(plain.status, 200) << target;
    ASSERT_EQ(plain.json.at("jobs").as_array().size(), 2u) << target;
    for (const auto& job : plain.json.at("jobs").as_array()) {
      EXPECT_FALSE(job.as_object().contains("metrics")) << target << ": " << plain.body;
    }
  }
  for (const char* target : {"/api/poll?metrics=bogus", "/api/poll?metrics=2", "/api/poll?metrics=",
                             "/api/poll?metrics=true", "/api/poll?metrics=01"}) {
    Reply bad = Send("GET", target);
    EXPECT_EQ(bad.status, 400) << target;
    EXPECT_EQ(bad.json.at("error").at("code").as_string(), "invalid_argument") << target;
  }
}

// An API built without a DcgmExporter is a host with DCGM off (the exporter's own behaviour is
// in dcgm_exporter_test.cc).
TEST_F(AgentApiTest, PollWithDcgmIsNullWhenDcgmIsOff) {
  ASSERT_EQ(Send("POST", "/api/jobs", R"({"job_id":"j","commands":["sleep 600"]})").status, 201);
  for (const char* target : {"/api/poll?metrics=1&dcgm=1", "/api/poll?dcgm=1",
                             "/api/poll?metrics=1&dcgm=1&dcgm_raw=1"}) {
    Reply poll = Send("GET", target);
    ASSERT_EQ(poll.status, 200) << target << ": " << poll.body;
    ASSERT_TRUE(poll.json.as_object().contains("dcgm")) << target << ": " << poll.body;
    EXPECT_TRUE(poll.json.at("dcgm").is_null()) << target << ": " << poll.body;
    EXPECT_EQ(poll.json.at("jobs").as_array().size(), 1u);
  }
  for (const char* target : {"/api/poll", "/api/poll?metrics=1", "/api/poll?metrics=1&dcgm=0"}) {
    Reply poll = Send("GET", target);
    ASSERT_EQ(poll.status, 200) << target;
    EXPECT_FALSE(poll.json.as_object().contains("dcgm")) << target << ": " << poll.body;
  }
  for (const char* target : {"/api/poll?dcgm=2", "/api/poll?metrics=1&dcgm=", "/api/poll?dcgm=yes",
                             "/api/poll?metrics=1&dcgm=1&dcgm_raw=2"}) {
    Reply bad = Send("GET", target);
    EXPECT_EQ(bad.status, 400) << target;
    EXPECT_EQ(bad.json.at("error").at("code").as_string(), "invalid_argument") << target;
    EXPECT_NE(std::string(bad.json.at("error").at("message").as_string()).find("dcgm"),
              std::string::npos);
  }
  ASSERT_EQ(Send("POST", "/api/jobs/j/stop", R"({"grace_seconds": 0})").status, 200);
}

TEST_F(AgentApiTest, AGpuThatCannotBeSampledReportsZeros) {
  ASSERT_EQ(Send("POST", "/api/jobs",
                 R"({"job_id":"two","commands":["echo ready","sleep 600"],"gpu_indices":[1,0]})")
                .status,
            201);
  ASSERT_TRUE(WaitUntil([&] { return Log("two") == "ready\n"; }));
  SetGpus("GPU A|GPU-a|1000|300|30\n");  // GPU 1 is gone: NVML reports no such device
  Reply poll = Send("GET", "/api/poll?metrics=1");
  ASSERT_EQ(poll.status, 200) << poll.body;
  json::value metrics = JobOf(poll, "two").at("metrics");
  ASSERT_TRUE(metrics.is_object()) << poll.body;
  EXPECT_GT(metrics.at("memory_usage_bytes").as_int64(), 0);
  const json::array& gpus = metrics.at("gpus").as_array();
  ASSERT_EQ(gpus.size(), 2u) << poll.body;  // in the order of gpu_indices: 1, then 0
  EXPECT_EQ(gpus[0].at("gpu_memory_usage_bytes").as_int64(), 0);
  EXPECT_EQ(gpus[0].at("gpu_util_percent").as_int64(), 0);
  EXPECT_EQ(gpus[1].at("gpu_memory_usage_bytes").as_int64(), 300);
  EXPECT_EQ(gpus[1].at("gpu_util_percent").as_int64(), 30);
}

// The v2 reading path end to end: the runtime's cgroup root is a fixture tree (named by
// $FLEETWATCH_CGROUP_ROOT, as the agent does) whose job directory holds v2 usage files.
TEST_F(AgentApiTest, MetricsFromACgroupV2TreeAndNullWhenItsFilesAreGone) {
  TempDir root;
  WriteFile(root.path() / "cgroup.controllers", "cpu memory\n");
  testing::ScopedEnv env("FLEETWATCH_CGROUP_ROOT", root.path().string());
  const std::filesystem::path job_dir = root.path() / kCgroupGroup / "v2job";
  WriteFile(job_dir / "cgroup.procs", "");  // the job's process "joins" by writing to it
  for (const char* file : {"cpu.stat", "memory.current", "memory.stat"}) {
    std::filesystem::copy_file(kTestdata / "cgroup_v2" / file, job_dir / file);
  }
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY), DefaultCgroupRoot());
  ASSERT_EQ(Send("POST", "/api/jobs",
                 R"({"job_id":"v2job","commands":["echo ready","sleep 600"],"gpu_indices":[0]})")
                .status,
            201);
  ASSERT_TRUE(WaitUntil([&] { return Log("v2job") == "ready\n"; })) << Log("v2job");

  Reply poll = Send("GET", "/api/poll?metrics=1");
  ASSERT_EQ(poll.status, 200) << poll.body;
  json::value metrics = JobOf(poll, "v2job").at("metrics");
  ASSERT_TRUE(metrics.is_object()) << poll.body;
  EXPECT_EQ(metrics.at("timestamp_micro").as_int64(), clock_.Now());
  EXPECT_EQ(metrics.at("cpu_usage_micro").as_int64(), 1234567);            // usage_usec
  EXPECT_EQ(metrics.at("memory_usage_bytes").as_int64(), 104857600);       // memory.current
  EXPECT_EQ(metrics.at("memory_working_set_bytes").as_int64(), 74857600);  // - inactive_file
  ASSERT_EQ(metrics.at("gpus").as_array().size(), 1u);
  EXPECT_EQ(metrics.at("gpus").at(0).at("gpu_memory_usage_bytes").as_int64(), 0);

  // The job's cgroup files cannot be read right now: its point is null, the poll still works.
  std::filesystem::remove(job_dir / "memory.stat");
  Reply unreadable = Send("GET", "/api/poll?metrics=1");
  ASSERT_EQ(unreadable.status, 200) << unreadable.body;
  EXPECT_EQ(JobOf(unreadable, "v2job").at("state").as_string(), "running");
  EXPECT_TRUE(JobOf(unreadable, "v2job").at("metrics").is_null()) << unreadable.body;

  ASSERT_EQ(Send("POST", "/api/jobs/v2job/stop", R"({"grace_seconds": 0})").status, 200);
  ASSERT_EQ(WaitForState("v2job", "exited"), "exited");
  // Empty the fake cgroup so that it can be removed like a real one.
  for (const auto& entry : std::filesystem::directory_iterator(job_dir)) {
    std::filesystem::remove(entry.path());
  }
  EXPECT_EQ(Send("DELETE", "/api/jobs/v2job").status, 200);
  EXPECT_FALSE(std::filesystem::exists(job_dir));
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
