#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <string>

#include "cli/status_message.h"
#include "cli/table.h"
#include "util/clock.h"

namespace fleetwatch::cli {

// The statuses `fleetwatch ps` shows without -a: runs that have not finished.
inline constexpr const char* kUnfinishedRunStatuses =
    "pending,submitted,provisioning,running,terminating";

// The `ps` table for runs as the server lists them (docs/api.md "A run"): columns RUN, USER,
// TYPE, STATUS, INSTANCE, GPU, SUBMITTED, DURATION. STATUS is the status message
// (status_message.h: "failed (exit 3)"), cut to `status_width` columns with "…". A run with more
// than one job is followed by one indented row per job ("  job=J replica=R") with the job's
// status message and instance. SUBMITTED is relative to `now`; DURATION runs to finished_at, or
// to `now` while the run is unfinished. Pure.
Table RunsTable(const boost::json::array& runs, TimeMicros now,
                size_t status_width = kStatusCellWidth);

// A run configuration's resources.gpu as a short text: "-" for none, "2", "A100:2",
// "A100:80GB:2"; the forms N, "spec" and {name, count, memory|memory_bytes} are understood. Pure.
std::string FormatGpuRequest(const boost::json::value* gpu);

}  // namespace fleetwatch::cli
