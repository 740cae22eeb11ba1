// GET /api/project/{p}/metrics/job/{run} semantics: the spec's vectors, over a real store.
#include "server/job_metrics.h"

#include <gtest/gtest.h>

#include "model/run_spec.h"
#include "store/sqlite_store.h"
#include "support/process.h"
#include "util/ids.h"
#include "util/time_format.h"

namespace fleetwatch::server {
namespace {

// 2023-01-02T03:04:05Z
constexpr TimeMicros kT05 = 1672628645LL * 1'000'000;
constexpr TimeMicros kSecond = 1'000'000;

model::JobMetricsPoint Point(TimeMicros t, int64_t cpu_micro, std::vector<int64_t> gpu_util = {}) {
  model::JobMetricsPoint p;
  p.job_id = "job";
  p.timestamp_micro = t;
  p.cpu_usage_micro = cpu_micro;
  p.memory_usage_bytes = 1000 + t % 7;
  p.memory_working_set_bytes = 900;
  p.gpus_util_percent = gpu_util;
  for (size_t i = 0; i < gpu_util.size(); ++i) {
    p.gpus_memory_usage_bytes.push_back(static_cast<int64_t>(i + 1) << 30);
  }
  return p;
}

std::vector<std::string> Names(const std::vector<MetricSeries>& series) {
  std::vector<std::string> names;
  for (const auto& s : series) names.push_back(s.name);
  return names;
}

TEST(ComputeJobMetrics, CpuPercentIsTheDeltaOverTheIntervalNewestFirst) {
  // Points at :05, :15, :25 with 2 s, 4 s and 10 s of CPU.
  std::vector<model::JobMetricsPoint> points = {Point(kT05 + 20 * kSecond, 10 * kSecond),
                                                Point(kT05 + 10 * kSecond, 4 * kSecond),
                                                Point(kT05, 2 * kSecond)};
  JobAllocation alloc{2, int64_t{8} << 30, 0, 0};
  // limit=1 reads two points: one sample.
  std::vector<MetricSeries> one = ComputeJobMetrics({points[0], points[1]}, alloc);
  ASSERT_FALSE(one.empty());
  EXPECT_EQ(one[0].name, "cpu_usage_percent");
  EXPECT_EQ(one[0].values, std::vector<int64_t>{60});
  EXPECT_EQ(FormatTimestampSeconds(one[0].timestamps[0]), "2023-01-02T03:04:25Z");
  // Three points: two samples, newest first.
  std::vector<MetricSeries> two = ComputeJobMetrics(points, alloc);
  EXPECT_EQ(two[0].values, (std::vector<int64_t>{60, 20}));
  EXPECT_EQ(FormatTimestampSeconds(two[0].timestamps[1]), "2023-01-02T03:04:15Z");
  EXPECT_EQ(Names(two), (std::vector<std::string>{"cpu_usage_percent", "memory_usage_bytes",
                                                  "memory_working_set_bytes", "cpus_detected_num",
                                                  "memory_total_bytes", "gpus_detected_num"}));
  EXPECT_EQ(two[3].values, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(two[4].values, (std::vector<int64_t>{int64_t{8} << 30, int64_t{8} << 30}));
}

TEST(ComputeJobMetrics, FewerThanTwoPointsGiveNoSeries) {
  EXPECT_TRUE(ComputeJobMetrics({}, {}).empty());
  EXPECT_TRUE(ComputeJobMetrics({Point(kT05, 1)}, {}).empty());
}

TEST(ComputeJobMetrics, RoundsHalfToEven) {
  // 12.5 % → 12, 13.5 % → 14.
  auto percent = [](int64_t cpu) {
    return ComputeJobMetrics({Point(kT05 + 1000, cpu), Point(kT05, 0)}, {})[0].values[0];
  };
  EXPECT_EQ(percent(125), 12);
  EXPECT_EQ(percent(135), 14);
  EXPECT_EQ(percent(2000), 200);  // two cores
}

TEST(ComputeJobMetrics, GpuSeriesFollowAndVanishWhenTheGpuCountChanges) {
  JobAllocation alloc{4, 1 << 30, 2, int64_t{80} << 30};
  auto series = ComputeJobMetrics({Point(kT05 + 20 * kSecond, 3, {50, 70}),
                                   Point(kT05 + 10 * kSecond, 2, {40, 60}), Point(kT05, 1, {0, 0})},
                                  alloc);
  EXPECT_EQ(Names(series),
            (std::vector<std::string>{
                "cpu_usage_percent", "memory_usage_bytes", "memory_working_set_bytes",
                "cpus_detected_num", "memory_total_bytes", "gpus_detected_num",
                "gpu_memory_total_bytes", "gpu_memory_usage_bytes_gpu0",
                "gpu_memory_usage_bytes_gpu1", "gpu_util_percent_gpu0", "gpu_util_percent_gpu1"}));
  EXPECT_EQ(series.back().values, (std::vector<int64_t>{70, 60}));
  auto changed = ComputeJobMetrics({Point(kT05 + 20 * kSecond, 3, {50, 70}),
                                    Point(kT05 + 10 * kSecond, 2, {40}), Point(kT05, 1, {0})},
                                   alloc);
  EXPECT_EQ(changed.size(), 7u);
  EXPECT_EQ(changed.back().name, "gpu_memory_total_bytes");
}

class JobMetricsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::OpenSqliteStore((dir_.path() / "db").string())).value();
    model::User admin{NewId(), "admin", model::GlobalRole::kAdmin, kT05};
    project_ = {NewId(), "main", admin.id, kT05};
    ASSERT_TRUE(store_->Bootstrap(admin, "hash", project_).ok());
    run_.id = NewId();
    run_.project_id = project_.id;
    run_.user_id = admin.id;
    run_.run_name = "train";
    run_.submitted_at = kT05;
    run_.configuration_json = model::ToJson(*model::ParseRunConfiguration(
        "type: task\ncommands: [x]\nresources: {cpu: 3, memory: 2GB}\n",
        model::ConfigFormat::kYaml));
    model::Job job;
    job.id = NewId();
    job.job_name = "train-0-0";
    job.submitted_at = kT05;
    run_.jobs = {job};
    ASSERT_TRUE(store_->CreateRun(run_).ok());
    std::vector<model::JobMetricsPoint> points;
    for (int i = 0; i < 3; ++i) {
      model::JobMetricsPoint p =
          Point(kT05 + i * 10 * kSecond, (i == 2 ? 10 : 2 + 2 * i) * kSecond);
      p.job_id = job.id;
      points.push_back(p);
    }
    ASSERT_TRUE(store_->AddJobMetricsPoints(points).ok());
    access_ = {project_, model::ProjectRole::kUser};
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  model::Project project_;
  model::Run run_;
  ProjectAccess access_;
};

TEST_F(JobMetricsServiceTest, LimitAfterAndBeforeSelectTheWindow) {
  JobMetricsService service(*store_);
  JobMetricsQuery q;
  auto one = service.Get(access_, "train", q);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ((*one)[0].values, std::vector<int64_t>{60});
  EXPECT_EQ((*one)[3].values, std::vector<int64_t>{3});                 // cpus of the job
  EXPECT_EQ((*one)[4].values, std::vector<int64_t>{int64_t{2} << 30});  // its memory
  q.limit = 3;
  EXPECT_EQ((*service.Get(access_, "train", q))[0].values, (std::vector<int64_t>{60, 20}));
  q.before = kT05 + 20 * kSecond;  // exclusive: drops :25
  EXPECT_EQ((*service.Get(access_, "train", q))[0].values, (std::vector<int64_t>{20}));
  q.before.reset();
  q.after = kT05 + 10 * kSecond;  // inclusive: keeps :15
  EXPECT_EQ((*service.Get(access_, "train", q))[0].values, (std::vector<int64_t>{60}));
  q.after = kT05 + 11 * kSecond;  // one point left: no samples
  EXPECT_TRUE(service.Get(access_, "train", q)->empty());
}

TEST_F(JobMetricsServiceTest, UnknownRunOrJobIsNotFound) {
  JobMetricsService service(*store_);
  JobMetricsQuery q;
  EXPECT_EQ(service.Get(access_, "nope", q).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service.Get(access_, "<script>", q).status().code(), StatusCode::kNotFound);
  q.job_num = 1;
  EXPECT_EQ(service.Get(access_, "train", q).status().code(), StatusCode::kNotFound);
  q.job_num = 0;
  q.run_id = "not-the-id";
  EXPECT_EQ(service.Get(access_, "train", q).status().code(), StatusCode::kNotFound);
  q.run_id = run_.id;
  EXPECT_TRUE(service.Get(access_, "train", q).ok());
}

TEST_F(JobMetricsServiceTest, RetentionKeepsRecentPointsOfRunningJobsAndLongerForFinished) {
  // The job is unfinished: a running cutoff after the first point removes it.
  auto deleted = store_->DeleteJobMetricsPoints(kT05 + 5 * kSecond, kT05 - 1);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 1);
  auto left = store_->ListJobMetricsPoints(run_.jobs[0].id, std::nullopt, std::nullopt, 10);
  EXPECT_EQ(left->size(), 2u);
  // Once finished, only the finished cutoff applies.
  run_.status = model::RunStatus::kDone;
  run_.jobs[0].status = model::JobStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(run_).ok());
  EXPECT_EQ(*store_->DeleteJobMetricsPoints(kT05 + 100 * kSecond, kT05 + 15 * kSecond), 1);
  EXPECT_EQ(store_->ListJobMetricsPoints(run_.jobs[0].id, std::nullopt, std::nullopt, 10)->size(),
            1u);
}

}  // namespace
}  // namespace fleetwatch::server
