#pragma once

#include <optional>
#include <string_view>

namespace fleetwatch::http {

// The token of an `Authorization` header value that uses the Bearer scheme (RFC 6750 §2.1): the
// scheme name in any case (RFC 7235 §2.1), one or more spaces, then one token of printable ASCII
// without blanks; blanks around the whole value are ignored. nullopt for anything else: another
// scheme, no token, a second word, control or non-ASCII bytes. The one parser of this header for
// the server's API, its /metrics and the agent. Thread-safe (pure function).
std::optional<std::string_view> ParseBearer(std::string_view authorization);

}  // namespace fleetwatch::http
