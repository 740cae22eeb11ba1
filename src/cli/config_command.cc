// `fleetwatch config`: writes or shows ~/.fleetwatch/config.yml.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/config.h"
#include "cli/config_check.h"
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

// The settings the file will hold once `updates` are saved over `saved`; nullopt when there is no
// URL or token yet to ask a server with. The project stays empty when there is none.
std::optional<ClientSettings> SettingsToCheck(const SettingValues& saved,
                                              const SettingValues& updates) {
  auto pick = [](const std::optional<std::string>& update, const std::optional<std::string>& old) {
    if (update && !update->empty()) return *update;
    return old ? *old : std::string();
  };
  ClientSettings settings;
  settings.url = pick(updates.url, saved.url);
  settings.token = pick(updates.token, saved.token);
  // Left empty (unchecked) when neither given nor saved: the default project is a guess.
  settings.project = pick(updates.project, saved.project);
  if (settings.url.empty() || settings.token.empty()) return std::nullopt;
  return settings;
}

Status WriteConfig(const ClientFlags& flags, const std::string& ca_cert, bool no_check) {
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
  if (!no_check && (updates.url || updates.token || updates.project)) {
    // Saved values count too: `config --token T` is checked against the saved URL. Values that
    // do not parse are the file's problem, reported as such by every other command.
    FW_ASSIGN_OR_RETURN(SettingValues saved, ReadConfigFile(path));
    if (std::optional<ClientSettings> settings = SettingsToCheck(saved, updates)) {
      Result<std::string> url = NormalizeServerUrl(settings->url);
      if (!url.ok()) return InvalidArgument(url.status().message() + " (the saved url)");
      settings->url = *url;
      const std::string ca_file = updates.ca_cert ? *updates.ca_cert : saved.ca_cert.value_or("");
      if (settings->url.rfind("https://", 0) == 0 && !ca_file.empty()) {
        FW_ASSIGN_OR_RETURN(settings->ca_cert_pem, ReadCaCertificates(ca_file));
      }
      Status checked = CheckServerSettings(*settings, {.url = updates.url.has_value(),
                                                       .token = updates.token.has_value(),
                                                       .project = updates.project.has_value()});
      if (!checked.ok()) {
        return FailedPrecondition(checked.message() +
                                  "; nothing saved (--no-check saves without asking the server)");
      }
    }
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
      "Save the server URL, token and project to ~/.fleetwatch/config.yml, once the server has "
      "accepted them (no flags: show them)");
  config->add_option("--url", flags->url, "Server URL, http[s]://host[:port]");
  config->add_option("--token", flags->token, "API token");
  config->add_option("--project", flags->project, "Default project");
  config->add_option("--ca-cert", *ca_cert,
                     "PEM file of the CA that signed an https server's certificate, used by "
                     "every command (env FLEETWATCH_CA_CERT; default: the system CA store)");
  auto no_check = std::make_shared<bool>(false);
  config->add_flag("--no-check", *no_check,
                   "Save without first asking the server whether the URL, token and project work");
  OnRun(*config, exit_code,
        [flags, ca_cert, no_check] { return WriteConfig(*flags, *ca_cert, *no_check); });
}

}  // namespace fleetwatch::cli
