#pragma once

#include <cstdint>
#include <vector>

#include "model/entities.h"
#include "model/gpu_reading.h"
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
  // Everything the backend can read of GPU `index` now (model/gpu_reading.h): utilisation and
  // memory, power, energy, temperature, throttle reasons, error counters, XID events, compute
  // processes. A reading the driver or GPU does not offer stays absent; it is never an error.
  // NotFound for an unknown index; Unavailable when the device cannot be opened at all. This
  // default reports only what Sample() has.
  virtual Result<model::GpuReading> Read(int index) const {
    Result<GpuSample> sample = Sample(index);
    if (!sample.ok()) return sample.status();
    model::GpuReading reading;
    reading.index = index;
    reading.util_percent = sample->util_percent;
    reading.memory_used_bytes = sample->memory_used_bytes;
    return reading;
  }
};

}  // namespace fleetwatch::agent
