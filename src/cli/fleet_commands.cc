// `fleetwatch fleet apply|list|delete`.
#include "cli/fleet_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <memory>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/fleet_views.h"
#include "cli/json_fields.h"
#include "util/clock.h"

namespace fleetwatch::cli {
namespace {

struct FleetArgs {
  ClientFlags flags;
  std::string file;
  std::string name;
  bool yes = false;
};

Status ApplyFleet(const FleetArgs& args) {
  FW_ASSIGN_OR_RETURN(ConfigurationFile file, ReadConfigurationFile(args.file));
  if (!file.type.empty() && file.type != "fleet") {
    return InvalidArgument(args.file + " is a `" + file.type +
                           "` configuration, not a fleet (submit it with fleetwatch apply)");
  }
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  return SubmitFleet(api, file);
}

Status ListFleets(const FleetArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.Get(api.ProjectPath("/fleets")));
  FW_ASSIGN_OR_RETURN(const boost::json::array* items, Items(reply));
  PrintTable(FleetsTable(*items, SystemClock::Get().Now()));
  return Status::Ok();
}

Status DeleteFleet(const FleetArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_RETURN_IF_ERROR(Confirm(args.yes, "Delete fleet " + args.name + "?"));
  FW_ASSIGN_OR_RETURN(boost::json::value reply,
                      api.Delete(api.ProjectPath("/fleets/" + PathSegment(args.name))));
  PrintLine("Deleted fleet " + args.name);
  return Status::Ok();
}

}  // namespace

Status SubmitFleet(ApiClient& api, const ConfigurationFile& file) {
  FW_ASSIGN_OR_RETURN(boost::json::value fleet,
                      api.Post(api.ProjectPath("/fleets"), file.text, file.content_type));
  PrintTable(FleetsTable(boost::json::array{fleet}, SystemClock::Get().Now()));
  return Status::Ok();
}

void AddFleetCommands(CLI::App& app, int& exit_code) {
  CLI::App* fleet = app.add_subcommand("fleet", "Create, list and delete fleets of GPU hosts");
  fleet->require_subcommand(1);

  auto apply = std::make_shared<FleetArgs>();
  CLI::App* apply_cmd = fleet->add_subcommand("apply", "Create a fleet from a configuration file");
  apply_cmd
      ->add_option("-f,--file", apply->file,
                   "Fleet configuration (YAML, or JSON as .json; - for stdin)")
      ->required();
  AddClientFlags(*apply_cmd, apply->flags);
  OnRun(*apply_cmd, exit_code, [apply] { return ApplyFleet(*apply); });

  auto list = std::make_shared<FleetArgs>();
  CLI::App* list_cmd = fleet->add_subcommand("list", "List fleets and their instances");
  AddClientFlags(*list_cmd, list->flags);
  OnRun(*list_cmd, exit_code, [list] { return ListFleets(*list); });

  auto del = std::make_shared<FleetArgs>();
  CLI::App* delete_cmd = fleet->add_subcommand("delete", "Delete a fleet (no jobs may run on it)");
  delete_cmd->add_option("name", del->name, "Fleet name")->required();
  AddYesFlag(*delete_cmd, del->yes);
  AddClientFlags(*delete_cmd, del->flags);
  OnRun(*delete_cmd, exit_code, [del] { return DeleteFleet(*del); });
}

}  // namespace fleetwatch::cli
