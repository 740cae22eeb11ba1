#pragma once

// `fleetwatch config --url U --token T --project P` asks the server before saving: is U a
// fleetwatch server, does it take T, may T's user use P? Kept apart from the file handling.

#include "cli/config.h"
#include "util/status.h"

namespace fleetwatch::cli {

// Which settings the command line gave (the others come from the config file); errors name them
// by their flag when given ("--token"), else as "the saved token".
struct GivenSettings {
  bool url = false;
  bool token = false;
  bool project = false;
};

// Checks `settings` against the server: GET /api/users/me (the URL answers as a fleetwatch server
// and accepts the token), then, unless settings.project is empty, GET /api/projects/{project}. OK
// when all three hold; otherwise FailedPrecondition naming the one that is wrong: "cannot reach the
// server at U (--url): ...", "U (--url) does not answer as a fleetwatch server: ...", "the server
// at U rejected the token
// (--token)", "project P (--project): <the server's reason>". Makes network requests; main thread
// only.
Status CheckServerSettings(const ClientSettings& settings, const GivenSettings& given);

}  // namespace fleetwatch::cli
