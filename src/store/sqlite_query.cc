#include "store/sqlite_query.h"

#include <sqlite3.h>

#include <string>
#include <utility>

#include "util/status.h"

namespace fleetwatch::store::sqlite {

std::string ErrorMessage(sqlite3* db) { return sqlite3_errmsg(db); }

// Maps a failed SQLite call (`rc`, extended) to the Store error policy.
Status SqliteError(sqlite3* db, int rc) {
  std::string message = ErrorMessage(db);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable("database is busy: " + message);
    default:
      break;
  }
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return AlreadyExists(std::move(message));
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return NotFound("a referenced row does not exist: " + message);
    default:
      return Internal("database error: " + message);
  }
}

}  // namespace fleetwatch::store::sqlite
