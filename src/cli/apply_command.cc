// `fleetwatch apply -f FILE [-d]`: submits a run or fleet configuration, by its `type`; a run is
// then followed until it ends unless -d.
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
  bool detach = false;
};

Result<int> Apply(const ApplyArgs& args) {
  FW_ASSIGN_OR_RETURN(ConfigurationFile file, ReadConfigurationFile(args.file));
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  if (file.type == "fleet") {
    FW_RETURN_IF_ERROR(SubmitFleet(api, file));
    return 0;
  }
  return SubmitRun(api, file.text, file.content_type, args.detach);
}

}  // namespace

void AddApplyCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ApplyArgs>();
  CLI::App* apply = app.add_subcommand(
      "apply",
      "Submit a configuration file: a run (task, service, dev-environment), followed until it "
      "ends unless -d, or a fleet");
  apply->add_option("-f,--file", args->file, "Configuration (YAML, or JSON as .json; - for stdin)")
      ->required();
  apply->add_flag("-d,--detach", args->detach, kDetachHelp);
  AddClientFlags(*apply, args->flags);
  OnRunWithExitCode(*apply, exit_code, [args] { return Apply(*args); });
}

}  // namespace fleetwatch::cli
