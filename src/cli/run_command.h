#pragma once

#include <string_view>

#include "cli/api_client.h"
#include "util/status.h"

namespace fleetwatch::cli {

// Submits a run configuration (YAML or JSON, per `content_type`) to the project's runs and
// prints "Submitted run NAME (status STATUS)". Then, with `detach`, returns 0 at once; else
// follows the run until it ends (AttachToRun, run_attach.h) and returns its exit code. Shared by
// `run` and `apply`.
Result<int> SubmitRun(ApiClient& api, std::string_view configuration, std::string_view content_type,
                      bool detach);

// The help text of -d/--detach, for `run` and `apply`.
inline constexpr const char* kDetachHelp =
    "Return once the run is submitted instead of streaming its output until it ends (then the "
    "exit code is the run's; Ctrl-C detaches, the run keeps running)";

}  // namespace fleetwatch::cli
