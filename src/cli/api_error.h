#pragma once

#include <string_view>

#include "util/status.h"

namespace fleetwatch::cli {

// The Status for a server reply with a non-2xx HTTP status. Its message is what the user sees:
// the server's error.message (see docs/api.md), except for 401, which says to configure another
// token. A body that is not the documented error JSON gives "the server answered HTTP N". The
// code follows the HTTP status (404 → NotFound, 409 → AlreadyExists or FailedPrecondition, ...).
// Pure.
Status ErrorFromReply(int http_status, std::string_view body);

// The Status for a request that never got a reply: "cannot reach the server at URL: why", where
// `why` is the cause's message without a "cannot reach ...: " of its own.
Status ConnectionError(std::string_view url, const Status& cause);

}  // namespace fleetwatch::cli
