#include "agent/file_modes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

Status Errno(const std::string& what, const fs::path& path) {
  return Unavailable(what + " " + path.string() + ": " + std::strerror(errno));
}

}  // namespace

std::string ModeText(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

Status CreateDirectories(const fs::path& dir, mode_t mode, mode_t parent_mode) {
  fs::path absolute = dir.lexically_normal();
  std::vector<fs::path> missing;
  for (fs::path p = absolute; !p.empty(); p = p.parent_path()) {
    struct stat st = {};
    if (::stat(p.c_str(), &st) == 0) break;
    if (errno != ENOENT) return Errno("cannot inspect", p);
    missing.push_back(p);
    if (p == p.parent_path() || p.parent_path().empty()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    mode_t want = *it == absolute ? mode : parent_mode;
    if (::mkdir(it->c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;  // made by someone else meanwhile: theirs to set up
      return Errno("cannot create", *it);
    }
    if (::chmod(it->c_str(), want) != 0) return Errno("cannot chmod", *it);
  }
  return Status::Ok();
}

Status EnsurePrivateDirectory(const fs::path& dir) {
  FW_RETURN_IF_ERROR(CreateDirectories(dir, 0700));
  struct stat st = {};
  if (::stat(dir.c_str(), &st) != 0) return Errno("cannot inspect", dir);
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(dir.string() + " is not a directory");
  if ((st.st_mode & S_ISVTX) != 0) {
    return FailedPrecondition(dir.string() + " is a shared directory (mode " +
                              ModeText(st.st_mode) + "): give the agent a directory of its own");
  }
  if (st.st_uid != ::geteuid()) {
    return FailedPrecondition(dir.string() + " belongs to uid " + std::to_string(st.st_uid) +
                              ", not to the agent's uid " + std::to_string(::geteuid()));
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0) {
    return Errno("cannot chmod 0700", dir);
  }
  return Status::Ok();
}

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

}  // namespace fleetwatch::agent
