#pragma once

// Why a run or job is in its status, as one short text: "failed (exit 3)", "terminated (max
// duration 20s)", "submitted (waiting: 0 of 1 CPUs free on local)". The server words it and sends
// it as "status_message"; for a server that does not, the same shape is composed from "status",
// "termination_reason" and "exit_code". All functions are pure and thread-safe.

#include <boost/json/value.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace fleetwatch::cli {

// How wide a status message may be in a table cell; longer ones end in "…" there (the --json
// output and detail views keep them whole).
inline constexpr size_t kStatusCellWidth = 40;

// A job's "status_message" when it is a non-empty string, else composed: the status, followed by
// " (REASON)" when the job has a termination reason that says more than the status does, e.g.
// "failed (exit 3)" for a non-zero exit code, "failed (no capacity)", "terminated (stopped by
// user)", "terminated (max duration)". "?" when there is no status.
std::string JobStatusMessage(const boost::json::value& job);

// A run's "status_message" when it is a non-empty string, else composed: a failed run says why
// its failed job failed ("failed (exit 3)"), a run stopped by its limit or its user says so
// ("terminated (max duration)", "terminated (stopped by user)"), others show their status.
std::string RunStatusMessage(const boost::json::value& run);

// A termination reason in words ("no capacity", "stopped by user"); unknown reasons with their
// underscores as spaces.
std::string TerminationReasonText(std::string_view reason);

}  // namespace fleetwatch::cli
