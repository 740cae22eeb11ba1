#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "agent/nvml_api.h"
#include "model/gpu_reading.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace fleetwatch::agent::nvml {

// XID critical errors of a host's GPUs, gathered by a thread of its own from one NVML event set
// in bounded waits (500 ms), so that destruction returns within about that long. Counts per XID
// number and the newest event, stamped with `clock` when received, since construction. An event
// for a device it does not know is dropped; a failing wait is logged once and retried each
// second. Never fails: without the event functions, or with no GPU that supports XID events, it
// watches nothing (and starts no thread). Thread-safe. The NVML functions in `api` must stay
// loaded, and `clock` alive, until it is destroyed.
class XidWatcher {
 public:
  // `handles[i]` is GPU i's device.
  XidWatcher(const NvmlOptional& api, std::vector<nvmlDevice_t> handles, const Clock& clock);
  ~XidWatcher();
  XidWatcher(const XidWatcher&) = delete;
  XidWatcher& operator=(const XidWatcher&) = delete;

  // GPU `index`'s events so far (empty counts before the first); absent when its events are not
  // watched.
  std::optional<model::XidEvents> Events(int index) const;

 private:
  struct PerGpu {
    std::map<int64_t, int64_t> counts;
    std::optional<int64_t> last;
    std::optional<TimeMicros> last_at;
  };

  void Run();

  const NvmlOptional api_;
  const std::vector<nvmlDevice_t> handles_;
  const Clock& clock_;
  std::vector<bool> watched_;  // written only before the thread starts
  nvmlEventSet_t set_ = nullptr;
  std::atomic<bool> stop_{false};
  mutable Mutex mu_;
  std::map<int, PerGpu> per_gpu_ FW_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace fleetwatch::agent::nvml
