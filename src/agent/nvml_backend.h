#pragma once

#include <memory>
#include <string>

#include "agent/gpu_backend.h"
#include "util/clock.h"

namespace fleetwatch::agent {

// The NVML library to load: $FLEETWATCH_NVML_LIBRARY when set, else "libnvidia-ml.so.1".
std::string DefaultNvmlLibrary();

// NVIDIA GPUs through NVML, loaded with dlopen at run time so the binary runs on hosts without
// the driver. A library that cannot be loaded, lacks one of the core functions (init, shutdown,
// count, handle, name, uuid, memory, utilisation), or whose nvmlInit fails gives a backend with
// no GPUs (logged once at info); never an error. Every other function (power, energy,
// temperature, clock-event reasons, ECC, remapped rows, retired pages, NVLink, processes,
// events) is optional: when the library lacks it, or it answers NOT_SUPPORTED or any other
// error, its reading is absent from Read(), never a failure. The GPU list is read once here;
// Sample() and Read() ask NVML each time.
//
// XID critical errors are gathered by a thread of the backend's own, waiting on one NVML event
// set in bounded waits (500 ms): counts per XID and the newest one, stamped with `clock` when
// received, since the backend was opened. `clock` must outlive the backend. The caller owns the
// result; the thread is stopped, then the library shut down and unloaded when it is destroyed.
// Thread-safe.
std::unique_ptr<GpuBackend> OpenNvmlBackend(const std::string& library,
                                            const Clock& clock = SystemClock::Get());

}  // namespace fleetwatch::agent
