// `fleetwatch stats RUN [--json]`: a run's summary (docs/api.md "Run summary") as compact tables:
// each job's duration, CPU, memory, GPU energy, carbon and cost, each GPU's utilization, memory
// and energy, and the right-sizing notes. A running run shows its summary so far.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/stats_view.h"
#include "cli/terminal_text.h"
#include "model/json_text.h"

namespace fleetwatch::cli {
namespace {

struct StatsArgs {
  ClientFlags flags;
  std::string run;
  bool json = false;
};

Status ShowStats(const StatsArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value summary,
                      api.Get(api.ProjectPath("/runs/" + PathSegment(args.run) + "/summary")));
  // Re-serialized rather than echoed: well-formed JSON, control characters escaped.
  if (args.json) {
    std::cout << model::SerializeJson(summary) << "\n";
  } else {
    std::cout << RenderStats(summary, TerminalWidth());
  }
  return std::cout.good() ? Status::Ok() : Unavailable("cannot write to stdout");
}

}  // namespace

void AddStatsCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<StatsArgs>();
  CLI::App* stats = app.add_subcommand(
      "stats", "Show a run's summary: CPU, memory, GPU use, energy, carbon, cost and notes");
  stats->add_option("run", args->run, "Run name")->required();
  stats->add_flag("--json", args->json, "Print the summary as the API returns it");
  AddClientFlags(*stats, args->flags);
  OnRun(*stats, exit_code, [args] { return ShowStats(*args); });
}

}  // namespace fleetwatch::cli
