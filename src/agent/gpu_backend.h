#pragma once

#include <cstdint>
#include <vector>

#include "model/entities.h"
#include "util/status.h"

namespace fleetwatch::agent {

// One reading of one GPU, cheap enough to take every collection tick.
struct GpuSample {
  int util_percent = 0;           // 0..100
  int64_t memory_used_bytes = 0;  // >= 0
};

// The GPUs of this host as one vendor library or kernel interface reports them. Implementations
// never crash on odd values from the hardware side: text is passed through as data (it is
// untrusted: callers escape it), numbers are clamped into range. Thread-safe.
class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  // The host's GPUs, indexed 0..n-1 in the order the vendor reports them. Empty when there are
  // none or the vendor library is missing.
  virtual std::vector<model::Gpu> ListGpus() const = 0;
  // The current utilisation and memory use of GPU `index` (an index from ListGpus()).
  // NotFound for an unknown index; Unavailable when the device cannot be read right now.
  virtual Result<GpuSample> Sample(int index) const = 0;
};

}  // namespace fleetwatch::agent
