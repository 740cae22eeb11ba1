#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "util/check.h"
#include "util/thread_annotations.h"

namespace fleetwatch {

// std::mutex with the annotations of util/thread_annotations.h, so that clang's thread-safety
// analysis checks the members guarded by it (FW_GUARDED_BY). Not recursive. Thread-safe.
// lock(), unlock() and try_lock() are for MutexLock and CondVar (and std::scoped_lock when two
// must be taken at once): code takes a Mutex through a MutexLock.
class FW_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() FW_ACQUIRE() {
    mu_.lock();
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  void unlock() FW_RELEASE() {
    owner_.store(std::thread::id(), std::memory_order_relaxed);
    mu_.unlock();
  }
  bool try_lock() FW_TRY_ACQUIRE(true) {
    if (!mu_.try_lock()) return false;
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    return true;
  }

  // Aborts (FW_CHECK) unless the calling thread holds this Mutex, and tells the analysis that it
  // does: for code that runs under the lock in a way the analysis cannot follow, such as a
  // callback that the lock holder calls. (Only the holder writes its own id, so the relaxed
  // read is exact for the calling thread.)
  void AssertHeld() const FW_ASSERT_CAPABILITY(this) {
    FW_CHECK(owner_.load(std::memory_order_relaxed) == std::this_thread::get_id(),
             "a Mutex that the calling thread does not hold");
  }

 private:
  friend class CondVar;
  std::mutex mu_;
  std::atomic<std::thread::id> owner_{};
};

// Holds a Mutex for its scope. Unlock() and Lock() let a scope drop it around slow work
// (I/O, a callback) and take it again; the destructor unlocks only when held. Not thread-safe
// (one scope's).
class FW_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) FW_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() FW_RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() FW_RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void Lock() FW_ACQUIRE() {
    mu_.lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// std::condition_variable for a Mutex. The waits take the Mutex held (through a MutexLock) and
// return with it held; like any condition variable they may wake spuriously, so callers wait in
// a loop on their condition:
//
//   MutexLock lock(mu_);
//   while (!done_) cv_.Wait(mu_);
//
// (Predicates as lambdas would hide the guarded reads from the analysis; the loop keeps them in
// the annotated function.) Thread-safe.
class CondVar {
 public:
  void Wait(Mutex& mu) FW_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock = Adopt(mu);
    cv_.wait(lock);
    Readopt(mu, lock);
  }
  // False when `deadline` passed (a wake-up and a timeout at once may return either).
  bool WaitUntil(Mutex& mu, std::chrono::steady_clock::time_point deadline) FW_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock = Adopt(mu);
    const std::cv_status status = cv_.wait_until(lock, deadline);
    Readopt(mu, lock);
    return status == std::cv_status::no_timeout;
  }
  // False when `timeout` passed.
  template <class Rep, class Period>
  bool WaitFor(Mutex& mu, std::chrono::duration<Rep, Period> timeout) FW_REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  // The wait releases and retakes the std::mutex inside; the Mutex's owner follows.
  static std::unique_lock<std::mutex> Adopt(Mutex& mu) {
    mu.owner_.store(std::thread::id(), std::memory_order_relaxed);
    return std::unique_lock<std::mutex>(mu.mu_, std::adopt_lock);
  }
  static void Readopt(Mutex& mu, std::unique_lock<std::mutex>& lock) {
    lock.release();
    mu.owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }

  std::condition_variable cv_;
};

}  // namespace fleetwatch
