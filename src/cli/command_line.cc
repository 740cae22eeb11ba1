#include "cli/command_line.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "cli/terminal_text.h"

namespace fleetwatch::cli {
namespace {

// The subcommands of `command`, in the order they were added.
std::vector<const CLI::App*> Subcommands(const CLI::App& command) {
  return command.get_subcommands(std::function<bool(const CLI::App*)>(
      [](const CLI::App* sub) { return !sub->get_name().empty(); }));
}

const CLI::App* FindSubcommand(const CLI::App& command, std::string_view name) {
  for (const CLI::App* sub : Subcommands(command)) {
    if (sub->get_name() == name) return sub;
    const std::vector<std::string>& aliases = sub->get_aliases();
    if (std::find(aliases.begin(), aliases.end(), name) != aliases.end()) return sub;
  }
  return nullptr;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool IsHelpWord(std::string_view word) { return word == "-h" || word == "--help"; }

}  // namespace

std::string ClosestName(std::string_view word, const std::vector<std::string>& names) {
  std::string best;
  size_t best_distance = 0;
  for (const std::string& name : names) {
    const bool prefix = word.size() >= 2 && (name.starts_with(word) || word.starts_with(name));
    const size_t distance = prefix ? 1 : EditDistance(word, name);
    const size_t limit = std::max<size_t>(2, std::max(word.size(), name.size()) / 3);
    if (distance > limit) continue;
    if (best.empty() || distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

Result<CommandWords> ResolveCommandWords(const CLI::App& app, std::vector<std::string> words) {
  CommandWords result;
  const CLI::App* current = &app;
  std::string path;  // the command words walked so far, each followed by a space
  size_t i = 0;
  for (; i < words.size(); ++i) {
    const std::vector<const CLI::App*> subcommands = Subcommands(*current);
    if (subcommands.empty()) break;
    const std::string& word = words[i];
    if (word.starts_with("-")) break;
    if (const CLI::App* sub = FindSubcommand(*current, word)) {
      current = sub;
      path += word + " ";
      continue;
    }
    std::vector<std::string> names;
    for (const CLI::App* sub : subcommands) names.push_back(sub->get_name());
    std::string message = "unknown command `" + path + word + "`";
    const std::string closest = ClosestName(word, names);
    if (!closest.empty()) {
      message += "; did you mean `" + path + closest + "`?";
    } else {
      message += "; the commands are:";
      for (size_t n = 0; n < names.size(); ++n) message += (n == 0 ? " " : ", ") + names[n];
      message += " (fleetwatch " + path + "--help describes them)";
    }
    return InvalidArgument(message);
  }
  const bool group = !Subcommands(*current).empty();
  if (group && (i == words.size() || !IsHelpWord(words[i]))) {
    if (current != &app && FindSubcommand(*current, "list") != nullptr) {
      words.insert(words.begin() + static_cast<std::ptrdiff_t>(i), "list");
    } else if (i == words.size()) {
      result.help_of = current;
    }
  }
  result.words = std::move(words);
  return result;
}

int RunCommandLine(CLI::App& app, const int& exit_code, int argc, char** argv) {
  Result<CommandWords> resolved =
      ResolveCommandWords(app, std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
  if (!resolved.ok()) {
    std::cerr << "error: " << SanitizeForTerminal(resolved.status().message()) << "\n";
    return 1;
  }
  if (resolved->help_of != nullptr) {
    std::cout << resolved->help_of->help();
    return 0;
  }
  // CLI11 takes the words last first.
  std::vector<std::string> reversed(resolved->words.rbegin(), resolved->words.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" that exit 0; real ones get the one-line form.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "error: " << SanitizeForTerminal(e.what()) << "\n";
    return 1;
  }
  return exit_code;
}

}  // namespace fleetwatch::cli
