#include "agent/shell_commands.h"

#include <string_view>

namespace fleetwatch::agent {
namespace {

std::string_view Trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  size_t last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

}  // namespace

std::string JoinShellCommands(const std::vector<std::string>& commands) {
  std::string script;
  for (const std::string& command : commands) {
    std::string_view trimmed = Trim(command);
    if (trimmed.empty()) continue;
    if (!script.empty()) script += " && ";
    // `a & && b` is a syntax error; `{ a & } && b` starts a in the background and goes on.
    if (trimmed.back() == '&') {
      script += "{ ";
      script += trimmed;
      script += " }";
    } else {
      script += trimmed;
    }
  }
  return script;
}

}  // namespace fleetwatch::agent
