#pragma once

// What `run` and `apply` do after submitting a run, unless told -d/--detach: follow it like
// `dstack apply` does. The job's output streams to stdout until the run ends, and the command
// exits with the run's exit code. Ctrl-C detaches: the run keeps running.

#include <boost/json/value.hpp>
#include <string>

#include "cli/api_client.h"
#include "util/status.h"

namespace fleetwatch::cli {

// The exit code of a finished run as `run` returns it: 0 for done; for failed, the exit code of
// its failed job when that is 1..255 (the newest listed job first), else 1; 1 for terminated and
// anything else. Pure.
int RunExitCode(const boost::json::value& run);

// Streams the output of job 0 (replica 0) of run `run_name` to stdout, waiting for it to start
// when it has not yet, until the job ends; then waits for the run to end (polling every second),
// prints "Run NAME STATUS_MESSAGE" to stderr unless it is done, and returns RunExitCode. While it
// runs, Ctrl-C (SIGINT) exits 0 at once after printing to stderr that the run keeps running and
// how to stop it. A failure to talk to the server is the error. Main thread only.
Result<int> AttachToRun(ApiClient& api, const std::string& run_name);

}  // namespace fleetwatch::cli
