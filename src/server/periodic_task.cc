#include "server/periodic_task.h"

#include <spdlog/spdlog.h>

#include <exception>

namespace fleetwatch::server {

PeriodicTask::PeriodicTask(std::string name, std::chrono::milliseconds interval,
                           std::function<void()> work)
    : name_(std::move(name)), interval_(interval), work_(std::move(work)) {}

PeriodicTask::~PeriodicTask() { Stop(); }

void PeriodicTask::Start() {
  thread_ = std::thread([this] {
    MutexLock lock(mu_);
    while (!stopping_) {
      lock.Unlock();
      try {
        work_();
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", name_, e.what());
      }
      lock.Lock();
      const auto deadline = std::chrono::steady_clock::now() + interval_;
      while (!stopping_ && cv_.WaitUntil(mu_, deadline)) {
      }
    }
  });
}

void PeriodicTask::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

}  // namespace fleetwatch::server
