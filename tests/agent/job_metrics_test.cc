// Metrics points: GPU samples in the job's order with zeros for failures, and their JSON.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>

#include <map>

#include "agent/agent_json.h"
#include "agent/job_metrics.h"
#include "agent/job_usage.h"
#include "model/json_text.h"

namespace fleetwatch::agent {
namespace {

const std::filesystem::path kTestdata = AGENT_TESTDATA_DIR;

// GPUs with fixed samples; those not listed fail as an unreadable device would.
class StubGpus final : public GpuBackend {
 public:
  explicit StubGpus(std::map<int, GpuSample> samples) : samples_(std::move(samples)) {}
  std::vector<model::Gpu> ListGpus() const override { return {}; }
  Result<GpuSample> Sample(int index) const override {
    auto it = samples_.find(index);
    if (it == samples_.end()) return Unavailable("GPU " + std::to_string(index) + " fell off");
    return it->second;
  }

 private:
  std::map<int, GpuSample> samples_;
};

TEST(JobMetrics, GpusInTheJobsOrderWithZerosForFailedSamples) {
  StubGpus gpus({{0, {10, 1000}}, {2, {30, 3000}}});
  std::vector<GpuSample> samples = SampleJobGpus(gpus, {2, 1, 0});
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].util_percent, 30);
  EXPECT_EQ(samples[0].memory_used_bytes, 3000);
  EXPECT_EQ(samples[1].util_percent, 0);
  EXPECT_EQ(samples[1].memory_used_bytes, 0);
  EXPECT_EQ(samples[2].util_percent, 10);
  EXPECT_EQ(samples[2].memory_used_bytes, 1000);
  EXPECT_TRUE(SampleJobGpus(gpus, {}).empty());
}

TEST(JobMetrics, PointJsonFromCgroupV2Fixture) {
  Result<JobUsage> usage = ReadCgroupV2Usage(kTestdata / "cgroup_v2");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  JobMetricsPoint point{1'700'000'000'123'456, *usage, {{40, 1073741824}}};
  std::string text = model::SerializeJson(MetricsPointJson(point));
  boost::json::value parsed = boost::json::parse(text);
  EXPECT_EQ(parsed, boost::json::parse(R"({"timestamp_micro": 1700000000123456,
      "cpu_usage_micro": 1234567, "memory_usage_bytes": 104857600,
      "memory_working_set_bytes": 74857600,
      "gpus": [{"gpu_memory_usage_bytes": 1073741824, "gpu_util_percent": 40}]})"))
      << text;
  point.gpus.clear();
  EXPECT_TRUE(MetricsPointJson(point).at("gpus").as_array().empty());
}

TEST(JobMetrics, ProcessGroupsReadInOnePass) {
  const int64_t ticks = sysconf(_SC_CLK_TCK);
  const int64_t page = sysconf(_SC_PAGESIZE);
  std::map<pid_t, JobUsage> usages = ReadProcessGroupsUsage(kTestdata / "proc", {100, 200, 4242});
  ASSERT_EQ(usages.size(), 2u);  // no process of group 4242
  EXPECT_EQ(usages.at(100).cpu_usage_micro, 215 * 1'000'000 / ticks + 400 * 1'000'000 / ticks);
  EXPECT_EQ(usages.at(100).memory_usage_bytes, 1250 * page);
  EXPECT_EQ(usages.at(100).memory_working_set_bytes, 1250 * page);
  EXPECT_EQ(usages.at(200).cpu_usage_micro, int64_t{199998} * 1'000'000 / ticks);
  EXPECT_EQ(usages.at(200).memory_usage_bytes, 9999 * page);
  EXPECT_TRUE(ReadProcessGroupsUsage(kTestdata / "proc", {}).empty());
}

}  // namespace
}  // namespace fleetwatch::agent
