// `fleetwatch config`: writes or shows ~/.fleetwatch/config.yml.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/config.h"
#include "cli/terminal_text.h"
#include "model/names.h"

namespace fleetwatch::cli {
namespace {

Status ShowConfig(const std::filesystem::path& path) {
  FW_ASSIGN_OR_RETURN(SettingValues values, ReadConfigFile(path));
  auto shown = [](const std::optional<std::string>& value) {
    return value && !value->empty() ? SanitizeForTerminal(*value) : std::string("(not set)");
  };
  std::cout << "config file: " << SanitizeForTerminal(path.string()) << "\n"
            << "url:         " << shown(values.url) << "\n"
            << "token:       "
            << (values.token && !values.token->empty() ? MaskToken(*values.token) : "(not set)")
            << "\n"
            << "project:     "
            << (values.project ? shown(values.project)
                               : std::string(kDefaultProject) + " (default)")
            << "\n";
  return Status::Ok();
}

Status WriteConfig(const ClientFlags& flags) {
  FW_ASSIGN_OR_RETURN(std::filesystem::path path, ConfigFilePathFromEnv(ProcessEnvironment()));
  if (flags.url.empty() && flags.token.empty() && flags.project.empty()) return ShowConfig(path);

  SettingValues updates;
  if (!flags.url.empty()) {
    FW_ASSIGN_OR_RETURN(updates.url, NormalizeServerUrl(flags.url));
  }
  if (!flags.token.empty()) {
    FW_RETURN_IF_ERROR(ValidateToken(flags.token));
    updates.token = flags.token;
  }
  if (!flags.project.empty()) {
    FW_RETURN_IF_ERROR(model::ValidateName("project name", flags.project));
    updates.project = flags.project;
  }
  FW_RETURN_IF_ERROR(UpdateConfigFile(path, updates));
  std::cout << "Saved " << SanitizeForTerminal(path.string()) << "\n";
  return Status::Ok();
}

}  // namespace

void AddConfigCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* config = app.add_subcommand(
      "config",
      "Save the server URL, token and project to ~/.fleetwatch/config.yml (no flags: show them)");
  config->add_option("--url", flags->url, "Server URL, http://host[:port]");
  config->add_option("--token", flags->token, "API token");
  config->add_option("--project", flags->project, "Default project");
  OnRun(*config, exit_code, [flags] { return WriteConfig(*flags); });
}

}  // namespace fleetwatch::cli
