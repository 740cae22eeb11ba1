// `fleetwatch ps [-a] [--json]`: lists runs.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/json_fields.h"
#include "cli/run_views.h"
#include "model/json_text.h"
#include "util/clock.h"

namespace fleetwatch::cli {
namespace {

struct PsArgs {
  ClientFlags flags;
  bool all = false;
  bool json = false;
  bool verbose = false;
};

Status ListRuns(const PsArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  std::string query = args.all ? "?limit=100" : std::string("?status=") + kUnfinishedRunStatuses;
  // The table needs only each run's "resources"; --json shows runs whole, for scripts.
  if (args.json) query += "&configuration=1";
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.Get(api.ProjectPath("/runs") + query));
  FW_ASSIGN_OR_RETURN(const boost::json::array* items, Items(reply));
  if (args.json) {
    // Re-serialized rather than echoed: well-formed JSON, control characters escaped.
    std::cout << model::SerializeJson(boost::json::object{{"items", *items}}) << "\n";
    return Status::Ok();
  }
  if (args.verbose) {
    // Whole messages, however wide the table gets.
    std::cout << RenderTable(RunsTable(*items, SystemClock::Get().Now(), std::string::npos),
                             std::string::npos);
  } else {
    PrintTable(RunsTable(*items, SystemClock::Get().Now()));
  }
  return Status::Ok();
}

}  // namespace

void AddPsCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<PsArgs>();
  CLI::App* ps =
      app.add_subcommand("ps", "List runs that have not finished (-a: all, newest first)");
  ps->add_flag("-a,--all", args->all, "Include finished runs (the newest 100)");
  ps->add_flag("-v,--verbose", args->verbose,
               "Show status messages whole (not cut to fit the terminal)");
  ps->add_flag("--json", args->json, "Print the server's {\"items\": [...]} as JSON");
  AddClientFlags(*ps, args->flags);
  OnRun(*ps, exit_code, [args] { return ListRuns(*args); });
}

}  // namespace fleetwatch::cli
