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
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      try {
        work_();
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", name_, e.what());
      }
      lock.lock();
      cv_.wait_for(lock, interval_, [this] { return stopping_; });
    }
  });
}

void PeriodicTask::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace fleetwatch::server
