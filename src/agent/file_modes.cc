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

}  // namespace fleetwatch::agent
