// The job environment: what is inherited, what the run sets, DSTACK_* and GPU visibility.
#include <gtest/gtest.h>

#include "agent/job_env.h"

namespace fleetwatch::agent {
namespace {

const std::map<std::string, std::string> kAgentEnv = {{"PATH", "/usr/bin:/bin"},
                                                      {"HOME", "/home/agent"},
                                                      {"LANG", "C.UTF-8"},
                                                      {"USER", "agent"},
                                                      {"FLEETWATCH_AGENT_TOKEN", "secret"},
                                                      {"SHELL", "/bin/zsh"}};

TEST(JobEnvironment, InheritsOnlyPathHomeLangUser) {
  JobSpec spec;
  spec.run_name = "train";
  auto env = BuildJobEnvironment(spec, kAgentEnv, "nvidia");
  EXPECT_EQ(env["PATH"], "/usr/bin:/bin");
  EXPECT_EQ(env["HOME"], "/home/agent");
  EXPECT_EQ(env["LANG"], "C.UTF-8");
  EXPECT_EQ(env["USER"], "agent");
  EXPECT_EQ(env.count("FLEETWATCH_AGENT_TOKEN"), 0u);
  EXPECT_EQ(env.count("SHELL"), 0u);
}

TEST(JobEnvironment, RunEnvOverridesInheritedAndDstackOverridesRunEnv) {
  JobSpec spec;
  spec.run_name = "train";
  spec.env = {{"PATH", "/opt/bin"}, {"MY_VAR", "x"}, {"DSTACK_RUN_NAME", "spoofed"}};
  auto env = BuildJobEnvironment(spec, kAgentEnv, "nvidia");
  EXPECT_EQ(env["PATH"], "/opt/bin");
  EXPECT_EQ(env["MY_VAR"], "x");
  EXPECT_EQ(env["DSTACK_RUN_NAME"], "train");
}

TEST(JobEnvironment, SingleNodeDefaultsAndNvidiaDevices) {
  JobSpec spec;
  spec.run_name = "train";
  spec.gpu_indices = {1, 3};
  auto env = BuildJobEnvironment(spec, kAgentEnv, "nvidia");
  EXPECT_EQ(env["DSTACK_NODES_NUM"], "1");
  EXPECT_EQ(env["DSTACK_NODE_RANK"], "0");
  EXPECT_EQ(env["DSTACK_GPUS_PER_NODE"], "2");
  EXPECT_EQ(env["DSTACK_GPUS_NUM"], "2");
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "1,3");
  EXPECT_EQ(env["NVIDIA_VISIBLE_DEVICES"], "1,3");
  EXPECT_EQ(env.count("ROCR_VISIBLE_DEVICES"), 0u);
}

TEST(JobEnvironment, ClusterAndAmdDevices) {
  JobSpec spec;
  spec.run_name = "big";
  spec.gpu_indices = {0};
  spec.cluster = {2, 1, "10.0.0.1", {"10.0.0.1", "10.0.0.2"}, 4};
  auto env = BuildJobEnvironment(spec, kAgentEnv, "amd");
  EXPECT_EQ(env["DSTACK_NODES_NUM"], "2");
  EXPECT_EQ(env["DSTACK_NODE_RANK"], "1");
  EXPECT_EQ(env["DSTACK_MASTER_NODE_IP"], "10.0.0.1");
  EXPECT_EQ(env["DSTACK_NODES_IPS"], "10.0.0.1\n10.0.0.2");
  EXPECT_EQ(env["DSTACK_GPUS_PER_NODE"], "4");
  EXPECT_EQ(env["DSTACK_GPUS_NUM"], "8");
  EXPECT_EQ(env["ROCR_VISIBLE_DEVICES"], "0");
  EXPECT_EQ(env["HIP_VISIBLE_DEVICES"], "0");
  EXPECT_EQ(env.count("CUDA_VISIBLE_DEVICES"), 0u);
}

TEST(JobEnvironment, NoGpusGiveEmptyVisibility) {
  JobSpec spec;
  auto env = BuildJobEnvironment(spec, kAgentEnv, "");
  EXPECT_EQ(env.at("CUDA_VISIBLE_DEVICES"), "");
  EXPECT_EQ(env["DSTACK_GPUS_NUM"], "0");
}

}  // namespace
}  // namespace fleetwatch::agent
