#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fleetwatch::cli {

// Quotes one argument for a POSIX shell so that the shell hands it back unchanged: left bare when
// it holds only characters with no meaning to the shell ([A-Za-z0-9_@%+=:,./-]), otherwise put in
// single quotes with each ' written as '\''. The empty argument becomes ''. Pure.
std::string ShellQuote(std::string_view arg);

// Joins `args` into one command line that a POSIX shell splits back into exactly `args`. A first
// word with '=' is quoted too, so that it is not taken for a variable assignment. Pure.
std::string ShellJoin(const std::vector<std::string>& args);

}  // namespace fleetwatch::cli
