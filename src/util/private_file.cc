#include "util/private_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace fleetwatch {
namespace {

namespace fs = std::filesystem;

Status Errno(const std::string& what, const fs::path& path) {
  return Unavailable(what + " " + path.string() + ": " + std::strerror(errno));
}

}  // namespace

Status WritePrivateFileAtomically(const fs::path& file, std::string_view text) {
  fs::path tmp = file;
  tmp += ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover of a crash with the same pid
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  int write_error = errno;
  bool complete = written == text.size();
  // Durable before it is visible: a crash after the rename never leaves an empty file.
  if (complete && ::fsync(fd) != 0) {
    write_error = errno;
    complete = false;
  }
  bool closed = ::close(fd) == 0;
  if (!complete || !closed) {
    ::unlink(tmp.c_str());
    errno = !complete ? write_error : errno;
    return Errno("cannot write", tmp);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    Status status = Errno("cannot write", file);
    ::unlink(tmp.c_str());
    return status;
  }
  return Status::Ok();
}

Status SyncDirectory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", dir);
  bool synced = ::fsync(fd) == 0;
  int sync_error = errno;
  ::close(fd);
  if (!synced) {
    errno = sync_error;
    return Errno("cannot fsync", dir);
  }
  return Status::Ok();
}

}  // namespace fleetwatch
