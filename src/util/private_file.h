#pragma once

// Files that hold secrets or state only their owner may read (docs/security.md): 0600 from their
// creation, before any byte is written, and replaced whole.

#include <filesystem>
#include <string_view>

#include "util/status.h"

namespace fleetwatch {

// Replaces `file` with `text`: writes `<file>.tmp.<pid>`, created 0600 with O_EXCL (never through
// a symlink) before anything is written, fsyncs it, then renames it over `file`, so a reader sees
// the old or the new text and nobody else ever can. The rename itself is durable once the
// directory is synced (SyncDirectory). Unavailable on failure (the temp file is removed).
// Thread-safe for distinct files.
Status WritePrivateFileAtomically(const std::filesystem::path& file, std::string_view text);

// fsyncs the directory `dir`, making the renames and unlinks done in it durable. Unavailable with
// the path and errno text on failure. Thread-safe.
Status SyncDirectory(const std::filesystem::path& dir);

}  // namespace fleetwatch
