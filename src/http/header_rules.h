#pragma once

#include <string>
#include <string_view>

namespace fleetwatch::http {

// Text rules shared by the server and both clients. Pure functions; thread-safe.

// ASCII lowercase.
std::string ToLower(std::string_view text);

// No CR, LF or NUL: safe to put into a header line without splitting it.
bool IsHeaderSafe(std::string_view text);

// RFC 9110 token characters, as allowed in a method or header name; not empty.
bool IsToken(std::string_view text);

}  // namespace fleetwatch::http
