// cgroup mode detection on fake trees, and job cgroups created for real where the host allows.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/cgroup_tree.h"
#include "agent/sys_files.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

using fleetwatch::testing::TempDir;

TEST(CgroupMode, DetectsV2V1AndNone) {
  TempDir v2, v1, none;
  testing::WriteFile(v2.path() / "cgroup.controllers", "cpu memory\n");
  std::filesystem::create_directories(v1.path() / "cpuacct");
  std::filesystem::create_directories(v1.path() / "memory");
  std::filesystem::create_directories(none.path() / "memory");
  EXPECT_EQ(DetectCgroupMode(v2.path()), CgroupMode::kV2);
  EXPECT_EQ(DetectCgroupMode(v1.path()), CgroupMode::kV1);
  EXPECT_EQ(DetectCgroupMode(none.path()), CgroupMode::kNone);
  EXPECT_EQ(DetectCgroupMode("/nonexistent"), CgroupMode::kNone);
  EXPECT_EQ(CgroupModeName(CgroupMode::kV2), "v2");
  EXPECT_EQ(CgroupModeName(CgroupMode::kV1), "v1");
  EXPECT_EQ(CgroupModeName(CgroupMode::kNone), "none");
}

TEST(CgroupMode, RootComesFromTheEnvironment) {
  testing::ScopedEnv env("FLEETWATCH_CGROUP_ROOT", "/tmp/cg");
  EXPECT_EQ(DefaultCgroupRoot(), "/tmp/cg");
}

TEST(CgroupTree, NoCgroupsMeansCreateFails) {
  TempDir dir;
  CgroupTree tree(dir.path(), "fleetwatch");
  EXPECT_EQ(tree.mode(), CgroupMode::kNone);
  EXPECT_EQ(tree.Create("job", {}).status().code(), StatusCode::kUnavailable);
}

// On a v1 fake tree (plain directories) creation makes the expected paths; the limit file
// cannot be written there (nothing creates it), which is a warning, not an error.
TEST(CgroupTree, V1PathsOnAFakeTree) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "cpuacct");
  std::filesystem::create_directories(dir.path() / "memory");
  CgroupTree tree(dir.path(), "fleetwatch");
  ASSERT_EQ(tree.mode(), CgroupMode::kV1);
  Result<JobCgroup> cgroup = tree.Create("job-1", {int64_t{1} << 30, std::nullopt});
  ASSERT_TRUE(cgroup.ok()) << cgroup.status().ToString();
  ASSERT_EQ(cgroup->dirs().size(), 2u);
  EXPECT_EQ(cgroup->dirs()[0], dir.path() / "cpuacct" / "fleetwatch" / "job-1");
  EXPECT_EQ(cgroup->dirs()[1], dir.path() / "memory" / "fleetwatch" / "job-1");
  EXPECT_TRUE(std::filesystem::is_directory(cgroup->dirs()[1]));
  EXPECT_TRUE(cgroup->Processes().empty());
}

TEST(CgroupTree, RealCgroupLeftoversAreKilledAndRemoved) {
  if (!testing::CgroupsUsable()) GTEST_SKIP() << "needs root and writable cgroups";
  std::string group = testing::UniqueCgroupGroup();
  CgroupTree tree(DefaultCgroupRoot(), group);
  Result<JobCgroup> cgroup = tree.Create("stale", {});
  ASSERT_TRUE(cgroup.ok()) << cgroup.status().ToString();
  pid_t child = fork();
  if (child == 0) {
    execl("/bin/sleep", "sleep", "600", nullptr);
    _exit(127);
  }
  ASSERT_GT(child, 0);
  for (const auto& procs : cgroup->ProcsFiles()) {
    ASSERT_TRUE(WriteControlFile(procs, std::to_string(child)).ok());
  }
  ASSERT_EQ(cgroup->Processes(), std::vector<pid_t>{child});

  EXPECT_EQ(CgroupTree(DefaultCgroupRoot(), group).RemoveLeftovers(), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  for (const auto& dir : cgroup->dirs()) EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

}  // namespace
}  // namespace fleetwatch::agent
