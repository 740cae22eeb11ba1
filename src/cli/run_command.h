#pragma once

#include <string_view>

#include "cli/api_client.h"
#include "util/status.h"

namespace fleetwatch::cli {

// Submits a run configuration (YAML or JSON, per `content_type`) to the project's runs and
// prints "Submitted run NAME (status STATUS)". Shared by `run` and `apply`.
Status SubmitRun(ApiClient& api, std::string_view configuration, std::string_view content_type);

}  // namespace fleetwatch::cli
