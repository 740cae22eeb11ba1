#pragma once

// The fleetwatch command line as a whole: what the bare program, a bare command group and an
// unknown command do, before CLI11 parses the words. Used by main() and the tests; the functions
// here only read `app` and are safe to call from any one thread at a time.

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace CLI {
class App;
}

namespace fleetwatch::cli {

// What to do with the words after the program name.
struct CommandWords {
  // The words to parse: those given, with "list" added after a command group given alone
  // (`fleetwatch fleet` is `fleetwatch fleet list`) or followed only by options other than -h,
  // --help.
  std::vector<std::string> words;
  // Non-null: print this command's help and exit 0 instead of parsing (`fleetwatch` alone, or a
  // group without a `list` command given alone).
  const CLI::App* help_of = nullptr;
};

// Walks `words` down the command tree of `app` while the current command has subcommands. A word
// that names none of them (and is not an option) is InvalidArgument "unknown command `WORDS`"
// followed by "; did you mean `CLOSEST`?" when one is close (see ClosestName), else by the list
// of the commands there. Pure.
Result<CommandWords> ResolveCommandWords(const CLI::App& app, std::vector<std::string> words);

// The name in `names` closest to `word` (edit distance, a prefix counts as close): "" when none
// is within 2 edits or a third of the longer of the two. Pure.
std::string ClosestName(std::string_view word, const std::vector<std::string>& names);

// Resolves argv[1..] (ResolveCommandWords), then parses and runs the command: its exit code
// (`exit_code` as the command left it), 0 after help or --version, 1 after printing one line
// "error: ..." to stderr for words that do not parse.
int RunCommandLine(CLI::App& app, const int& exit_code, int argc, char** argv);

}  // namespace fleetwatch::cli
