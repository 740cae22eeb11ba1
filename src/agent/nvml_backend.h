#pragma once

#include <memory>
#include <string>

#include "agent/gpu_backend.h"

namespace fleetwatch::agent {

// The NVML library to load: $FLEETWATCH_NVML_LIBRARY when set, else "libnvidia-ml.so.1".
std::string DefaultNvmlLibrary();

// NVIDIA GPUs through NVML, loaded with dlopen at run time so the binary runs on hosts without
// the driver. A library that cannot be loaded, lacks one of the functions used, or whose
// nvmlInit fails gives a backend with no GPUs (logged once at info); never an error. The GPU
// list is read once here; Sample() asks NVML each time. The caller owns the result; the library
// is shut down and unloaded when it is destroyed.
std::unique_ptr<GpuBackend> OpenNvmlBackend(const std::string& library);

}  // namespace fleetwatch::agent
