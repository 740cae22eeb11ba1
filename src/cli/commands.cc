#include "cli/commands.h"

#include "cli/command_groups.h"

namespace fleetwatch::cli {

void AddClientCommands(CLI::App& app, int& exit_code) {
  AddConfigCommand(app, exit_code);
  AddProjectCommands(app, exit_code);
  AddUserCommands(app, exit_code);
  AddFleetCommands(app, exit_code);
  AddApplyCommand(app, exit_code);
  AddRunCommand(app, exit_code);
  AddPsCommand(app, exit_code);
  AddRunLifecycleCommands(app, exit_code);
  AddLogsCommand(app, exit_code);
  AddMetricsCommand(app, exit_code);
  AddWasteCommand(app, exit_code);
  AddStatsCommand(app, exit_code);
}

}  // namespace fleetwatch::cli
