#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "util/status.h"

namespace fleetwatch {

// An exclusive claim on a data directory, so that two servers (or two agents) never share one:
// flock(2) on <dir>/fleetwatch.lock, a 0600 file that records the holder's pid. The kernel drops
// the lock when the holder exits, however it exits, so a stale file never blocks a start.
// Move-only; not thread-safe (one owner). The descriptor is close-on-exec: processes the holder
// starts do not hold the lock.
class DataDirLock {
 public:
  static constexpr char kFileName[] = "fleetwatch.lock";

  // Takes the lock on `dir` (which must exist), then writes this process's pid into the file.
  // `what` names the holder in the error ("server", "agent"). FailedPrecondition "another
  // fleetwatch <what> (pid N) uses <dir>" when another process holds it: nothing is written then.
  // Unavailable when the file cannot be opened or written.
  static Result<DataDirLock> Acquire(const std::filesystem::path& dir, std::string_view what);

  // The pid written by the process that holds the lock on `dir` now (0 when it has not written
  // it yet); nullopt when no process holds it (or the file is missing). Takes no lock that
  // outlives the call and writes nothing.
  static std::optional<int> Holder(const std::filesystem::path& dir);

  DataDirLock(DataDirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();  // releases the lock; the file stays

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace fleetwatch
