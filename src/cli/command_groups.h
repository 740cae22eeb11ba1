#pragma once

// One function per command file; AddClientCommands (commands.cc) calls them all. Each adds its
// subcommands to `app` and stores the exit code of the one that runs in `exit_code`.

namespace CLI {
class App;
}

namespace fleetwatch::cli {

void AddConfigCommand(CLI::App& app, int& exit_code);         // config_command.cc
void AddProjectCommands(CLI::App& app, int& exit_code);       // project_commands.cc
void AddUserCommands(CLI::App& app, int& exit_code);          // user_commands.cc
void AddFleetCommands(CLI::App& app, int& exit_code);         // fleet_commands.cc
void AddApplyCommand(CLI::App& app, int& exit_code);          // apply_command.cc
void AddRunCommand(CLI::App& app, int& exit_code);            // run_command.cc
void AddPsCommand(CLI::App& app, int& exit_code);             // ps_command.cc
void AddRunLifecycleCommands(CLI::App& app, int& exit_code);  // run_lifecycle_commands.cc
void AddLogsCommand(CLI::App& app, int& exit_code);           // logs_command.cc
void AddMetricsCommand(CLI::App& app, int& exit_code);        // metrics_command.cc
void AddWasteCommand(CLI::App& app, int& exit_code);          // waste_command.cc
void AddStatsCommand(CLI::App& app, int& exit_code);          // stats_command.cc

}  // namespace fleetwatch::cli
