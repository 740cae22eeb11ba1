#include "cli/command_support.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "cli/config.h"
#include "cli/terminal_text.h"

namespace fleetwatch::cli {

void AddClientFlags(CLI::App& command, ClientFlags& flags) {
  command.add_option("--url", flags.url, "Server URL, http[s]://host[:port] (env FLEETWATCH_URL)");
  command.add_option("--token", flags.token, "API token (env FLEETWATCH_TOKEN)");
  command.add_option("--project", flags.project, "Project (env FLEETWATCH_PROJECT; default main)");
}

Result<ApiClient> Connect(const ClientFlags& flags) {
  SettingValues given;
  if (!flags.url.empty()) given.url = flags.url;
  if (!flags.token.empty()) given.token = flags.token;
  if (!flags.project.empty()) given.project = flags.project;
  FW_ASSIGN_OR_RETURN(ClientSettings settings, ResolveClientSettings(given, ProcessEnvironment()));
  return ApiClient::Create(settings);
}

void OnRun(CLI::App& command, int& exit_code, std::function<Status()> body) {
  OnRunWithExitCode(command, exit_code, [body = std::move(body)]() -> Result<int> {
    FW_RETURN_IF_ERROR(body());
    return 0;
  });
}

void OnRunWithExitCode(CLI::App& command, int& exit_code, std::function<Result<int>()> body) {
  command.callback([&exit_code, body = std::move(body)] {
    Result<int> code = Internal("no result");
    try {
      code = body();
    } catch (const std::exception& e) {
      code = Internal(std::string("unexpected failure: ") + e.what());
    }
    std::cout.flush();
    if (code.ok()) {
      exit_code = *code;
      return;
    }
    std::cerr << "error: " << SanitizeForTerminal(code.status().message()) << std::endl;
    exit_code = 1;
  });
}

void AddRepeatableOption(CLI::App& command, const std::string& names,
                         std::vector<std::string>& values, const std::string& description) {
  // A vector option would otherwise take every following word that is not an option, and end
  // such a list by consuming `--`, so that the words after it were read as options.
  command.add_option(names, values, description)
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

void AddYesFlag(CLI::App& command, bool& yes) {
  command.add_flag("-y,--yes", yes, "Do not ask for confirmation");
}

Status Confirm(bool yes, std::string_view question) {
  if (yes) return Status::Ok();
  // Without a terminal there is nobody to ask (and a prompt would garble the one-line error).
  if (isatty(STDIN_FILENO) == 0) {
    return FailedPrecondition("not confirmed: pass -y to confirm without a terminal");
  }
  std::cerr << SanitizeForTerminal(question) << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) {
    std::cerr << "\n";
    return FailedPrecondition("cancelled");
  }
  if (answer == "y" || answer == "Y" || answer == "yes" || answer == "YES") return Status::Ok();
  return FailedPrecondition("cancelled");
}

void PrintTable(const Table& table) { std::cout << RenderTable(table, TerminalWidth()); }

void PrintLine(std::string_view line) { std::cout << SanitizeForTerminal(line) << "\n"; }

}  // namespace fleetwatch::cli
