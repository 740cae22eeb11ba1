#include "api/server_data_dir.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "store/database_url.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace fleetwatch::api {
namespace {

// Creates `dir` (and its parents) when missing and gives it mode 0700; an existing one that was
// open to others is tightened with a warning, since what it holds was readable until now.
Status MakePrivateDirectory(const std::filesystem::path& dir, std::string_view what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Unavailable("cannot create the " + std::string(what) + " " + dir.string() + ": " +
                       ec.message());
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Unavailable("the " + std::string(what) + " " + dir.string() + " is not a directory");
  }
  if ((st.st_mode & 07777) == 0700) return Status::Ok();
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Unavailable("cannot set mode 0700 on the " + std::string(what) + " " + dir.string() +
                       ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    spdlog::warn("the {} {} was open to other users (mode {:o}); it is 0700 now", what,
                 dir.string(), st.st_mode & 07777);
  }
  return Status::Ok();
}

}  // namespace

std::filesystem::path DatabaseFile(const std::filesystem::path& data_dir) {
  return data_dir / "fleetwatch.db";
}

Result<ServerDataDir> OpenServerDataDir(const std::filesystem::path& data_dir,
                                        const std::optional<std::string>& encryption_key,
                                        const std::optional<std::string>& database_url) {
  if (database_url) FW_RETURN_IF_ERROR(store::CheckPostgresUrl(*database_url));
  store::SqliteStoreOptions store_options;
  if (encryption_key) {
    FW_ASSIGN_OR_RETURN(store_options.secret_key,
                        store::ParseSecretKey(*encryption_key, "FLEETWATCH_ENCRYPTION_KEY"));
  }
  FW_RETURN_IF_ERROR(MakePrivateDirectory(data_dir, "data directory"));
  // Taken before anything in the data dir is read or written.
  Result<DataDirLock> lock = DataDirLock::Acquire(data_dir, "server");
  if (!lock.ok()) return lock.status();
  FW_RETURN_IF_ERROR(MakePrivateDirectory(data_dir / "logs", "log directory"));
  Result<std::unique_ptr<store::Store>> store = Internal("no store");
  std::string database;
  if (database_url) {
    database = "postgresql";
    store::PostgresStoreOptions postgres_options;
    if (store_options.secret_key) {
      postgres_options.secret_key = *store_options.secret_key;
    } else {
      // As with SQLite: the key beside the data, made on the first start.
      Result<std::array<uint8_t, store::SecretCipher::kKeyBytes>> key =
          store::LoadOrCreateKeyFile(data_dir / "secret.key");
      if (!key.ok()) return key.status();
      postgres_options.secret_key = *key;
      OPENSSL_cleanse(key->data(), key->size());
    }
    store = store::OpenPostgresStore(*database_url, postgres_options);
    OPENSSL_cleanse(postgres_options.secret_key.data(), postgres_options.secret_key.size());
    if (!store.ok()) {
      // libpq names the host and port; this keeps a password out even should it echo one.
      store = Status(store.status().code(),
                     store::RedactPassword(store.status().message(), *database_url));
    }
  } else {
    database = "sqlite";
    store = store::OpenSqliteStore(DatabaseFile(data_dir).string(), store_options);
  }
  if (store_options.secret_key) {
    OPENSSL_cleanse(store_options.secret_key->data(), store_options.secret_key->size());
  }
  if (!store.ok()) return store.status();
  return ServerDataDir{std::move(lock).value(), std::move(store).value(), std::move(database)};
}

}  // namespace fleetwatch::api
