#pragma once

// What every client command shares: the --url/--token/--project flags, turning them into an
// ApiClient, error reporting, confirmation prompts and table output. Included only by the
// command files, never by other modules.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/api_client.h"
#include "cli/table.h"
#include "util/status.h"

namespace CLI {
class App;
}

namespace fleetwatch::cli {

// --url, --token, --project as given on the command line ("" when not given).
struct ClientFlags {
  std::string url;
  std::string token;
  std::string project;
};

// Adds --url, --token and --project to `command`, stored in `flags` (which must outlive it).
void AddClientFlags(CLI::App& command, ClientFlags& flags);

// The API client for `flags` combined with FLEETWATCH_* variables and the config file (see
// ResolveClientSettings).
Result<ApiClient> Connect(const ClientFlags& flags);

// Makes `command` run `body` when it is invoked: `exit_code` becomes 0 when it succeeds; else it
// prints the single line "error: <message>" (made terminal-safe) to stderr and sets 1. An escaping
// exception is reported the same way. `exit_code` must outlive `command`.
void OnRun(CLI::App& command, int& exit_code, std::function<Status()> body);

// OnRun for a body that picks the exit code itself (`run` returns its run's): `exit_code` becomes
// the body's value when it succeeds, else an error is reported as OnRun does.
void OnRunWithExitCode(CLI::App& command, int& exit_code, std::function<Result<int>()> body);

// Adds an option that takes one value each time it is given and collects them in `values`, in
// order: `--env A=1 --env B=2`. One value per occurrence, so that it never swallows a following
// `--` or the words after it (`run --env K=V -- cmd -x`). `values` must outlive `command`.
void AddRepeatableOption(CLI::App& command, const std::string& names,
                         std::vector<std::string>& values, const std::string& description);

// Adds -y/--yes to `command`.
void AddYesFlag(CLI::App& command, bool& yes);

// OK when `yes`. Otherwise, when stdin is a terminal, asks `question` + " [y/N] " on stderr and
// reads the answer: FailedPrecondition ("cancelled") unless it is y or yes. Without a terminal
// FailedPrecondition at once, asking for -y.
Status Confirm(bool yes, std::string_view question);

// Writes `table` to stdout, fitted to the terminal width.
void PrintTable(const Table& table);

// Writes `line` to stdout with control characters replaced (text that came from the server).
void PrintLine(std::string_view line);

}  // namespace fleetwatch::cli
