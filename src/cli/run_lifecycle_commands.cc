// `fleetwatch stop RUN [--abort]` and `fleetwatch delete RUN`.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <memory>

#include "cli/command_groups.h"
#include "cli/command_support.h"

namespace fleetwatch::cli {
namespace {

struct RunNameArgs {
  ClientFlags flags;
  std::string run;
  bool abort = false;
  bool yes = false;
};

Status StopRun(const RunNameArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_RETURN_IF_ERROR(Confirm(args.yes, (args.abort ? "Abort run " : "Stop run ") + args.run + "?"));
  boost::json::object body;
  if (args.abort) body["abort"] = true;
  FW_ASSIGN_OR_RETURN(
      boost::json::value reply,
      api.PostJson(api.ProjectPath("/runs/" + PathSegment(args.run) + "/stop"), body));
  PrintLine((args.abort ? "Aborting run " : "Stopping run ") + args.run);
  return Status::Ok();
}

Status DeleteRun(const RunNameArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_RETURN_IF_ERROR(Confirm(args.yes, "Delete run " + args.run + "?"));
  FW_ASSIGN_OR_RETURN(boost::json::value reply,
                      api.Delete(api.ProjectPath("/runs/" + PathSegment(args.run))));
  PrintLine("Deleted run " + args.run);
  return Status::Ok();
}

}  // namespace

void AddRunLifecycleCommands(CLI::App& app, int& exit_code) {
  auto stop = std::make_shared<RunNameArgs>();
  CLI::App* stop_cmd = app.add_subcommand("stop", "Stop a run (--abort: without a grace period)");
  stop_cmd->add_option("run", stop->run, "Run name")->required();
  stop_cmd->add_flag("--abort", stop->abort, "Kill the jobs at once instead of stopping them");
  AddYesFlag(*stop_cmd, stop->yes);
  AddClientFlags(*stop_cmd, stop->flags);
  OnRun(*stop_cmd, exit_code, [stop] { return StopRun(*stop); });

  auto del = std::make_shared<RunNameArgs>();
  CLI::App* delete_cmd = app.add_subcommand("delete", "Delete a finished run");
  delete_cmd->add_option("run", del->run, "Run name")->required();
  AddYesFlag(*delete_cmd, del->yes);
  AddClientFlags(*delete_cmd, del->flags);
  OnRun(*delete_cmd, exit_code, [del] { return DeleteRun(*del); });
}

}  // namespace fleetwatch::cli
