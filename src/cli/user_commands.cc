// `fleetwatch user create|list|refresh-token|set-role|delete`.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <memory>

#include "cli/account_views.h"
#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/config.h"
#include "cli/json_fields.h"
#include "util/clock.h"

namespace fleetwatch::cli {
namespace {

struct UserArgs {
  ClientFlags flags;
  std::string name;
  bool admin = false;
  std::string role;  // set-role
  bool yes = false;  // delete
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

// A new token for NAME, or for the caller without NAME. When it is the caller's own token and the
// config file holds the old one, the file gets the new one (the old one no longer works).
Status RefreshToken(const UserArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  bool own = args.name.empty();
  if (!own) {
    FW_ASSIGN_OR_RETURN(boost::json::value me, api.Get("/api/users/me"));
    own = StringField(me, "name") == args.name;
  }
  const std::string path = own ? "/api/users/me/refresh_token"
                               : "/api/users/" + PathSegment(args.name) + "/refresh_token";
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.PostJson(path, boost::json::object()));
  const std::string name = StringField(reply, "name", args.name);
  const std::string token = StringField(reply, "token");
  if (token.empty())
    return Internal("the server refreshed the token of " + name + " but sent none");
  PrintLine("New token of " + name + ": " + token);
  PrintLine("The old token no longer works.");
  if (!own) {
    PrintLine("The token is shown only this once. Give it to " + name + ", who then runs:");
    PrintLine("  fleetwatch config --token " + token);
    return Status::Ok();
  }
  Result<std::filesystem::path> file = ConfigFilePathFromEnv(ProcessEnvironment());
  if (!file.ok()) return Status::Ok();
  FW_ASSIGN_OR_RETURN(SettingValues saved, ReadConfigFile(*file));
  if (saved.token != api.settings().token) {
    PrintLine("Run `fleetwatch config --token " + token + "` where you use it.");
    return Status::Ok();
  }
  SettingValues update;
  update.token = token;
  FW_RETURN_IF_ERROR(UpdateConfigFile(*file, update));
  PrintLine("Saved it in " + file->string());
  return Status::Ok();
}

Status SetRole(const UserArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value reply,
                      api.PostJson("/api/users/" + PathSegment(args.name) + "/role",
                                   boost::json::object{{"global_role", args.role}}));
  PrintLine("User " + StringField(reply, "name", args.name) + " now has global role " +
            StringField(reply, "global_role", args.role));
  return Status::Ok();
}

Status DeleteUser(const UserArgs& args) {
  FW_RETURN_IF_ERROR(
      Confirm(args.yes, "Delete user " + args.name + "? Their token stops working."));
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  FW_ASSIGN_OR_RETURN(boost::json::value reply, api.Delete("/api/users/" + PathSegment(args.name)));
  (void)reply;
  PrintLine("Deleted user " + args.name);
  return Status::Ok();
}

}  // namespace

void AddUserCommands(CLI::App& app, int& exit_code) {
  CLI::App* user = app.add_subcommand("user", "Manage users and tokens");
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

  auto refresh = std::make_shared<UserArgs>();
  CLI::App* refresh_cmd = user->add_subcommand(
      "refresh-token",
      "Give a user (yourself without NAME) a new token; the old one stops working at once");
  refresh_cmd->add_option("name", refresh->name, "User name (global admins: anyone's)");
  AddClientFlags(*refresh_cmd, refresh->flags);
  OnRun(*refresh_cmd, exit_code, [refresh] { return RefreshToken(*refresh); });

  auto set_role = std::make_shared<UserArgs>();
  CLI::App* set_role_cmd = user->add_subcommand("set-role", "Change a user's global role");
  set_role_cmd->add_option("name", set_role->name, "User name")->required();
  set_role_cmd->add_option("role", set_role->role, "admin or user")
      ->required()
      ->check(CLI::IsMember({"admin", "user"}));
  AddClientFlags(*set_role_cmd, set_role->flags);
  OnRun(*set_role_cmd, exit_code, [set_role] { return SetRole(*set_role); });

  auto del = std::make_shared<UserArgs>();
  CLI::App* delete_cmd =
      user->add_subcommand("delete", "Delete a user: their token stops working at once");
  delete_cmd->add_option("name", del->name, "User name")->required();
  AddYesFlag(*delete_cmd, del->yes);
  AddClientFlags(*delete_cmd, del->flags);
  OnRun(*delete_cmd, exit_code, [del] { return DeleteUser(*del); });
}

}  // namespace fleetwatch::cli
