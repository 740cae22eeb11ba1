#include "server/control_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kStart = 1'700'000'000'000'000;
constexpr TimeMicros kMs = 1000;

// Records the stages in the order they run; a stage may take (fake) time.
class RecordingStages final : public ControlStages {
 public:
  explicit RecordingStages(FakeClock& clock) : clock_(clock) {}

  Result<TickReport> Control() override {
    calls.push_back("control@" + std::to_string((clock_.Now() - kStart) / kMs));
    clock_.Advance(control_takes);
    if (fail_control) return Unavailable("the store is down");
    TickReport report;
    report.started_at = clock_.Now();
    return report;
  }
  Status AccountUsage() override {
    calls.push_back("usage");
    return fail_usage ? Unavailable("no usage") : Status::Ok();
  }
  const std::vector<ReportStage>& report_stages() const override { return report_stages_; }
  Status Retain(TimeMicros now) override {
    calls.push_back("retain@" + std::to_string((now - kStart) / kMs));
    return Status::Ok();
  }

  std::vector<std::string> calls;
  TimeMicros control_takes = 10 * kMs;
  bool fail_control = false;
  bool fail_usage = false;
  bool record_share = false;
  bool fail_share = false;

 private:
  FakeClock& clock_;
  // A stage that adds to the report (as sharing does), then the exposition, which must see it.
  const std::vector<ReportStage> report_stages_{
      {"share",
       [this](TickReport& report) {
         if (!record_share) return Status::Ok();
         calls.push_back("share");
         model::JobMetricsPoint point;
         point.job_id = "shared";
         report.stored_points.push_back(point);
         return fail_share ? Unavailable("the listener is down") : Status::Ok();
       }},
      {"exposition", [this](TickReport& report) {
         calls.push_back("expose");
         if (record_share)
           calls.push_back("exposed " + std::to_string(report.stored_points.size()));
         return Status::Ok();
       }}};
};

// For the loop's own thread: counts its ticks (which report nothing) and runs the report stages it
// was given; usage and retention do nothing. Thread-safe as far as `ticks` goes.
class CountingStages final : public ControlStages {
 public:
  explicit CountingStages(std::vector<ReportStage> report_stages = {})
      : report_stages_(std::move(report_stages)) {}
  Result<TickReport> Control() override {
    ++ticks;
    return TickReport{};
  }
  Status AccountUsage() override { return Status::Ok(); }
  const std::vector<ReportStage>& report_stages() const override { return report_stages_; }
  Status Retain(TimeMicros) override { return Status::Ok(); }

  std::atomic<int> ticks{0};

 private:
  const std::vector<ReportStage> report_stages_;
};

class ControlLoopTest : public ::testing::Test {
 protected:
  FakeClock clock_{kStart};
  RecordingStages stages_{clock_};
  ControlLoop loop_{stages_, clock_,
                    ControlLoopOptions{.tick_interval = std::chrono::milliseconds(1000),
                                       .usage_interval = std::chrono::milliseconds(3000),
                                       .retention_interval = std::chrono::milliseconds(5000)}};
};

TEST_F(ControlLoopTest, EachTickRunsControlThenUsageThenExpositionAndRetentionOnItsOwnInterval) {
  for (int k = 0; k < 6; ++k) {
    TimeMicros next = loop_.RunDue();
    clock_.Set(next);
  }
  EXPECT_EQ(stages_.calls,
            (std::vector<std::string>{
                "control@0", "usage", "expose", "retain@0",  // the first tick does everything
                "control@1000", "expose",                    //
                "control@2000", "expose",                    //
                "control@3000", "usage", "expose",           // usage every 3 s
                "control@4000", "expose",                    //
                "control@5000", "expose", "retain@5000",     // retention every 5 s
            }));
  EXPECT_EQ(loop_.stats().ticks, 6u);
  EXPECT_EQ(loop_.stats().skipped_beats, 0u);
  EXPECT_EQ(loop_.stats().mean_period_micros, 1000 * kMs);
}

TEST_F(ControlLoopTest, WhatOtherReplicasPolledIsAddedToTheReportJustBeforeTheExposition) {
  stages_.record_share = true;
  loop_.RunDue();
  EXPECT_EQ(stages_.calls, (std::vector<std::string>{"control@0", "usage", "share", "expose",
                                                     "exposed 1", "retain@0"}));
}

TEST_F(ControlLoopTest, AFailingReportStageDoesNotKeepTheLaterOnesFromTheReport) {
  stages_.record_share = true;
  stages_.fail_share = true;
  loop_.RunDue();
  EXPECT_EQ(stages_.calls, (std::vector<std::string>{"control@0", "usage", "share", "expose",
                                                     "exposed 1", "retain@0"}));
}

TEST_F(ControlLoopTest, TicksStartOnAFixedGridWhateverTheyTake) {
  // 400 ms of work per tick: the next still starts 1 s after the previous one started, not 1 s
  // after it ended.
  stages_.control_takes = 400 * kMs;
  std::vector<TimeMicros> starts;
  for (int k = 0; k < 4; ++k) {
    starts.push_back(clock_.Now() - kStart);
    TimeMicros next = loop_.RunDue();
    EXPECT_EQ(next - kStart, static_cast<TimeMicros>(k + 1) * 1000 * kMs);
    clock_.Set(next);
  }
  EXPECT_EQ(starts, (std::vector<TimeMicros>{0, 1000 * kMs, 2000 * kMs, 3000 * kMs}));
  EXPECT_EQ(loop_.stats().last_tick_micros, 400 * kMs);
}

TEST_F(ControlLoopTest, ATickThatRunsLongSkipsTheBeatsItMissedInsteadOfQueueingThem) {
  stages_.control_takes = 2500 * kMs;  // past the beats at 1 s and 2 s
  TimeMicros next = loop_.RunDue();
  EXPECT_EQ(next - kStart, 3000 * kMs);
  EXPECT_EQ(loop_.stats().skipped_beats, 2u);
  // Called before the next beat (a wake-up that came early): nothing runs.
  clock_.Set(kStart + 2900 * kMs);
  EXPECT_EQ(loop_.RunDue(), next);
  EXPECT_EQ(loop_.stats().ticks, 1u);
  stages_.control_takes = 10 * kMs;
  clock_.Set(next);
  EXPECT_EQ(loop_.RunDue() - kStart, 4000 * kMs);
  EXPECT_EQ(loop_.stats().ticks, 2u);
  EXPECT_EQ(loop_.stats().skipped_beats, 2u);
  // A tick that ends exactly on a beat skips it too: the next starts on the one after.
  stages_.control_takes = 1000 * kMs;
  clock_.Set(kStart + 4000 * kMs);
  EXPECT_EQ(loop_.RunDue() - kStart, 6000 * kMs);
  EXPECT_EQ(loop_.stats().skipped_beats, 3u);
}

TEST_F(ControlLoopTest, AWakeUpThatComesLateKeepsTheGrid) {
  clock_.Set(loop_.RunDue() + 300 * kMs);  // the thread woke 300 ms late
  EXPECT_EQ(loop_.RunDue() - kStart, 2000 * kMs);
  EXPECT_EQ(loop_.stats().skipped_beats, 0u);
}

TEST_F(ControlLoopTest, AFailingStageNeitherStopsTheOthersNorTheLoop) {
  stages_.fail_usage = true;
  clock_.Set(loop_.RunDue());
  EXPECT_EQ(stages_.calls, (std::vector<std::string>{"control@0", "usage", "expose", "retain@0"}));
  // Without a report there is nothing to expose; usage still runs when due.
  stages_.calls.clear();
  stages_.fail_control = true;
  clock_.Set(kStart + 3000 * kMs);
  clock_.Set(loop_.RunDue());
  EXPECT_EQ(stages_.calls, (std::vector<std::string>{"control@3000", "usage"}));
  stages_.calls.clear();
  stages_.fail_control = false;
  loop_.RunDue();
  EXPECT_EQ(stages_.calls, (std::vector<std::string>{"control@4000", "expose"}));
}

TEST(ControlLoopThread, StartsTicksAtOnceAndStopsPromptly) {
  const Clock& clock = SystemClock::Get();
  CountingStages stages;
  ControlLoop loop(stages, clock, ControlLoopOptions{.tick_interval = std::chrono::hours(1)});
  loop.Start();
  while (stages.ticks.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  loop.Stop();  // does not wait for the next beat, an hour away
  EXPECT_EQ(stages.ticks.load(), 1);
  EXPECT_EQ(loop.stats().ticks, 1u);
}

// What RequestCatchUp asks for runs on the loop's thread between ticks, and WaitCatchUp says when
// it has; a failed catch-up is no pass, and a stopped loop answers a wait at once.
TEST(ControlLoopThread, ACatchUpRunsBetweenTicksWhenAskedAndAFailedOrStoppedOneIsNoPass) {
  const Clock& clock = SystemClock::Get();
  // Two report stages: one that accounts what a tick polled (never in a catch-up), one that
  // brings /metrics up to the store (also in a catch-up).
  std::atomic<int> accounted{0};
  std::atomic<int> catch_ups{0};
  std::atomic<bool> failing{false};
  CountingStages stages({{"accounting",
                          [&](TickReport&) {
                            ++accounted;
                            return Status::Ok();
                          }},
                         {"exposition",
                          [&](TickReport&) {
                            ++catch_ups;
                            return failing.load() ? Unavailable("database down") : Status::Ok();
                          },
                          /*on_catch_up=*/true}});
  ControlLoop loop(stages, clock, ControlLoopOptions{.tick_interval = std::chrono::hours(1)});
  const auto far = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(60); };
  loop.Start();
  while (stages.ticks.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // The tick ran both stages once; wait until it is over (both counted).
  while (catch_ups.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const uint64_t first = loop.RequestCatchUp();
  EXPECT_TRUE(loop.WaitCatchUp(first, far()));
  EXPECT_EQ(catch_ups.load(), 2);
  const uint64_t second = loop.RequestCatchUp();
  EXPECT_GT(second, first);
  EXPECT_TRUE(loop.WaitCatchUp(second, far()));
  EXPECT_EQ(catch_ups.load(), 3);
  EXPECT_EQ(stages.ticks.load(), 1);  // no tick for them: the next beat is an hour away
  EXPECT_EQ(accounted.load(), 1);     // a catch-up accounts nothing
  // A catch-up that fails says so to its waiters.
  failing = true;
  EXPECT_FALSE(loop.WaitCatchUp(loop.RequestCatchUp(), far()));
  EXPECT_EQ(catch_ups.load(), 4);
  failing = false;
  loop.Stop();
  EXPECT_FALSE(loop.WaitCatchUp(loop.RequestCatchUp(), far()));  // at once, not in a minute
  EXPECT_EQ(catch_ups.load(), 4);
}

}  // namespace
}  // namespace fleetwatch::server
