// Utilization policies: windows per job and GPU from canned readings on a fake clock.
#include "server/utilization_policy.h"

#include <gtest/gtest.h>

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kStart = 1'800'000'000'000'000;
constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kGap = 30 * kSecond;

class UtilizationPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = model::ParseRunConfiguration(
        "type: task\ncommands: [x]\nresources: {gpu: 2}\n"
        "utilization_policy: {min_gpu_utilization: 10, time_window: 1m}\n",
        model::ConfigFormat::kYaml);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    configs_.emplace("run-1", std::move(config));
    run_.id = "run-1";
    model::Job job;
    job.id = "job-1";
    job.status = model::JobStatus::kRunning;
    job.instance_id = "host-1";
    job.gpu_indices = {1, 0};
    job.started_at = kStart;
    run_.jobs.push_back(job);
  }

  // One metrics poll at `at` with these utilizations of GPUs 0 and 1 (absent: not reported).
  std::map<std::string, std::string> Poll(TimeMicros at, std::optional<int64_t> gpu0,
                                          std::optional<int64_t> gpu1) {
    InstanceObservation obs;
    obs.reached = true;
    obs.poll.gpus.emplace();
    for (auto [index, util] : {std::pair{0, gpu0}, std::pair{1, gpu1}}) {
      model::GpuReading r;
      r.index = index;
      r.util_percent = util;
      obs.poll.gpus->push_back(r);
    }
    return tracker_.Observe({run_}, configs_, {{"host-1", obs}}, at);
  }

  // Polls every 10 s from `from` for `seconds`; returns the first decision to terminate.
  std::map<std::string, std::string> Idle(TimeMicros from, int seconds, int64_t a, int64_t b) {
    std::map<std::string, std::string> decision;
    for (int s = 0; s <= seconds && decision.empty(); s += 10) {
      decision = Poll(from + s * kSecond, a, b);
    }
    return decision;
  }

  UtilizationPolicyTracker tracker_{kGap};
  std::unordered_map<std::string, Result<model::RunConfiguration>> configs_;
  model::Run run_;
};

TEST_F(UtilizationPolicyTest, EveryGpuBelowForTheWholeWindowTerminatesWithTheFigures) {
  for (int s = 0; s < 60; s += 10) {
    EXPECT_TRUE(Poll(kStart + s * kSecond, 3, 0).empty()) << s;  // the window is not full yet
  }
  std::map<std::string, std::string> decision = Poll(kStart + 60 * kSecond, 1, 0);
  ASSERT_EQ(decision.size(), 1u);
  EXPECT_EQ(decision["job-1"], "GPUs 0,1 stayed below 10 % for 1m (max 3 %)");
}

TEST_F(UtilizationPolicyTest, OneIdleGpuIsEnoughAsInDstack) {
  std::map<std::string, std::string> decision = Idle(kStart, 300, 95, 2);
  ASSERT_EQ(decision.size(), 1u);
  EXPECT_EQ(decision["job-1"], "GPU 1 stayed below 10 % for 1m (max 2 %)");
}

TEST_F(UtilizationPolicyTest, NoIdleGpuKeepsTheJob) {
  EXPECT_TRUE(Idle(kStart, 300, 10, 50).empty());  // 10 is not below 10
}

TEST_F(UtilizationPolicyTest, ABusyReadingStartsTheWindowAgain) {
  for (int s = 0; s < 50; s += 10) EXPECT_TRUE(Poll(kStart + s * kSecond, 0, 0).empty());
  EXPECT_TRUE(Poll(kStart + 50 * kSecond, 50, 50).empty());
  // The windows restart at 60 s: they are full at 120 s, not before.
  for (int s = 60; s < 120; s += 10) EXPECT_TRUE(Poll(kStart + s * kSecond, 0, 0).empty()) << s;
  EXPECT_EQ(Poll(kStart + 120 * kSecond, 0, 0).size(), 1u);
}

// Canned traces of GPU 0 (one reading every 10 s from the job's start, GPU 1 busy throughout),
// each classified exactly: the second of the poll that terminates the job (min 10 %, window 1m),
// or none. A trace that crosses the threshold once is spared for another full window.
TEST_F(UtilizationPolicyTest, CannedTracesAreClassifiedExactly) {
  constexpr std::optional<int64_t> kNoReading;
  struct Row {
    const char* name;
    std::vector<std::optional<int64_t>> trace;  // GPU 0, one per 10 s
    std::optional<int> terminated_at;           // seconds after the start
  };
  const std::vector<std::optional<int64_t>> zeros(13, 0);  // 0..120 s
  auto with = [&](std::vector<std::pair<int, std::optional<int64_t>>> changes) {
    std::vector<std::optional<int64_t>> t = zeros;
    for (auto [second, util] : changes) t[second / 10] = util;
    return t;
  };
  const Row rows[] = {
      {"idle throughout", zeros, 60},
      {"just below the threshold", std::vector<std::optional<int64_t>>(13, 9), 60},
      {"at the threshold", std::vector<std::optional<int64_t>>(13, 10), std::nullopt},
      {"busy at the start only", with({{0, 80}}), 70},
      {"crosses once mid-window", with({{50, 50}}), 120},
      {"crosses once as the window fills", with({{60, 90}}), std::nullopt},
      {"a reading without utilization", with({{30, kNoReading}}), 100},
      {"crosses every other poll", {0, 50, 0, 50, 0, 50, 0, 50, 0, 50, 0, 50, 0}, std::nullopt},
  };
  for (const Row& row : rows) {
    UtilizationPolicyTracker tracker(kGap);
    std::optional<int> terminated_at;
    std::string why;
    for (size_t k = 0; k < row.trace.size() && !terminated_at; ++k) {
      InstanceObservation obs;
      obs.reached = true;
      obs.poll.gpus.emplace();
      for (auto [index, util] :
           {std::pair{0, row.trace[k]}, std::pair{1, std::optional<int64_t>{95}}}) {
        model::GpuReading r;
        r.index = index;
        r.util_percent = util;
        obs.poll.gpus->push_back(r);
      }
      const int second = static_cast<int>(k) * 10;
      auto decision =
          tracker.Observe({run_}, configs_, {{"host-1", obs}}, kStart + second * kSecond);
      if (!decision.empty()) {
        terminated_at = second;
        why = decision["job-1"];
      }
    }
    EXPECT_EQ(terminated_at, row.terminated_at) << row.name;
    if (terminated_at) {
      EXPECT_EQ(why.rfind("GPU 0 stayed below 10 % for 1m", 0), 0u) << why;
    }
  }
}

TEST_F(UtilizationPolicyTest, MissingReadingsNeverTerminate) {
  // GPUs without a utilization reading, for ever: no decision.
  for (int s = 0; s <= 600; s += 10) {
    EXPECT_TRUE(Poll(kStart + s * kSecond, std::nullopt, std::nullopt).empty()) << s;
  }
  // A GPU that is read says it is idle; the one without readings is not named.
  std::map<std::string, std::string> decision;
  for (int s = 0; s <= 120 && decision.empty(); s += 10) {
    decision = Poll(kStart + 700 * kSecond + s * kSecond, 0, std::nullopt);
  }
  EXPECT_EQ(decision["job-1"], "GPU 0 stayed below 10 % for 1m (max 0 %)");
  // Readings with a gap longer than max_gap do not cover the time between them.
  TimeMicros t = kStart + 1000 * kSecond;
  EXPECT_TRUE(Poll(t, 0, 0).empty());
  EXPECT_TRUE(Poll(t + 40 * kSecond, 0, 0).empty());
  EXPECT_TRUE(Poll(t + 80 * kSecond, 0, 0).empty());
  // Polls without readings (no metrics asked, host silent) leave the windows as they are.
  InstanceObservation plain;
  plain.reached = true;
  EXPECT_TRUE(tracker_.Observe({run_}, configs_, {{"host-1", plain}}, t + 90 * kSecond).empty());
  EXPECT_TRUE(tracker_.Observe({run_}, configs_, {}, t + 95 * kSecond).empty());
}

TEST_F(UtilizationPolicyTest, OnlyRunningJobsWithAPolicyAreWatchedAndEndedJobsForgotten) {
  run_.jobs[0].status = model::JobStatus::kProvisioning;
  EXPECT_TRUE(Idle(kStart, 200, 0, 0).empty());
  EXPECT_EQ(tracker_.tracked_jobs(), 0u);
  run_.jobs[0].status = model::JobStatus::kRunning;
  EXPECT_TRUE(Poll(kStart + 300 * kSecond, 0, 0).empty());
  EXPECT_EQ(tracker_.tracked_jobs(), 1u);
  run_.jobs[0].status = model::JobStatus::kTerminating;
  EXPECT_TRUE(Poll(kStart + 310 * kSecond, 0, 0).empty());
  EXPECT_EQ(tracker_.tracked_jobs(), 0u);
  // A run without a policy.
  configs_.at("run-1")->utilization_policy.reset();
  run_.jobs[0].status = model::JobStatus::kRunning;
  EXPECT_TRUE(Idle(kStart + 400 * kSecond, 200, 0, 0).empty());
}

TEST(LowUtilizationMessage, OneGpuAndSeveral) {
  EXPECT_EQ(LowUtilizationMessage({0}, 10, 1800, 3), "GPU 0 stayed below 10 % for 30m (max 3 %)");
  EXPECT_EQ(LowUtilizationMessage({0, 1}, 5, 5400, 0),
            "GPUs 0,1 stayed below 5 % for 1h 30m (max 0 %)");
}

}  // namespace
}  // namespace fleetwatch::server
