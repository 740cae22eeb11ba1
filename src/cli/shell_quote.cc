#include "cli/shell_quote.h"

namespace fleetwatch::cli {
namespace {

bool IsShellSafe(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '_':
    case '@':
    case '%':
    case '+':
    case '=':
    case ':':
    case ',':
    case '.':
    case '/':
    case '-':
      return true;
    default:
      return false;
  }
}

std::string SingleQuote(std::string_view arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

}  // namespace

std::string ShellQuote(std::string_view arg) {
  if (arg.empty()) return "''";
  for (char c : arg) {
    if (!IsShellSafe(c)) return SingleQuote(arg);
  }
  return std::string(arg);
}

std::string ShellJoin(const std::vector<std::string>& args) {
  std::string out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0) out += ' ';
    bool looks_like_assignment = i == 0 && args[i].find('=') != std::string::npos;
    out += looks_like_assignment ? SingleQuote(args[i]) : ShellQuote(args[i]);
  }
  return out;
}

}  // namespace fleetwatch::cli
