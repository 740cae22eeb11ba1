#pragma once

#include "cli/api_client.h"
#include "cli/configuration_file.h"
#include "util/status.h"

namespace fleetwatch::cli {

// Submits a fleet configuration to the project's fleets and prints the created fleet as a table.
// Shared by `fleet apply` and `apply`.
Status SubmitFleet(ApiClient& api, const ConfigurationFile& file);

}  // namespace fleetwatch::cli
