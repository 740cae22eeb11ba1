// `fleetwatch waste [--since 7d] [--by project|user|run] [--all-projects] [--json]`: GPU time
// held by jobs, how much of it was idle and what the idle part cost, then the right-sizing notes
// of the jobs that ended in the window, summed per project (docs/api.md "GPU waste").
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/terminal_text.h"
#include "cli/waste_views.h"
#include "http/message.h"
#include "model/json_text.h"

namespace fleetwatch::cli {
namespace {

struct WasteArgs {
  ClientFlags flags;
  std::string since = "7d";
  std::string by = "project";
  bool all_projects = false;
  bool json = false;
};

Status ShowWaste(const WasteArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  // The server checks both values and answers a clear 400 for bad ones.
  const std::string query =
      "?since=" + http::UrlEncode(args.since) + "&by=" + http::UrlEncode(args.by);
  const std::string path = args.all_projects ? "/api/waste" : api.ProjectPath("/waste");
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.Get(path + query));
  if (args.json) {
    std::cout << model::SerializeJson(reply) << "\n";
    return Status::Ok();
  }
  PrintTable(WasteTable(reply));
  std::cout << RenderWasteNotes(reply, TerminalWidth());
  return Status::Ok();
}

}  // namespace

void AddWasteCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<WasteArgs>();
  CLI::App* waste = app.add_subcommand(
      "waste",
      "GPU time held by jobs, how much of it was idle and what that cost, and the right-sizing "
      "notes of the jobs that ended in the window, per project");
  waste
      ->add_option("--since", args->since,
                   "How far back: a number and s, m, h, d or w (whole hours are counted)")
      ->default_str("7d");
  waste->add_option("--by", args->by, "One row per project, user or run")->default_str("project");
  waste->add_flag("--all-projects", args->all_projects,
                  "Every project of the server (global admins only)");
  waste->add_flag("--json", args->json, "Print the server's report as JSON");
  AddClientFlags(*waste, args->flags);
  OnRun(*waste, exit_code, [args] { return ShowWaste(*args); });
}

}  // namespace fleetwatch::cli
