// `fleetwatch user create|list`.
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

struct UserArgs {
  ClientFlags flags;
  std::string name;
  bool admin = false;
};

Status CreateUser(const UserArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  boost::json::object body{{"name", args.name}, {"global_role", args.admin ? "admin" : "user"}};
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.PostJson("/api/users", body));
  std::string name = StringField(reply, "name", args.name);
  std::string token = StringField(reply, "token");
  if (token.empty()) return Internal("the server created user " + name + " but sent no token");
  PrintLine("Created user " + name + " (global role " +
            StringField(reply, "global_role", args.admin ? "admin" : "user") + ")");
  PrintLine("Token: " + token);
  PrintLine("The token is shown only this once. Give it to " + name + ", who then runs:");
  PrintLine("  fleetwatch config --url " + api.settings().url + " --token " + token);
  return Status::Ok();
}

Status ListUsers(const UserArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.Get("/api/users"));
  FW_ASSIGN_OR_RETURN(const boost::json::array* items, Items(reply));
  PrintTable(UsersTable(*items, SystemClock::Get().Now()));
  return Status::Ok();
}

}  // namespace

void AddUserCommands(CLI::App& app, int& exit_code) {
  CLI::App* user = app.add_subcommand("user", "Create and list users (global admins)");
  user->require_subcommand(1);

  auto create = std::make_shared<UserArgs>();
  CLI::App* create_cmd = user->add_subcommand("create", "Create a user and print their token");
  create_cmd->add_option("name", create->name, "User name")->required();
  create_cmd->add_flag("--admin", create->admin, "Make the user a global admin");
  AddClientFlags(*create_cmd, create->flags);
  OnRun(*create_cmd, exit_code, [create] { return CreateUser(*create); });

  auto list = std::make_shared<UserArgs>();
  CLI::App* list_cmd = user->add_subcommand("list", "List users");
  AddClientFlags(*list_cmd, list->flags);
  OnRun(*list_cmd, exit_code, [list] { return ListUsers(*list); });
}

}  // namespace fleetwatch::cli
