#pragma once

// Directories with the modes the trust model asks for (docs/agent-api.md, "Files and modes"): the
// agent's data is 0700. Its files are written with WritePrivateFileAtomically
// (util/private_file.h).

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::agent {

// The permission bits of `mode` as four octal digits ("0700"). Pure.
std::string ModeText(mode_t mode);

// Creates the missing directories of `dir`'s path: the parents with `parent_mode`, `dir` itself
// with `mode` (each chmod'ed after mkdir, so the umask does not narrow them). Existing ones are
// left as they are. Unavailable with the path and errno text on failure. Thread-safe.
Status CreateDirectories(const std::filesystem::path& dir, mode_t mode, mode_t parent_mode = 0755);

// Creates `dir` if needed (see CreateDirectories) and makes sure it is a directory owned by this
// process's effective uid with mode 0700, tightening a looser mode. A shared directory (sticky
// bit, like /tmp) or one owned by another user is refused (FailedPrecondition): the agent's data
// must be its own. Thread-safe.
Status EnsurePrivateDirectory(const std::filesystem::path& dir);

}  // namespace fleetwatch::agent
