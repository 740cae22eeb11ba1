#pragma once

#include <boost/json/object.hpp>

#include "model/gpu_reading.h"

namespace fleetwatch::agent {

// One entry of the "gpus" list of GET /api/poll?metrics=1 (docs/agent-api.md "GPU readings"):
// {"index", "uuid"} and each reading that is present, under the names and units the document
// gives; an absent reading, or one outside its range in model/gpu_reading.h, has no key.
// "throttle_reasons" carries the mask and its named bits. Pure; thread-safe.
boost::json::object GpuReadingJson(const model::GpuReading& reading);

}  // namespace fleetwatch::agent
