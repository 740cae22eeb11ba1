#include "util/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace fleetwatch {
namespace {

// The pid text in the lock file; nullopt when it holds none (a holder between taking the lock
// and writing its pid).
std::optional<int> ReadPid(int fd) {
  char text[32] = {};
  ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  if (n <= 0) return std::nullopt;
  char* end = nullptr;
  long pid = std::strtol(text, &end, 10);
  if (end == text || pid <= 0) return std::nullopt;
  return static_cast<int>(pid);
}

std::string PidText(std::optional<int> pid) {
  return pid ? "pid " + std::to_string(*pid) : std::string("pid unknown");
}

}  // namespace

Result<DataDirLock> DataDirLock::Acquire(const std::filesystem::path& dir, std::string_view what) {
  const std::filesystem::path file = dir / kFileName;
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Unavailable("cannot open " + file.string() + ": " + std::strerror(errno));
  DataDirLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return Unavailable("cannot lock " + file.string() + ": " + std::strerror(errno));
    }
    return FailedPrecondition("another fleetwatch " + std::string(what) + " (" +
                              PidText(ReadPid(fd)) + ") uses " + dir.string());
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return Unavailable("cannot write " + file.string() + ": " + std::strerror(errno));
  }
  return lock;
}

std::optional<int> DataDirLock::Holder(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / kFileName;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::optional<int> holder;
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd, LOCK_UN);  // nobody holds it
  } else {
    holder = ReadPid(fd).value_or(0);
  }
  ::close(fd);
  return holder;
}

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace fleetwatch
