// Validation of start and stop bodies: every kind of bad input is a clear 400, never a crash.
#include <gtest/gtest.h>

#include "agent/agent_json.h"

namespace fleetwatch::agent {
namespace {

std::vector<model::Gpu> TwoGpus() {
  model::Gpu a, b;
  a.index = 0;
  b.index = 1;
  a.vendor = b.vendor = "nvidia";
  return {a, b};
}

TEST(StartJobRequest, FullBodyParses) {
  Result<JobSpec> spec = ParseStartJobRequest(
      R"({"job_id": "abc-1", "job_name": "train-0-0", "run_name": "train",
          "commands": ["echo 1", "echo 2"], "env": {"K": "V", "_x1": ""}, "working_dir": "/tmp",
          "gpu_indices": [1, 0], "cpus": 2.5, "memory_bytes": 68719476736,
          "cluster": {"nodes_num": 2, "node_rank": 1, "master_node_ip": "10.0.0.1",
                      "nodes_ips": ["10.0.0.1", "10.0.0.2"], "gpus_per_node": 2}})",
      TwoGpus());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->job_id, "abc-1");
  EXPECT_EQ(spec->job_name, "train-0-0");
  EXPECT_EQ(spec->run_name, "train");
  EXPECT_EQ(spec->commands, (std::vector<std::string>{"echo 1", "echo 2"}));
  EXPECT_EQ(spec->env.at("K"), "V");
  EXPECT_EQ(spec->working_dir, "/tmp");
  EXPECT_EQ(spec->gpu_indices, (std::vector<int>{1, 0}));
  EXPECT_EQ(spec->cpus, 2.5);
  EXPECT_EQ(spec->memory_bytes, 68719476736);
  EXPECT_EQ(spec->cluster.nodes_num, 2);
  EXPECT_EQ(spec->cluster.node_rank, 1);
  EXPECT_EQ(spec->cluster.nodes_ips.size(), 2u);
  EXPECT_EQ(spec->cluster.gpus_per_node, 2);
}

TEST(StartJobRequest, MinimalBodyAndNulls) {
  Result<JobSpec> spec = ParseStartJobRequest(
      R"({"job_id": "a", "commands": ["true"], "env": null, "working_dir": null,
          "gpu_indices": null, "memory_bytes": null, "cpus": null, "cluster": null})",
      {});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_FALSE(spec->memory_bytes.has_value());
  EXPECT_FALSE(spec->working_dir.has_value());
  EXPECT_TRUE(spec->gpu_indices.empty());
  EXPECT_EQ(spec->cluster.nodes_num, 1);
}

struct BadBody {
  const char* body;
  const char* message_part;
};

class BadStartBody : public ::testing::TestWithParam<BadBody> {};

TEST_P(BadStartBody, IsRefusedWithAClearMessage) {
  Result<JobSpec> spec = ParseStartJobRequest(GetParam().body, TwoGpus());
  ASSERT_FALSE(spec.ok()) << GetParam().body;
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find(GetParam().message_part), std::string::npos)
      << spec.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, BadStartBody,
    ::testing::Values(
        BadBody{"", "malformed JSON"}, BadBody{"{", "malformed JSON"},
        BadBody{"[1]", "must be a JSON object"}, BadBody{"null", "must be a JSON object"},
        BadBody{R"({"job_id":"a","commands":["x"],"image":"ubuntu"})", "unknown field \"image\""},
        BadBody{R"({"commands":["x"]})", "job_id must be a string"},
        BadBody{R"({"job_id":7,"commands":["x"]})", "job_id must be a string"},
        BadBody{R"({"job_id":"","commands":["x"]})", "job_id must be 1 to 64"},
        BadBody{R"({"job_id":"a/b","commands":["x"]})", "job_id must be 1 to 64"},
        BadBody{R"({"job_id":"..","commands":["x"]})", "job_id must be 1 to 64"},
        BadBody{R"({"job_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "commands":["x"]})",
                "job_id must be 1 to 64"},
        BadBody{R"({"job_id":"a"})", "commands must be a non-empty list"},
        BadBody{R"({"job_id":"a","commands":[]})", "commands must be a non-empty list"},
        BadBody{R"({"job_id":"a","commands":"echo"})", "commands must be a non-empty list"},
        BadBody{R"({"job_id":"a","commands":[1]})", "commands must be a non-empty list"},
        BadBody{R"({"job_id":"a","commands":["a\u0000b"]})", "NUL"},
        BadBody{R"({"job_id":"a","commands":["x"],"env":[]})", "env must be an object"},
        BadBody{R"({"job_id":"a","commands":["x"],"env":{"1X":"v"}})", "env names must match"},
        BadBody{R"({"job_id":"a","commands":["x"],"env":{"A-B":"v"}})", "env names must match"},
        BadBody{R"({"job_id":"a","commands":["x"],"env":{"":"v"}})", "env names must match"},
        BadBody{R"({"job_id":"a","commands":["x"],"env":{"A":1}})", "env.A must be a string"},
        BadBody{R"({"job_id":"a","commands":["x"],"working_dir":5})", "working_dir must be"},
        BadBody{R"({"job_id":"a","commands":["x"],"working_dir":""})", "working_dir must not"},
        BadBody{R"({"job_id":"a","commands":["x"],"gpu_indices":[2]})", "no GPU 2"},
        BadBody{R"({"job_id":"a","commands":["x"],"gpu_indices":[-1]})", "no GPU -1"},
        BadBody{R"({"job_id":"a","commands":["x"],"gpu_indices":[18446744073709551615]})",
                "no GPU"},
        BadBody{R"({"job_id":"a","commands":["x"],"gpu_indices":[0,0]})", "must not repeat"},
        BadBody{R"({"job_id":"a","commands":["x"],"gpu_indices":["0"]})", "list of integers"},
        BadBody{R"({"job_id":"a","commands":["x"],"gpu_indices":0})", "list of integers"},
        BadBody{R"({"job_id":"a","commands":["x"],"cpus":"8"})", "cpus must be a number"},
        BadBody{R"({"job_id":"a","commands":["x"],"cpus":0})", "cpus must be positive"},
        BadBody{R"({"job_id":"a","commands":["x"],"memory_bytes":-1})", "memory_bytes must be"},
        BadBody{R"({"job_id":"a","commands":["x"],"memory_bytes":1.5})", "memory_bytes must be"},
        BadBody{R"({"job_id":"a","commands":["x"],"memory_bytes":"1GB"})", "memory_bytes must"},
        BadBody{R"({"job_id":"a","commands":["x"],"memory_bytes":18446744073709551615})",
                "too large"},
        BadBody{R"({"job_id":"a","commands":["x"],"cluster":[]})", "cluster must be an object"},
        BadBody{R"({"job_id":"a","commands":["x"],"cluster":{"nodes":2}})",
                "unknown field \"nodes\" in cluster"},
        BadBody{R"({"job_id":"a","commands":["x"],"cluster":{"nodes_num":0}})",
                "cluster.nodes_num"},
        BadBody{R"({"job_id":"a","commands":["x"],"cluster":{"nodes_num":2,"node_rank":2}})",
                "cluster.node_rank"},
        BadBody{R"({"job_id":"a","commands":["x"],"cluster":{"nodes_ips":"1.1.1.1"}})",
                "cluster.nodes_ips"}));

TEST(StopJobRequest, GraceDefaultsAndRange) {
  EXPECT_EQ(*ParseStopJobRequest(""), std::chrono::seconds(10));
  EXPECT_EQ(*ParseStopJobRequest("{}"), std::chrono::seconds(10));
  EXPECT_EQ(*ParseStopJobRequest(R"({"grace_seconds": null})"), std::chrono::seconds(10));
  EXPECT_EQ(*ParseStopJobRequest(R"({"grace_seconds": 0})"), std::chrono::seconds(0));
  EXPECT_EQ(*ParseStopJobRequest(R"({"grace_seconds": 300})"), std::chrono::seconds(300));
  for (const char* bad :
       {R"({"grace_seconds": 301})", R"({"grace_seconds": -1})", R"({"grace_seconds": "5"})",
        R"({"grace_seconds": 1.5})", R"({"grace": 5})", "[]", "{"}) {
    EXPECT_EQ(ParseStopJobRequest(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(JobStateJson, ShowsEveryField) {
  JobState state;
  state.job_id = "j";
  state.phase = JobPhase::kExited;
  state.pid = 12;
  state.signal = 15;
  state.stop_requested = true;
  state.started_at = 5;
  state.finished_at = 6;
  boost::json::object o = JobStateJson(state);
  EXPECT_EQ(o.at("state").as_string(), "exited");
  EXPECT_EQ(o.at("pid").as_int64(), 12);
  EXPECT_TRUE(o.at("exit_code").is_null());
  EXPECT_EQ(o.at("signal").as_int64(), 15);
  EXPECT_TRUE(o.at("stop_requested").as_bool());
  EXPECT_EQ(o.at("finished_at").as_int64(), 6);
  EXPECT_TRUE(o.at("error").is_null());
}

}  // namespace
}  // namespace fleetwatch::agent
