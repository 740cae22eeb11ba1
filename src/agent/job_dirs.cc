#include "agent/job_dirs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "agent/file_modes.h"
#include "agent/job_runtime.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxDepth = 512;

Status Errno(const std::string& what, const fs::path& path, int error = errno) {
  return Unavailable(what + " " + path.string() + ": " + std::strerror(error));
}

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Removes everything inside the directory open as `dir_fd`; errno-style result (0: all gone).
int RemoveEntries(int dir_fd, int depth) {
  if (depth > kMaxDepth) return ELOOP;
  int list_fd = ::dup(dir_fd);
  if (list_fd < 0) return errno;
  DIR* dir = ::fdopendir(list_fd);
  if (dir == nullptr) {
    int error = errno;
    ::close(list_fd);
    return error;
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  int result = 0;
  for (const std::string& name : names) {
    if (::unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) {
      result = errno;
      continue;
    }
    int child = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0) {
      result = errno;
      continue;
    }
    int inner = RemoveEntries(child, depth + 1);
    ::close(child);
    if (inner != 0) {
      result = inner;
    } else if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      result = errno;
    }
  }
  return result;
}

}  // namespace

Status PrepareJobsRoot(const fs::path& root, bool agent_is_root, bool others_must_reach) {
  FW_RETURN_IF_ERROR(CreateDirectories(root, agent_is_root ? 0711 : 0700));
  struct stat st = {};
  if (::lstat(root.c_str(), &st) != 0) return Errno("cannot inspect", root);
  if (S_ISLNK(st.st_mode)) {
    return FailedPrecondition("the jobs directory " + root.string() +
                              " is a symlink: give its real path");
  }
  if (!S_ISDIR(st.st_mode)) {
    return FailedPrecondition("the jobs directory " + root.string() + " is not a directory");
  }
  if (agent_is_root) {
    if (st.st_uid != 0) {
      return FailedPrecondition("the jobs directory " + root.string() + " belongs to uid " +
                                std::to_string(st.st_uid) + ", not to root");
    }
    if ((st.st_mode & 07777) != 0711 && ::chmod(root.c_str(), 0711) != 0) {
      return Errno("cannot chmod 0711", root);
    }
  }
  if (others_must_reach) {
    fs::path absolute = fs::absolute(root).lexically_normal();
    for (fs::path p = absolute.parent_path();; p = p.parent_path()) {
      if (::stat(p.c_str(), &st) != 0) return Errno("cannot inspect", p);
      if ((st.st_mode & S_IXOTH) == 0) {
        return FailedPrecondition("job users cannot reach the jobs directory " + root.string() +
                                  ": " + p.string() + " is mode " + ModeText(st.st_mode) +
                                  " (others need x); choose another --jobs-dir or chmod o+x " +
                                  p.string());
      }
      if (p == p.parent_path()) break;
    }
  }
  return Status::Ok();
}

Result<fs::path> CreateJobDirectory(const fs::path& root, const std::string& job_id, uid_t uid,
                                    gid_t gid) {
  if (!IsValidJobId(job_id)) return InvalidArgument("invalid job_id");
  FW_RETURN_IF_ERROR(RemoveJobDirectory(root, job_id));
  const fs::path dir = root / job_id;
  Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root_fd.get() < 0) return Errno("cannot open", root);
  if (::mkdirat(root_fd.get(), job_id.c_str(), 0700) != 0) return Errno("cannot create", dir);
  Fd dir_fd(
      ::openat(root_fd.get(), job_id.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir_fd.get() < 0) return Errno("cannot open", dir);
  if ((uid != ::geteuid() || gid != ::getegid()) && ::fchown(dir_fd.get(), uid, gid) != 0) {
    return Errno("cannot give " + std::to_string(uid) + ":" + std::to_string(gid), dir);
  }
  if (::fchmod(dir_fd.get(), 0700) != 0) return Errno("cannot chmod 0700", dir);
  return dir;
}

Status RemoveJobDirectory(const fs::path& root, const std::string& job_id) {
  if (!IsValidJobId(job_id)) return InvalidArgument("invalid job_id");
  const fs::path dir = root / job_id;
  Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root_fd.get() < 0) return errno == ENOENT ? Status::Ok() : Errno("cannot open", root);
  int dir_fd =
      ::openat(root_fd.get(), job_id.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    if (errno != ENOTDIR && errno != ELOOP) return Errno("cannot open", dir);
    // Not a directory (the agent made none such): a stray entry, removed as it is.
    if (::unlinkat(root_fd.get(), job_id.c_str(), 0) != 0) return Errno("cannot remove", dir);
    return Status::Ok();
  }
  int error = RemoveEntries(dir_fd, 0);
  if (error != 0) {
    // Out of the job uid's reach, which a later job may be given.
    int ignored = ::fchown(dir_fd, ::geteuid(), ::getegid());
    ignored = ::fchmod(dir_fd, 0700);
    (void)ignored;
    ::close(dir_fd);
    return Errno("cannot remove everything in", dir, error);
  }
  ::close(dir_fd);
  if (::unlinkat(root_fd.get(), job_id.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Errno("cannot remove", dir);
  }
  return Status::Ok();
}

}  // namespace fleetwatch::agent
