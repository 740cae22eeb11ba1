#include "util/mutex.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace fleetwatch {
namespace {

// A counter whose lock the analysis checks (in clang builds).
class Counter {
 public:
  void Add() FW_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    AddLocked();
  }
  int value() const FW_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return n_;
  }

 private:
  void AddLocked() FW_REQUIRES(mu_) {
    mu_.AssertHeld();
    ++n_;
  }

  mutable Mutex mu_;
  int n_ FW_GUARDED_BY(mu_) = 0;
};

TEST(Mutex, MutexLockSerializesWriters) {
  Counter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&counter] {
      for (int i = 0; i < 1000; ++i) counter.Add();
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), 4000);
}

TEST(Mutex, MutexLockCanDropAndRetakeTheLock) {
  Mutex mu;
  MutexLock lock(mu);
  mu.AssertHeld();
  lock.Unlock();
  {
    // Another thread can take it meanwhile.
    std::thread other([&mu] { MutexLock inner(mu); });
    other.join();
  }
  lock.Lock();
  mu.AssertHeld();
}  // the destructor unlocks once

TEST(MutexDeathTest, AssertHeldAbortsWhenTheCallerDoesNotHoldIt) {
  Mutex mu;
  EXPECT_DEATH(mu.AssertHeld(), "a Mutex that the calling thread does not hold");
  // Held by another thread is not held by the caller either.
  EXPECT_DEATH(
      {
        MutexLock lock(mu);
        std::thread other([&mu] { mu.AssertHeld(); });
        other.join();
      },
      "a Mutex that the calling thread does not hold");
}

TEST(CondVar, WaitReturnsWithTheLockHeldOnceNotified) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu (a local: the analysis cannot name it)
  std::thread notifier([&] {
    MutexLock lock(mu);
    ready = true;
    cv.NotifyAll();
  });
  {
    MutexLock lock(mu);
    while (!ready) cv.Wait(mu);
    mu.AssertHeld();  // the owner is the waiter again after the wait
  }
  notifier.join();
}

TEST(CondVar, WaitUntilReportsATimeout) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(mu);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
  bool notified = true;
  // Spurious wake-ups return true before the deadline; the loop ends on the timeout.
  while (notified) notified = cv.WaitUntil(mu, deadline);
  EXPECT_FALSE(notified);
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
  mu.AssertHeld();
  EXPECT_FALSE(cv.WaitFor(mu, std::chrono::milliseconds(0)));
}

}  // namespace
}  // namespace fleetwatch
