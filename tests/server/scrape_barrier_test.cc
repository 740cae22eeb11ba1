#include "server/scrape_barrier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

namespace fleetwatch::server {
namespace {

// A control loop's stages with one report stage that also runs in catch-ups, counting its runs
// (the first tick's and the catch-ups'); an hour between ticks.
class CatchUpStages final : public ControlStages {
 public:
  Result<TickReport> Control() override { return TickReport{}; }
  Status AccountUsage() override { return Status::Ok(); }
  const std::vector<ReportStage>& report_stages() const override { return stages_; }
  Status Retain(TimeMicros) override { return Status::Ok(); }
  std::atomic<int> runs{0};

 private:
  const std::vector<ReportStage> stages_{{"exposition",
                                          [this](TickReport&) {
                                            ++runs;
                                            return Status::Ok();
                                          },
                                          /*on_catch_up=*/true}};
};

// A feed whose barriers pass only when the test says so (a database that has not answered yet).
class GatedListener final : public store::ChangeListener {
 public:
  store::ChangeBatch Take() override { return {}; }
  uint64_t RequestBarrier() override { return ++requested; }
  bool WaitBarrier(uint64_t number, std::chrono::steady_clock::time_point deadline) override {
    while (std::chrono::steady_clock::now() < deadline) {
      if (open.load()) return number <= requested.load();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  std::atomic<uint64_t> requested{0};
  std::atomic<bool> open{false};
};

std::string ReplicaText(const expose::ExpositionSnapshot& replica) {
  return replica.Render(expose::Format::kText004, 0);
}

TEST(ScrapeBarrier, AScrapeIsServedAfterTheBarrierAndACatchUpOnlyWhileOtherReplicasAreLive) {
  expose::ExpositionSnapshot replica;
  ScrapeBarrier barrier(replica, ScrapeBarrierOptions{.deadline = std::chrono::seconds(60)});
  EXPECT_FALSE(barrier.Needed());  // not attached yet: served as it is
  GatedListener listener;
  CatchUpStages stages;
  ControlLoop loop(stages, SystemClock::Get(),
                   ControlLoopOptions{.tick_interval = std::chrono::hours(1)});
  loop.Start();
  ASSERT_TRUE(testing::WaitUntil([&] { return stages.runs.load() == 1; }));  // the first tick
  std::atomic<bool> others{false};
  barrier.Attach(listener, loop, [&] { return others.load(); });
  EXPECT_FALSE(barrier.Needed());  // alone: no barrier
  others = true;
  EXPECT_TRUE(barrier.Needed());

  std::atomic<int> served{0}, reached{0};
  barrier.Await([&](bool ok) {
    reached += ok ? 1 : 0;
    ++served;
  });
  // Nothing is served before the barrier passed, and no catch-up ran for it yet.
  ASSERT_TRUE(testing::WaitUntil([&] { return listener.requested.load() == 1; }));
  EXPECT_EQ(served.load(), 0);
  EXPECT_EQ(stages.runs.load(), 1);  // no catch-up yet
  listener.open = true;
  ASSERT_TRUE(testing::WaitUntil([&] { return served.load() == 1; }));
  EXPECT_EQ(reached.load(), 1);
  EXPECT_EQ(stages.runs.load(), 2);  // one catch-up
  ASSERT_TRUE(testing::WaitUntil([&] {
    return ReplicaText(replica).find("fleetwatch_scrape_barrier_scrapes_total 1.0") !=
           std::string::npos;
  })) << ReplicaText(replica);
  EXPECT_NE(ReplicaText(replica).find("fleetwatch_scrape_barrier_expired_total 0.0"),
            std::string::npos);
  EXPECT_EQ(barrier.stats().scrapes, 1u);
  loop.Stop();
}

TEST(ScrapeBarrier, AScrapeIsAnsweredAtItsDeadlineWithWhatThereIsAndCounted) {
  expose::ExpositionSnapshot replica;
  ScrapeBarrier barrier(replica, ScrapeBarrierOptions{.deadline = std::chrono::milliseconds(50)});
  GatedListener listener;  // never opens
  CatchUpStages stages;
  ControlLoop loop(stages, SystemClock::Get(),
                   ControlLoopOptions{.tick_interval = std::chrono::hours(1)});
  barrier.Attach(listener, loop, [] { return true; });
  std::atomic<int> served{0}, reached{0};
  barrier.Await([&](bool ok) {
    reached += ok ? 1 : 0;
    ++served;
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return served.load() == 1; }));
  EXPECT_EQ(reached.load(), 0);
  EXPECT_EQ(stages.runs.load(), 0);  // no tick, no catch-up
  const ScrapeBarrierStats stats = barrier.stats();
  EXPECT_EQ(stats.scrapes, 1u);
  EXPECT_EQ(stats.expired, 1u);
  // Stopped, it answers at once, not reached.
  barrier.Stop();
  EXPECT_FALSE(barrier.Needed());
  bool answered = false, ok = true;
  barrier.Await([&](bool r) {
    answered = true;
    ok = r;
  });
  EXPECT_TRUE(answered);
  EXPECT_FALSE(ok);
}

}  // namespace
}  // namespace fleetwatch::server
