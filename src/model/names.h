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

// Ids that cross the agent protocol: 1 to 64 characters of [A-Za-z0-9-]. The server's job ids
// (UUID text) and the agent's own id follow it; the agent refuses any other job id and the server
// refuses a reply that carries one. Safe as a file name, a cgroup name and a URL path segment.
bool IsValidJobId(std::string_view id);
bool IsValidAgentId(std::string_view id);

}  // namespace fleetwatch::model
