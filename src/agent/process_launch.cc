#include "agent/process_launch.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fleetwatch::agent {
namespace {

// What the child reports through the status pipe when a step before exec fails.
enum class Step : int { kCgroup = 1, kCredentials, kWorkingDir, kStdio, kExec };
struct ChildFailure {
  int step;
  int error;
};

// Async-signal-safe from here to the end of the namespace: used between fork and exec.
[[noreturn]] void Fail(int pipe_fd, Step step) {
  ChildFailure failure{static_cast<int>(step), errno};
  ssize_t ignored = ::write(pipe_fd, &failure, sizeof failure);
  (void)ignored;
  ::_exit(127);
}

bool MoveTo(int fd, int target) {
  if (fd == target) return ::fcntl(fd, F_SETFD, 0) == 0;  // dup2 would keep CLOEXEC
  return ::dup2(fd, target) == target;
}

// Becomes `credentials`' user for good. Raw syscalls: glibc's wrappers synchronise the credentials
// of all threads, and this forked child has one thread only. False with errno on any failure.
bool SwitchUser(const LaunchCredentials& credentials) {
  if (::syscall(SYS_setgroups, credentials.groups.size(), credentials.groups.data()) != 0) {
    return false;
  }
  gid_t gid = credentials.gid;
  uid_t uid = credentials.uid;
  if (::syscall(SYS_setresgid, gid, gid, gid) != 0) return false;
  if (::syscall(SYS_setresuid, uid, uid, uid) != 0) return false;
  uid_t real = 0, effective = 0, saved = 0;
  if (::getresuid(&real, &effective, &saved) != 0) return false;
  if (real != uid || effective != uid || saved != uid) {
    errno = EPERM;
    return false;
  }
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
}

[[noreturn]] void RunChild(int pipe_fd, int null_fd, int log_fd,
                           const std::vector<std::string>& procs_files,
                           const LaunchCredentials* credentials, const char* working_dir,
                           char* const* argv, char* const* envp, int max_fd) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) {
    ::sigaction(sig, &dfl, nullptr);
  }
  ::setpgid(0, 0);
  ::umask(077);
  for (const std::string& file : procs_files) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) Fail(pipe_fd, Step::kCgroup);
    ::close(fd);
  }
  if (credentials != nullptr && !SwitchUser(*credentials)) Fail(pipe_fd, Step::kCredentials);
  if (working_dir != nullptr && ::chdir(working_dir) != 0) Fail(pipe_fd, Step::kWorkingDir);
  if (!MoveTo(null_fd, 0) || !MoveTo(log_fd, 1) || !MoveTo(log_fd, 2)) {
    Fail(pipe_fd, Step::kStdio);
  }
  // Descriptors the agent holds (sockets, other jobs' logs) must not leak into the job.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < max_fd; ++fd) {
      if (fd != pipe_fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  ::execve("/bin/sh", argv, envp);
  Fail(pipe_fd, Step::kExec);
}

std::string StepMessage(const ChildFailure& failure, const LaunchSpec& spec) {
  std::string reason = std::strerror(failure.error);
  switch (static_cast<Step>(failure.step)) {
    case Step::kCgroup:
      return "cannot join the job's cgroup: " + reason;
    case Step::kCredentials:
      return "cannot switch to uid " +
             std::to_string(spec.credentials ? spec.credentials->uid : 0) + " gid " +
             std::to_string(spec.credentials ? spec.credentials->gid : 0) + ": " + reason;
    case Step::kWorkingDir:
      return "working_dir " + spec.working_dir.value_or("") + ": " + reason;
    case Step::kStdio:
      return "cannot set up stdin/stdout/stderr: " + reason;
    case Step::kExec:
      return "cannot run /bin/sh: " + reason;
  }
  return "the job process failed before exec: " + reason;
}

// An fd >= 3 so that moving it onto 0..2 in the child never clobbers another one.
int HighFd(int fd) {
  if (fd < 0 || fd >= 3) return fd;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return high;
}

}  // namespace

Result<pid_t> LaunchJobProcess(const LaunchSpec& spec) {
  // Everything the child needs is prepared here: it may not allocate.
  std::vector<std::string> args = {"sh", "-c", spec.script};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : spec.env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> procs_files;
  for (const auto& file : spec.cgroup_procs_files) procs_files.push_back(file.string());
  struct rlimit limit = {};
  int max_fd = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 65536
                   ? static_cast<int>(limit.rlim_cur)
                   : 65536;

  int log_fd =
      HighFd(::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (log_fd < 0) {
    return Unavailable("cannot open " + spec.log_file.string() + ": " + std::strerror(errno));
  }
  int null_fd = HighFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int pipe_fds[2] = {-1, -1};
  if (null_fd < 0 || ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int error = errno;
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Unavailable(std::string("cannot prepare the job process: ") + std::strerror(error));
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    RunChild(
        pipe_fds[1], null_fd, log_fd, procs_files, spec.credentials ? &*spec.credentials : nullptr,
        spec.working_dir ? spec.working_dir->c_str() : nullptr, argv.data(), envp.data(), max_fd);
  }
  int fork_error = errno;
  ::close(pipe_fds[1]);
  ::close(log_fd);
  ::close(null_fd);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    return Unavailable(std::string("fork failed: ") + std::strerror(fork_error));
  }
  ChildFailure failure{};
  size_t got = 0;
  while (got < sizeof failure) {
    ssize_t n = ::read(pipe_fds[0], reinterpret_cast<char*>(&failure) + got, sizeof failure - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(pipe_fds[0]);
  if (got == 0) return pid;  // EOF: exec succeeded and closed the pipe
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (got < sizeof failure) return Unavailable("the job process failed before exec");
  std::string message = StepMessage(failure, spec);
  if (static_cast<Step>(failure.step) == Step::kWorkingDir) return InvalidArgument(message);
  return Unavailable(message);
}

}  // namespace fleetwatch::agent
