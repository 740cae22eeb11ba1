#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::store {

// The server's database URL (FLEETWATCH_DATABASE_URL / --database-url): what is accepted, and how
// it is shown without its password. Pure functions, thread-safe.

// Ok for a URL of scheme postgresql:// or postgres:// (case-insensitive); InvalidArgument
// otherwise, with a message naming the setting and the URL with its password redacted (text
// that is not a URL, such as a key=value string, is not echoed at all).
Status CheckPostgresUrl(std::string_view url);

// `url` with its password, in the user info (user:PASSWORD@) and in a `password=` query
// parameter, replaced by "***". Text that is not a URL is returned as it is when it has no
// such part.
std::string RedactDatabaseUrl(std::string_view url);

// `text` (e.g. a driver's error message) with every occurrence of `url`'s password, as written
// and percent-decoded, replaced by "***".
std::string RedactPassword(std::string text, std::string_view url);

}  // namespace fleetwatch::store
