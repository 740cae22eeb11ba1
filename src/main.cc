// fleetwatch: one binary, subcommands. `server` runs the control plane; the rest are clients of
// its REST API.
#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include "agent/agent_command.h"
#include "api/server_command.h"
#include "cli/command_line.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  // Everything any subcommand creates (database, keys, logs, config files, agent state) is the
  // user's alone unless the code widens it on purpose.
  ::umask(077);
  int exit_code = 0;
  CLI::App app{"fleetwatch: GPU fleets, runs and jobs, measured and exported to Prometheus",
               "fleetwatch"};
  app.set_version_flag("--version", "fleetwatch 0.1.0");
  fleetwatch::api::AddServerCommand(app, exit_code);
  fleetwatch::agent::AddAgentCommand(app, exit_code);
  fleetwatch::cli::AddClientCommands(app, exit_code);
  return fleetwatch::cli::RunCommandLine(app, exit_code, argc, argv);
}
