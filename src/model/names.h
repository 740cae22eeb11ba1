#pragma once

#include <string_view>

#include "util/status.h"

namespace fleetwatch::model {

// Names that users choose (projects, users, fleets, runs) are short lowercase identifiers:
// ^[a-z][a-z0-9-]{0,40}$. They end up in URLs, file names and Prometheus labels, so nothing
// else is let in. `what` names the thing in the error ("project name", "run name", ...).
Status ValidateName(std::string_view what, std::string_view name);

// True when `name` matches the pattern above.
bool IsValidName(std::string_view name);

}  // namespace fleetwatch::model
