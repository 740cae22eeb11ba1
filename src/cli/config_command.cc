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
            << "\n"
            << "ca_cert:     " << shown(values.ca_cert) << "\n";
  return Status::Ok();
}

Status WriteConfig(const ClientFlags& flags, const std::string& ca_cert) {
  FW_ASSIGN_OR_RETURN(std::filesystem::path path, ConfigFilePathFromEnv(ProcessEnvironment()));
  if (flags.url.empty() && flags.token.empty() && flags.project.empty() && ca_cert.empty()) {
    return ShowConfig(path);
  }

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
  if (!ca_cert.empty()) {
    // Checked now, kept as an absolute path: every command reads it.
    std::error_code ec;
    std::filesystem::path absolute = std::filesystem::absolute(ca_cert, ec);
    if (ec) return InvalidArgument("cannot resolve " + ca_cert + ": " + ec.message());
    FW_RETURN_IF_ERROR(ReadCaCertificates(absolute).status());
    updates.ca_cert = absolute.string();
  }
  FW_RETURN_IF_ERROR(UpdateConfigFile(path, updates));
  std::cout << "Saved " << SanitizeForTerminal(path.string()) << "\n";
  return Status::Ok();
}

}  // namespace

void AddConfigCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ClientFlags>();
  auto ca_cert = std::make_shared<std::string>();
  CLI::App* config = app.add_subcommand(
      "config",
      "Save the server URL, token and project to ~/.fleetwatch/config.yml (no flags: show them)");
  config->add_option("--url", flags->url, "Server URL, http[s]://host[:port]");
  config->add_option("--token", flags->token, "API token");
  config->add_option("--project", flags->project, "Default project");
  config->add_option("--ca-cert", *ca_cert,
                     "PEM file of the CA that signed an https server's certificate, used by "
                     "every command (env FLEETWATCH_CA_CERT; default: the system CA store)");
  OnRun(*config, exit_code, [flags, ca_cert] { return WriteConfig(*flags, *ca_cert); });
}

}  // namespace fleetwatch::cli
