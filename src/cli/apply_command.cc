// `fleetwatch apply -f FILE`: submits a run or fleet configuration, by its `type`.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/configuration_file.h"
#include "cli/fleet_commands.h"
#include "cli/run_command.h"

namespace fleetwatch::cli {
namespace {

struct ApplyArgs {
  ClientFlags flags;
  std::string file;
};

Status Apply(const ApplyArgs& args) {
  FW_ASSIGN_OR_RETURN(ConfigurationFile file, ReadConfigurationFile(args.file));
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  if (file.type == "fleet") return SubmitFleet(api, file);
  return SubmitRun(api, file.text, file.content_type);
}

}  // namespace

void AddApplyCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ApplyArgs>();
  CLI::App* apply = app.add_subcommand(
      "apply", "Submit a configuration file: a run (task, service, dev-environment) or a fleet");
  apply->add_option("-f,--file", args->file, "Configuration (YAML, or JSON as .json; - for stdin)")
      ->required();
  AddClientFlags(*apply, args->flags);
  OnRun(*apply, exit_code, [args] { return Apply(*args); });
}

}  // namespace fleetwatch::cli
