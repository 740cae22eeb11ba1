#include "agent/nvml_xid_watcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace fleetwatch::agent::nvml {
namespace {

// How long one wait blocks: bounds how long destruction waits for the thread.
constexpr unsigned int kEventWaitMillis = 500;

}  // namespace

XidWatcher::XidWatcher(const NvmlOptional& api, std::vector<nvmlDevice_t> handles,
                       const Clock& clock)
    : api_(api), handles_(std::move(handles)), clock_(clock), watched_(handles_.size(), false) {
  if (api_.event_set_create == nullptr || api_.register_events == nullptr ||
      api_.event_wait == nullptr || api_.event_set_free == nullptr) {
    return;
  }
  if (api_.event_set_create(&set_) != kNvmlSuccess) {
    set_ = nullptr;
    return;
  }
  bool any = false;
  for (size_t i = 0; i < handles_.size(); ++i) {
    unsigned long long supported = kEventTypeXidCriticalError;
    if (api_.supported_events != nullptr &&
        api_.supported_events(handles_[i], &supported) != kNvmlSuccess) {
      continue;
    }
    if ((supported & kEventTypeXidCriticalError) == 0) continue;
    if (api_.register_events(handles_[i], kEventTypeXidCriticalError, set_) != kNvmlSuccess) {
      continue;
    }
    watched_[i] = true;
    any = true;
  }
  if (!any) {
    api_.event_set_free(set_);
    set_ = nullptr;
    return;
  }
  thread_ = std::thread([this] { Run(); });
}

XidWatcher::~XidWatcher() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (set_ != nullptr) api_.event_set_free(set_);
}

std::optional<model::XidEvents> XidWatcher::Events(int index) const {
  if (index < 0 || static_cast<size_t>(index) >= watched_.size() ||
      !watched_[static_cast<size_t>(index)]) {
    return std::nullopt;
  }
  MutexLock lock(mu_);
  model::XidEvents events;
  auto it = per_gpu_.find(index);
  if (it == per_gpu_.end()) return events;
  for (const auto& [xid, count] : it->second.counts) events.counts.push_back({xid, count});
  events.last = it->second.last;
  events.last_at = it->second.last_at;
  return events;
}

void XidWatcher::Run() {
  bool reported = false;
  while (!stop_.load()) {
    nvmlEventData_t data{};
    nvmlReturn_t rc = api_.event_wait(set_, &data, kEventWaitMillis);
    if (rc == kNvmlTimeout) continue;
    if (rc != kNvmlSuccess) {
      if (!reported) spdlog::warn("NVML event wait failed with code {}; retrying", rc);
      reported = true;
      // Sleep in short steps so that destruction stays prompt.
      for (int i = 0; i < 10 && !stop_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    if ((data.eventType & kEventTypeXidCriticalError) == 0) continue;
    auto it = std::find(handles_.begin(), handles_.end(), data.device);
    if (it == handles_.end()) continue;
    int index = static_cast<int>(it - handles_.begin());
    int64_t xid = Clamp(data.eventData);
    if (xid > model::kMaxGpuReadingCount) continue;  // not an XID number
    TimeMicros now = clock_.Now();
    MutexLock lock(mu_);
    PerGpu& gpu = per_gpu_[index];
    ++gpu.counts[xid];
    gpu.last = xid;
    gpu.last_at = now;
  }
}

}  // namespace fleetwatch::agent::nvml
