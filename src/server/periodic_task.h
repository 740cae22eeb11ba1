#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "util/mutex.h"

namespace fleetwatch::server {

// Runs `work` on its own thread every `interval` until stopped. Thread-safe.
class PeriodicTask {
 public:
  PeriodicTask(std::string name, std::chrono::milliseconds interval, std::function<void()> work);
  ~PeriodicTask();  // calls Stop()
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void Start() FW_EXCLUDES(mu_);
  // Waits for a pass in progress to finish. Idempotent.
  void Stop() FW_EXCLUDES(mu_);

 private:
  std::string name_;
  std::chrono::milliseconds interval_;
  std::function<void()> work_;
  Mutex mu_;
  CondVar cv_;
  bool stopping_ FW_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace fleetwatch::server
