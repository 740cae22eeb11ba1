#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "store/store.h"
#include "util/data_dir_lock.h"
#include "util/status.h"

namespace fleetwatch::api {

// What a server holds of its data dir while it runs: the dir's lock and the store.
struct ServerDataDir {
  DataDirLock lock;  // released last (declared first)
  std::unique_ptr<store::Store> store;
  // Which database the store is on: "sqlite" or "postgresql" (never the URL).
  std::string database;
};

// The one place that picks the server's store. Creates `data_dir` (and its logs dir) with mode
// 0700 when missing (a looser existing one is tightened, with a warning) and takes its lock;
// then, with `database_url` (FLEETWATCH_DATABASE_URL or --database-url), connects to that
// PostgreSQL database (store/postgres_store.h), else opens (or creates) fleetwatch.db in the dir.
// `encryption_key` is FLEETWATCH_ENCRYPTION_KEY as given (unset: secret.key in the dir; replicas
// on one PostgreSQL database must all be given the same key). Errors: InvalidArgument for a
// database URL that is not postgresql:// or postgres:// (checked first: nothing is touched),
// FailedPrecondition "another fleetwatch server (pid N) uses DIR" when another process holds the
// dir (nothing in it is touched), InvalidArgument for a malformed key, FailedPrecondition for a
// key that does not decrypt the stored agent tokens, Unavailable when a dir cannot be made or the
// database cannot be reached (with the driver's message), and the store's errors. No message
// holds the URL's password. Thread-safe.
Result<ServerDataDir> OpenServerDataDir(const std::filesystem::path& data_dir,
                                        const std::optional<std::string>& encryption_key,
                                        const std::optional<std::string>& database_url);

// The database file in a server's data dir.
std::filesystem::path DatabaseFile(const std::filesystem::path& data_dir);

}  // namespace fleetwatch::api
