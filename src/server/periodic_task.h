#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace fleetwatch::server {

// Runs `work` on its own thread every `interval` until stopped. Thread-safe.
class PeriodicTask {
 public:
  PeriodicTask(std::string name, std::chrono::milliseconds interval, std::function<void()> work);
  ~PeriodicTask();  // calls Stop()
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void Start();
  // Waits for a pass in progress to finish. Idempotent.
  void Stop();

 private:
  std::string name_;
  std::chrono::milliseconds interval_;
  std::function<void()> work_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace fleetwatch::server
