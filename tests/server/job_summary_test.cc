// A job's running aggregates and summary: time-weighted utilization means, and the JSON both are
// stored as (one field list per struct serves writing and reading).
#include "server/job_summary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kStart = 1'700'000'000 * kSecond;

JobAggregates OneGpuJob() {
  JobAggregates job;
  job.job_id = "j";
  job.started_at = kStart;
  GpuAggregate gpu;
  gpu.index = 0;
  gpu.memory_total_bytes = 80LL << 30;
  job.gpus.push_back(gpu);
  return job;
}

void Point(JobAggregates& job, TimeMicros at, int64_t util) {
  model::JobMetricsPoint p;
  p.job_id = job.job_id;
  p.timestamp_micro = at;
  p.gpus_util_percent = {util};
  p.gpus_memory_usage_bytes = {1LL << 30};
  AddPoint(job, p);
}

TEST(JobSummary, UtilizationMeansWeighEachSampleByTheTimeItCovers) {
  JobAggregates job = OneGpuJob();
  Point(job, kStart, 0);                   // covers nothing: the first point
  Point(job, kStart + 10 * kSecond, 100);  // 10 s at 100 %
  Point(job, kStart + 40 * kSecond, 0);    // 30 s at 0 %
  const JobEnd running{"running", std::nullopt, std::nullopt};
  JobSummary s = SummaryOf(job, running, kStart + 40 * kSecond);
  ASSERT_EQ(s.gpus.size(), 1u);
  EXPECT_DOUBLE_EQ(s.gpus[0].util_mean, 25.0);  // per sample it would read 33.3
  EXPECT_DOUBLE_EQ(s.gpus[0].idle_share, 0.75);
  EXPECT_EQ(s.gpus[0].samples, 3);
  // A gap longer than kMaxChargedGap covers only that much, as busy GPU time does.
  Point(job, kStart + 3640 * kSecond, 100);
  s = SummaryOf(job, running, kStart + 3640 * kSecond);
  const double gap = static_cast<double>(kMaxChargedGap / kSecond);
  EXPECT_DOUBLE_EQ(s.gpus[0].util_mean, (1000.0 + 100.0 * gap) / (40.0 + gap));
  EXPECT_DOUBLE_EQ(s.busy_gpu_seconds, (1000.0 + 100.0 * gap) / 100.0);
  // A single point covers no time: its sample is the mean.
  JobAggregates one = OneGpuJob();
  Point(one, kStart, 42);
  EXPECT_DOUBLE_EQ(SummaryOf(one, running, kStart).gpus[0].util_mean, 42.0);
}

TEST(JobSummary, AggregatesAndSummariesReadBackAsWritten) {
  JobAggregates job = OneGpuJob();
  job.run_id = "r";
  job.run_name = "train";
  job.price = 3.5;
  job.gpus[0].last_reading_at = kStart;
  job.gpus[0].last_energy_mj = 12;
  job.gpus[0].uuid = "GPU-0";
  for (int i = 0; i < 5; ++i) Point(job, kStart + i * 10 * kSecond, i * 20);
  const std::string text = ToJson(job);
  Result<JobAggregates> back = JobAggregatesFromJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ToJson(*back), text);
  EXPECT_EQ(back->price, 3.5);
  EXPECT_EQ(back->gpus[0].last_energy_mj, 12);
  EXPECT_DOUBLE_EQ(back->gpus[0].covered_seconds, 40);

  const JobSummary summary =
      SummaryOf(job, JobEnd{"done", std::string("done_by_runner"), kStart + 60 * kSecond},
                kStart + 60 * kSecond);
  const std::string summary_text = ToJson(summary);
  Result<JobSummary> summary_back = JobSummaryFromJson(summary_text);
  ASSERT_TRUE(summary_back.ok()) << summary_back.status().ToString();
  EXPECT_EQ(ToJson(*summary_back), summary_text);
  EXPECT_EQ(summary_back->termination_reason, "done_by_runner");
  EXPECT_EQ(summary_back->price, 3.5);
  // A summary stored before the price was kept reads as of an unknown price.
  std::string old = summary_text;
  const size_t at = old.find(",\"price\":");
  ASSERT_NE(at, std::string::npos) << old;
  old.erase(at, old.find_first_of(",}", at + 1) - at);
  Result<JobSummary> older = JobSummaryFromJson(old);
  ASSERT_TRUE(older.ok()) << older.status().ToString() << "\n" << old;
  EXPECT_FALSE(older->price);
  EXPECT_EQ(summary_back->notes, summary.notes);
}

TEST(JobSummary, AggregatesStoredBeforeTimeWeightingStillReadWithThoseAtZero) {
  JobAggregates job = OneGpuJob();
  for (int i = 0; i < 3; ++i) Point(job, kStart + i * 10 * kSecond, 30);
  std::string text = ToJson(job);
  for (const char* key : {"covered_seconds", "util_percent_seconds", "idle_seconds"}) {
    const size_t at = text.find(std::string(",\"") + key + "\":");
    ASSERT_NE(at, std::string::npos) << key;
    text.erase(at, text.find_first_of(",}", at + 1) - at);
  }
  Result<JobAggregates> old = JobAggregatesFromJson(text);
  ASSERT_TRUE(old.ok()) << old.status().ToString() << "\n" << text;
  EXPECT_EQ(old->gpus[0].covered_seconds, 0);
  EXPECT_EQ(old->gpus[0].samples, 3);
  // Its mean is the per-sample one until an interval is covered.
  EXPECT_DOUBLE_EQ(
      SummaryOf(*old, JobEnd{"running", std::nullopt, std::nullopt}, kStart).gpus[0].util_mean, 30);
}

TEST(JobSummary, TextsAndNumbersOfEveryKindReadBackTheSame) {
  JobAggregates job = OneGpuJob();
  job.run_name = std::string("q\"b\\n\nr\rt\tb\bf\f") + '\x01' + "\x1f \xc3\xa9 end";
  job.project_name = "";
  job.price = 0.1;
  job.carbon_intensity = 1e-300;
  job.energy_joules = 1.7976931348623157e308;
  job.cpu_core_seconds = 123456789.125;
  job.memory_limit_bytes = INT64_MAX;
  job.last_cpu_micro = INT64_MIN;
  job.gpus[0].energy_joules = std::nan("");  // written as 0: a NaN would not parse back
  const std::string text = ToJson(job);
  Result<JobAggregates> back = JobAggregatesFromJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(back->run_name, job.run_name);
  EXPECT_EQ(back->project_name, "");
  EXPECT_EQ(back->price, 0.1);
  EXPECT_EQ(back->carbon_intensity, 1e-300);
  EXPECT_EQ(back->energy_joules, 1.7976931348623157e308);
  EXPECT_EQ(back->cpu_core_seconds, 123456789.125);
  EXPECT_EQ(back->memory_limit_bytes, INT64_MAX);
  EXPECT_EQ(back->last_cpu_micro, INT64_MIN);
  EXPECT_EQ(back->gpus[0].energy_joules, 0);
  EXPECT_EQ(ToJson(*back), text);
}

TEST(JobSummary, MalformedJsonIsRefusedNamingTheProblem) {
  const std::string good = ToJson(OneGpuJob());
  auto error = [](Result<JobAggregates> r) {
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  EXPECT_EQ(error(JobAggregatesFromJson("[]")), "job aggregates: not a JSON object");
  std::string missing = good;
  missing.replace(missing.find("\"run_name\""), 10, "\"run_nam\"");
  EXPECT_EQ(error(JobAggregatesFromJson(missing)),
            "job aggregates: field 'run_name' is missing or of the wrong type");
  std::string wrong = good;
  wrong.replace(wrong.find("\"job_num\":0"), 11, "\"job_num\":\"0\"");
  EXPECT_EQ(error(JobAggregatesFromJson(wrong)),
            "job aggregates: field 'job_num' is missing or of the wrong type");
  std::string gpu = good;
  gpu.replace(gpu.find("\"gpus\":[{"), 9, "\"gpus\":[1,{");
  EXPECT_EQ(error(JobAggregatesFromJson(gpu)), "job aggregates: a GPU is not an object");
  Result<JobSummary> summary = JobSummaryFromJson("{\"job_id\":\"j\"}");
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(summary.status().message().find("job summary: field 'job_name'"), std::string::npos)
      << summary.status().message();
}

}  // namespace
}  // namespace fleetwatch::server
