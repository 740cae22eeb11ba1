#pragma once

namespace CLI {
class App;
}

namespace fleetwatch::cli {

// Adds the client subcommands (config, project, user, fleet, apply, run, ps, stop, delete, logs,
// metrics) to `app`. Each one talks to the server's REST API only. When a command runs, it stores
// its process exit code in `exit_code`: 0 on success; on failure it has printed one line "error:
// ..." to stderr and sets a non-zero code. `exit_code` must outlive `app`.
void AddClientCommands(CLI::App& app, int& exit_code);

}  // namespace fleetwatch::cli
