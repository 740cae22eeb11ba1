#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "store/store.h"
#include "util/data_dir_lock.h"
#include "util/status.h"

namespace fleetwatch::api {

// What a server holds of its data dir while it runs: the dir's lock and the store in it.
struct ServerDataDir {
  DataDirLock lock;  // released last (declared first)
  std::unique_ptr<store::Store> store;
};

// Creates `data_dir` (and its logs dir) with mode 0700 when missing (a looser existing one is
// tightened, with a warning), takes its lock, and opens (or creates) fleetwatch.db in it.
// `encryption_key` is FLEETWATCH_ENCRYPTION_KEY as given (unset: secret.key in the dir). Errors:
// FailedPrecondition "another fleetwatch server (pid N) uses DIR" when another process holds the
// dir (nothing in it is touched), InvalidArgument for a malformed key, FailedPrecondition for a
// key that does not decrypt the stored agent tokens, Unavailable when a dir cannot be made, and
// the store's errors. Thread-safe.
Result<ServerDataDir> OpenServerDataDir(const std::filesystem::path& data_dir,
                                        const std::optional<std::string>& encryption_key);

// The database file in a server's data dir.
std::filesystem::path DatabaseFile(const std::filesystem::path& data_dir);

}  // namespace fleetwatch::api
