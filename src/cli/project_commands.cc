// `fleetwatch project list|create|add-member|remove-member`.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <memory>

#include "cli/account_views.h"
#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/json_fields.h"
#include "util/clock.h"

namespace fleetwatch::cli {
namespace {

struct ProjectArgs {
  ClientFlags flags;
  std::string project;
  std::string user;
  std::string role;
};

Status ListProjects(const ProjectArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.Get("/api/projects"));
  FW_ASSIGN_OR_RETURN(const boost::json::array* items, Items(reply));
  PrintTable(ProjectsTable(*items, SystemClock::Get().Now()));
  return Status::Ok();
}

Status CreateProject(const ProjectArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value reply,
                      api.PostJson("/api/projects", boost::json::object{{"name", args.project}}));
  PrintLine("Created project " + StringField(reply, "name", args.project));
  return Status::Ok();
}

Status AddMember(const ProjectArgs& args) {
  if (args.role != "admin" && args.role != "manager" && args.role != "user") {
    return InvalidArgument("--role must be admin, manager or user");
  }
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(
      boost::json::value reply,
      api.PostJson("/api/projects/" + PathSegment(args.project) + "/members",
                   boost::json::object{{"user_name", args.user}, {"project_role", args.role}}));
  PrintLine("Added " + args.user + " to project " + args.project + " as " + args.role);
  return Status::Ok();
}

Status RemoveMember(const ProjectArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value reply,
                      api.Delete("/api/projects/" + PathSegment(args.project) + "/members/" +
                                 PathSegment(args.user)));
  PrintLine("Removed " + args.user + " from project " + args.project);
  return Status::Ok();
}

}  // namespace

void AddProjectCommands(CLI::App& app, int& exit_code) {
  CLI::App* project = app.add_subcommand("project", "List and create projects, manage members");
  project->require_subcommand(1);

  auto list = std::make_shared<ProjectArgs>();
  CLI::App* list_cmd = project->add_subcommand("list", "List your projects");
  AddClientFlags(*list_cmd, list->flags);
  OnRun(*list_cmd, exit_code, [list] { return ListProjects(*list); });

  auto create = std::make_shared<ProjectArgs>();
  CLI::App* create_cmd =
      project->add_subcommand("create", "Create a project (you become its admin)");
  create_cmd->add_option("name", create->project, "Project name")->required();
  AddClientFlags(*create_cmd, create->flags);
  OnRun(*create_cmd, exit_code, [create] { return CreateProject(*create); });

  auto add = std::make_shared<ProjectArgs>();
  CLI::App* add_cmd =
      project->add_subcommand("add-member", "Add a user to a project, or change their role");
  add_cmd->add_option("project", add->project, "Project name")->required();
  add_cmd->add_option("user", add->user, "User name")->required();
  add_cmd->add_option("--role", add->role, "admin, manager or user")->required();
  AddClientFlags(*add_cmd, add->flags);
  OnRun(*add_cmd, exit_code, [add] { return AddMember(*add); });

  auto remove = std::make_shared<ProjectArgs>();
  CLI::App* remove_cmd = project->add_subcommand("remove-member", "Remove a user from a project");
  remove_cmd->add_option("project", remove->project, "Project name")->required();
  remove_cmd->add_option("user", remove->user, "User name")->required();
  AddClientFlags(*remove_cmd, remove->flags);
  OnRun(*remove_cmd, exit_code, [remove] { return RemoveMember(*remove); });
}

}  // namespace fleetwatch::cli
