// `fleetwatch run [options] -- command args...`: submits a task built from flags and follows it.
#include "cli/run_command.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <memory>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/json_fields.h"
#include "cli/run_attach.h"
#include "cli/run_request.h"

namespace fleetwatch::cli {
namespace {

struct RunArgs {
  ClientFlags flags;
  RunFlags run;
  bool detach = false;
};

Result<int> SubmitTask(const RunArgs& args) {
  FW_ASSIGN_OR_RETURN(std::string configuration, BuildRunConfigurationJson(args.run));
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  return SubmitRun(api, configuration, "application/json", args.detach);
}

}  // namespace

Result<int> SubmitRun(ApiClient& api, std::string_view configuration, std::string_view content_type,
                      bool detach) {
  FW_ASSIGN_OR_RETURN(boost::json::value run,
                      api.Post(api.ProjectPath("/runs"), configuration, content_type));
  const std::string name = StringField(run, "run_name");
  PrintLine("Submitted run " + (name.empty() ? "?" : name) + " (status " +
            StringField(run, "status", "?") + ")");
  if (detach) return 0;
  if (name.empty()) return Internal("the server accepted the run but sent no run_name");
  // What follows is the job's own output; the line above has to be out before it.
  std::cout.flush();
  return AttachToRun(api, name);
}

void AddRunCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* run = app.add_subcommand(
      "run",
      "Submit a task that runs a command and stream its output until it ends (-d: return at "
      "once): fleetwatch run [options] -- command args...");
  run->add_option("--name", args->run.name, "Run name (default: the server picks one)");
  run->add_option("--gpu", args->run.gpu, "GPUs: N, NAME, NAME:N or NAME:MEMORY:N");
  run->add_option("--cpu", args->run.cpu, "CPUs");
  run->add_option("--memory", args->run.memory, "Memory limit, e.g. 16GB");
  run->add_option("--nodes", args->run.nodes, "Number of nodes");
  run->add_option("--max-duration", args->run.max_duration, "Stop the run after this, e.g. 2h");
  AddRepeatableOption(*run, "-e,--env", args->run.env,
                      "Environment variable KEY=VALUE; one per flag, repeat it for more");
  run->add_flag("-d,--detach", args->detach, kDetachHelp);
  run->add_option("command", args->run.command, "The command and its arguments, after --");
  AddClientFlags(*run, args->flags);
  OnRunWithExitCode(*run, exit_code, [args] { return SubmitTask(*args); });
}

}  // namespace fleetwatch::cli
