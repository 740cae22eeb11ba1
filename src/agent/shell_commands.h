#pragma once

#include <string>
#include <vector>

namespace fleetwatch::agent {

// The one `sh -c` script that runs a job's commands, joined the way dstack joins a run's
// commands: each command is trimmed of surrounding whitespace, a command that ends in `&` (a
// background command) is wrapped in `{ ... }`, and the commands are joined with " && ". So the
// script stops at the first command that fails and exits with that command's status; a command
// with its own `;` or newline runs as the shell reads it. Commands that are blank after trimming
// are left out (the run configuration refuses empty ones). Pure function; thread-safe.
std::string JoinShellCommands(const std::vector<std::string>& commands);

}  // namespace fleetwatch::agent
