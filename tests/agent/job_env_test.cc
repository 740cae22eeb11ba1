// The job environment: built from nothing; what the run sets, DSTACK_* and GPU visibility.
#include <gtest/gtest.h>

#include "agent/job_env.h"

namespace fleetwatch::agent {
namespace {

const JobEnvContext kNvidia = {"/var/lib/fleetwatch/jobs/j1", "fleetwatch-61000", "nvidia"};

TEST(JobEnvironment, IsBuiltFromNothingWithSafeDefaults) {
  JobSpec spec;
  spec.run_name = "train";
  auto env = BuildJobEnvironment(spec, kNvidia);
  EXPECT_EQ(env["PATH"], kDefaultJobPath);
  EXPECT_EQ(env["LANG"], "C.UTF-8");
  EXPECT_EQ(env["HOME"], "/var/lib/fleetwatch/jobs/j1");
  EXPECT_EQ(env["USER"], "fleetwatch-61000");
  EXPECT_EQ(env["LOGNAME"], "fleetwatch-61000");
  // Exactly these, the DSTACK_* variables and the GPU visibility ones.
  for (const auto& [name, value] : env) {
    bool known = name == "PATH" || name == "LANG" || name == "HOME" || name == "USER" ||
                 name == "LOGNAME" || name.rfind("DSTACK_", 0) == 0 ||
                 name == "CUDA_VISIBLE_DEVICES" || name == "NVIDIA_VISIBLE_DEVICES";
    EXPECT_TRUE(known) << name << "=" << value;
  }
}

TEST(JobEnvironment, WithoutAUserNameNeitherUserNorLognameIsSet) {
  auto env = BuildJobEnvironment(JobSpec{}, {"/jobs/j", "", "nvidia"});
  EXPECT_EQ(env.count("USER"), 0u);
  EXPECT_EQ(env.count("LOGNAME"), 0u);
}

TEST(JobEnvironment, RunEnvSetsPathAndLangButNotHomeOrDstack) {
  JobSpec spec;
  spec.run_name = "train";
  spec.env = {{"PATH", "/opt/bin"},
              {"LANG", "de_DE.UTF-8"},
              {"MY_VAR", "x"},
              {"HOME", "/root"},
              {"DSTACK_RUN_NAME", "spoofed"}};
  auto env = BuildJobEnvironment(spec, kNvidia);
  EXPECT_EQ(env["PATH"], "/opt/bin");
  EXPECT_EQ(env["LANG"], "de_DE.UTF-8");
  EXPECT_EQ(env["MY_VAR"], "x");
  EXPECT_EQ(env["HOME"], "/var/lib/fleetwatch/jobs/j1");
  EXPECT_EQ(env["DSTACK_RUN_NAME"], "train");
}

TEST(JobEnvironment, SingleNodeDefaultsAndNvidiaDevices) {
  JobSpec spec;
  spec.run_name = "train";
  spec.gpu_indices = {1, 3};
  auto env = BuildJobEnvironment(spec, kNvidia);
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
  auto env = BuildJobEnvironment(spec, {"/jobs/big", "", "amd"});
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
  auto env = BuildJobEnvironment(spec, {"/jobs/x", "", ""});
  EXPECT_EQ(env.at("CUDA_VISIBLE_DEVICES"), "");
  EXPECT_EQ(env["DSTACK_GPUS_NUM"], "0");
}

}  // namespace
}  // namespace fleetwatch::agent
