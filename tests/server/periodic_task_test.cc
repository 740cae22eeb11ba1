#include "server/periodic_task.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "support/process.h"

namespace fleetwatch::server {
namespace {

using std::chrono::milliseconds;

TEST(PeriodicTask, RunsUntilStoppedAndStopWaitsForThePassInProgress) {
  std::atomic<int> passes{0};
  std::atomic<bool> in_pass{false};
  PeriodicTask task("test", milliseconds(1), [&] {
    in_pass = true;
    std::this_thread::sleep_for(milliseconds(5));
    ++passes;
    in_pass = false;
  });
  task.Start();
  ASSERT_TRUE(testing::WaitUntil([&] { return passes.load() >= 3; }));
  // Stopped from another thread than the one that started it, as the server's signal handling
  // does.
  std::thread stopper([&] { task.Stop(); });
  stopper.join();
  EXPECT_FALSE(in_pass.load());
  const int stopped_at = passes.load();
  task.Stop();  // idempotent
  EXPECT_EQ(passes.load(), stopped_at);
}

TEST(PeriodicTask, StopEndsALongWaitAtOnce) {
  std::atomic<int> passes{0};
  PeriodicTask task("test", std::chrono::hours(1), [&] { ++passes; });
  task.Start();
  ASSERT_TRUE(testing::WaitUntil([&] { return passes.load() == 1; }));
  const auto before = std::chrono::steady_clock::now();
  task.Stop();  // does not sit out the hour
  EXPECT_EQ(passes.load(), 1);
  std::printf("Stop took %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(
                                         std::chrono::steady_clock::now() - before)
                                         .count()));
}

TEST(PeriodicTask, AThrowingPassIsLoggedAndTheTaskGoesOn) {
  std::atomic<int> passes{0};
  PeriodicTask task("test", milliseconds(1), [&] {
    if (++passes == 1) throw std::runtime_error("first pass fails");
  });
  task.Start();
  EXPECT_TRUE(testing::WaitUntil([&] { return passes.load() >= 2; }));
  task.Stop();
}

}  // namespace
}  // namespace fleetwatch::server
