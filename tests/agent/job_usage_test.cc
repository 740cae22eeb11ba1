// Job CPU and memory figures parsed from fixture cgroup and /proc files.
#include <gtest/gtest.h>
#include <unistd.h>

#include "agent/job_usage.h"
#include "agent/sys_files.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

const std::filesystem::path kTestdata = AGENT_TESTDATA_DIR;

TEST(JobUsage, CgroupV2) {
  Result<JobUsage> usage = ReadCgroupV2Usage(kTestdata / "cgroup_v2");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->cpu_usage_micro, 1234567);
  EXPECT_EQ(usage->memory_usage_bytes, 104857600);
  EXPECT_EQ(usage->memory_working_set_bytes, 104857600 - 30000000);
}

TEST(JobUsage, CgroupV1) {
  Result<JobUsage> usage =
      ReadCgroupV1Usage(kTestdata / "cgroup_v1" / "cpuacct", kTestdata / "cgroup_v1" / "memory");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->cpu_usage_micro, 9876543);  // ns / 1000
  EXPECT_EQ(usage->memory_usage_bytes, 209715200);
  // total_inactive_file, not the cgroup's own inactive_file.
  EXPECT_EQ(usage->memory_working_set_bytes, 209715200 - 9715200);
}

TEST(JobUsage, WorkingSetNeverNegative) {
  fleetwatch::testing::TempDir dir;
  testing::WriteFile(dir.path() / "cpu.stat", "usage_usec 1\n");
  testing::WriteFile(dir.path() / "memory.current", "100\n");
  testing::WriteFile(dir.path() / "memory.stat", "inactive_file 500\n");
  Result<JobUsage> usage = ReadCgroupV2Usage(dir.path());
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->memory_working_set_bytes, 0);
}

TEST(JobUsage, MissingOrMalformedFilesAreUnavailable) {
  fleetwatch::testing::TempDir dir;
  EXPECT_EQ(ReadCgroupV2Usage(dir.path()).status().code(), StatusCode::kUnavailable);
  testing::WriteFile(dir.path() / "cpu.stat", "user_usec 1\n");  // no usage_usec
  testing::WriteFile(dir.path() / "memory.current", "100\n");
  testing::WriteFile(dir.path() / "memory.stat", "inactive_file 5\n");
  EXPECT_EQ(ReadCgroupV2Usage(dir.path()).status().code(), StatusCode::kUnavailable);
  testing::WriteFile(dir.path() / "cpu.stat", "usage_usec 1\n");
  testing::WriteFile(dir.path() / "memory.current", "max\n");
  EXPECT_EQ(ReadCgroupV2Usage(dir.path()).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ReadCgroupV1Usage(dir.path(), dir.path()).status().code(), StatusCode::kUnavailable);
}

TEST(JobUsage, ProcessGroupFromProcFixture) {
  Result<JobUsage> usage = ReadProcessGroupUsage(kTestdata / "proc", 100);
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  const int64_t ticks = sysconf(_SC_CLK_TCK);
  const int64_t page = sysconf(_SC_PAGESIZE);
  // pid 100: 150+50+10+5 ticks, 250 pages; pid 101 (odd name): 300+100 ticks, 1000 pages.
  EXPECT_EQ(usage->cpu_usage_micro, 215 * 1'000'000 / ticks + 400 * 1'000'000 / ticks);
  EXPECT_EQ(usage->memory_usage_bytes, 1250 * page);
  EXPECT_EQ(usage->memory_working_set_bytes, usage->memory_usage_bytes);
  EXPECT_EQ(ReadProcessGroupUsage(kTestdata / "proc", 4242).status().code(), StatusCode::kNotFound);
}

TEST(JobUsage, ProcessGroupOfThisProcess) {
  Result<JobUsage> usage = ReadProcessGroupUsage("/proc", getpgrp());
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_GT(usage->memory_usage_bytes, 0);
}

TEST(SysFiles, ParsesIntegersAndKeyedValues) {
  EXPECT_EQ(ParseInteger(" 42\n"), 42);
  EXPECT_EQ(ParseInteger("-7"), -7);
  EXPECT_EQ(ParseInteger("4x"), std::nullopt);
  EXPECT_EQ(ParseInteger(""), std::nullopt);
  EXPECT_EQ(ParseInteger("99999999999999999999"), std::nullopt);
  EXPECT_EQ(FindKeyedValue("a 1\nab 2\nb 3", "ab"), 2);
  EXPECT_EQ(FindKeyedValue("a 1\nab 2\nb 3", "b"), 3);
  EXPECT_EQ(FindKeyedValue("abc 1\n", "ab"), std::nullopt);
}

}  // namespace
}  // namespace fleetwatch::agent
