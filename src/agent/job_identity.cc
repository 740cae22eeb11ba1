#include "agent/job_identity.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>

#include "agent/file_modes.h"
#include "agent/sys_files.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

constexpr uid_t kMaxUid = 0x7fffffff - 1;
constexpr uint64_t kMaxRangeSize = 1000000;

// A decimal number that is all of `text`; false otherwise.
bool ParseNumber(std::string_view text, uint64_t& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

// A passwd entry of `name`; nullopt when there is none (or the database cannot be read).
std::optional<passwd> LookUpUser(const std::string& name, std::vector<char>& buffer) {
  buffer.resize(16384);
  passwd entry = {};
  passwd* found = nullptr;
  while (::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == ERANGE) {
    buffer.resize(buffer.size() * 2);
  }
  if (found == nullptr) return std::nullopt;
  return entry;
}

std::string UserNameOf(uid_t uid) {
  std::vector<char> buffer(16384);
  passwd entry = {};
  passwd* found = nullptr;
  while (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == ERANGE) {
    buffer.resize(buffer.size() * 2);
  }
  return found != nullptr ? std::string(found->pw_name) : std::to_string(uid);
}

bool HasPasswdOrGroupEntry(uid_t id) {
  std::vector<char> buffer(16384);
  passwd user = {};
  passwd* found_user = nullptr;
  while (::getpwuid_r(id, &user, buffer.data(), buffer.size(), &found_user) == ERANGE) {
    buffer.resize(buffer.size() * 2);
  }
  if (found_user != nullptr) return true;
  group grp = {};
  group* found_group = nullptr;
  while (::getgrgid_r(static_cast<gid_t>(id), &grp, buffer.data(), buffer.size(), &found_group) ==
         ERANGE) {
    buffer.resize(buffer.size() * 2);
  }
  return found_group != nullptr;
}

std::vector<gid_t> GroupsOf(const passwd& user) {
  std::vector<gid_t> groups(32);
  int count = static_cast<int>(groups.size());
  while (::getgrouplist(user.pw_name, user.pw_gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<size_t>(count) > groups.size() ? static_cast<size_t>(count)
                                                             : groups.size() * 2);
    count = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<size_t>(count));
  return groups;
}

// The lock of `uid` under `dir`: its descriptor, nullopt when another holder has it.
Result<std::optional<int>> TryLockUid(const fs::path& file) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Unavailable("cannot open " + file.string() + ": " + std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK) return std::optional<int>();
      return Unavailable("cannot lock " + file.string() + ": " + std::strerror(error));
    }
    // The holder before us unlinks the file before it lets go: a lock on an unlinked file is no
    // lock on the path, so try again with the file now there.
    struct stat held = {}, named = {};
    if (::fstat(fd, &held) == 0 && ::stat(file.c_str(), &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
      return std::optional<int>(fd);
    }
    ::close(fd);
  }
  return std::optional<int>();
}

// The lease of a dynamic uid whose lock `fd` (on `file`) this process holds.
JobIdentityLease DynamicLease(uid_t uid, const fs::path& file, int fd) {
  JobIdentity identity;
  identity.uid = uid;
  identity.gid = static_cast<gid_t>(uid);
  identity.user_name = "fleetwatch-" + std::to_string(uid);
  identity.switch_user = true;
  identity.exclusive = true;
  return JobIdentityLease(std::move(identity), file, fd);
}

}  // namespace

Result<UidRange> ParseUidRange(std::string_view text) {
  const size_t dash = text.find('-');
  uint64_t first = 0, last = 0;
  const std::string quoted = "job uid range \"" + std::string(text) + "\"";
  if (dash == std::string_view::npos || !ParseNumber(text.substr(0, dash), first) ||
      !ParseNumber(text.substr(dash + 1), last)) {
    return InvalidArgument(quoted + " is not FIRST-LAST, e.g. 61000-61999");
  }
  if (first == 0) return InvalidArgument(quoted + " includes uid 0 (root)");
  if (first > last) return InvalidArgument(quoted + " ends before it starts");
  if (last > kMaxUid) return InvalidArgument(quoted + " goes past uid " + std::to_string(kMaxUid));
  if (last - first + 1 > kMaxRangeSize) {
    return InvalidArgument(quoted + " has more than " + std::to_string(kMaxRangeSize) + " uids");
  }
  return UidRange{static_cast<uid_t>(first), static_cast<uid_t>(last)};
}

std::vector<uid_t> ParseStatusUids(std::string_view status) {
  std::vector<uid_t> uids;
  size_t pos = status.rfind("Uid:", 0) == 0 ? 0 : status.find("\nUid:");
  if (pos == std::string_view::npos) return uids;
  pos = status.find(':', pos) + 1;
  size_t end = status.find('\n', pos);
  std::string_view line = status.substr(pos, end == std::string_view::npos ? end : end - pos);
  size_t i = 0;
  while (i < line.size() && uids.size() < 4) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (start == i) break;
    uint64_t uid = 0;
    if (!ParseNumber(line.substr(start, i - start), uid) ||
        uid > std::numeric_limits<uid_t>::max()) {
      return {};
    }
    uids.push_back(static_cast<uid_t>(uid));
  }
  return uids;
}

std::set<uid_t> UidsInUse(const fs::path& proc_root) {
  std::set<uid_t> uids;
  std::error_code ec;
  for (fs::directory_iterator it(proc_root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::optional<std::string> status = ReadSmallFile(it->path() / "status");
    if (!status) continue;  // it ended meanwhile
    for (uid_t uid : ParseStatusUids(*status)) uids.insert(uid);
  }
  return uids;
}

Result<JobUserPolicy> ResolveJobUserPolicy(const JobUserFlags& flags, uid_t agent_uid,
                                           const fs::path& lock_dir) {
  FW_ASSIGN_OR_RETURN(UidRange range, ParseUidRange(flags.uid_range));
  if (!flags.job_user.empty() && flags.allow_root_jobs) {
    return InvalidArgument("--job-user and --allow-root-jobs exclude each other");
  }
  if (!flags.job_user.empty()) {
    std::vector<char> buffer;
    std::optional<passwd> user = LookUpUser(flags.job_user, buffer);
    if (!user) return InvalidArgument("--job-user " + flags.job_user + ": no such user");
    if (user->pw_uid == 0) {
      return InvalidArgument("--job-user " + flags.job_user +
                             " is root (uid 0): jobs run as root only with --allow-root-jobs");
    }
    if (agent_uid != 0 && user->pw_uid != agent_uid) {
      return InvalidArgument("--job-user " + flags.job_user +
                             " needs the agent to run as root (it runs as uid " +
                             std::to_string(agent_uid) + ")");
    }
    if (agent_uid != 0) return JobUserPolicy(AgentUserPolicy{});
    return JobUserPolicy(
        NamedUserPolicy{user->pw_uid, user->pw_gid, GroupsOf(*user), flags.job_user});
  }
  if (agent_uid != 0 || flags.allow_root_jobs) return JobUserPolicy(AgentUserPolicy{});
  DynamicUserPolicy policy;
  policy.range = range;
  policy.lock_dir = lock_dir;
  return JobUserPolicy(std::move(policy));
}

bool RunsJobsAsOtherUsers(const JobUserPolicy& policy, uid_t agent_uid) {
  if (std::holds_alternative<DynamicUserPolicy>(policy)) return true;
  if (const auto* named = std::get_if<NamedUserPolicy>(&policy)) return named->uid != agent_uid;
  return false;
}

JobIdentityLease::JobIdentityLease(JobIdentity identity, fs::path lock_file, int lock_fd)
    : identity_(std::move(identity)), lock_file_(std::move(lock_file)), lock_fd_(lock_fd) {}

JobIdentityLease::~JobIdentityLease() { Release(); }

JobIdentityLease::JobIdentityLease(JobIdentityLease&& other) noexcept
    : identity_(std::move(other.identity_)),
      lock_file_(std::move(other.lock_file_)),
      lock_fd_(std::exchange(other.lock_fd_, -1)) {}

JobIdentityLease& JobIdentityLease::operator=(JobIdentityLease&& other) noexcept {
  if (this != &other) {
    Release();
    identity_ = std::move(other.identity_);
    lock_file_ = std::move(other.lock_file_);
    lock_fd_ = std::exchange(other.lock_fd_, -1);
  }
  return *this;
}

void JobIdentityLease::Release() {
  if (lock_fd_ < 0) return;
  // Unlinked while still locked, so that nobody can lock this file again (see TryLockUid).
  ::unlink(lock_file_.c_str());
  ::close(lock_fd_);
  lock_fd_ = -1;
}

JobUsers::JobUsers(JobUserPolicy policy) : policy_(std::move(policy)) {}

Result<JobIdentityLease> JobUsers::Acquire() {
  if (const auto* dynamic = std::get_if<DynamicUserPolicy>(&policy_)) {
    return AcquireDynamic(*dynamic);
  }
  JobIdentity identity;
  if (const auto* named = std::get_if<NamedUserPolicy>(&policy_)) {
    identity.uid = named->uid;
    identity.gid = named->gid;
    identity.groups = named->groups;
    identity.user_name = named->name;
    identity.switch_user = true;
  } else {
    identity.uid = ::geteuid();
    identity.gid = ::getegid();
    identity.user_name = UserNameOf(identity.uid);
  }
  return JobIdentityLease(std::move(identity), {}, -1);
}

Result<std::optional<JobIdentityLease>> JobUsers::Reclaim(uid_t uid) {
  const auto* dynamic = std::get_if<DynamicUserPolicy>(&policy_);
  if (dynamic == nullptr || uid < dynamic->range.first || uid > dynamic->range.last) {
    return std::optional<JobIdentityLease>();
  }
  FW_RETURN_IF_ERROR(EnsurePrivateDirectory(dynamic->lock_dir));
  const fs::path file = dynamic->lock_dir / (std::to_string(uid) + ".lock");
  FW_ASSIGN_OR_RETURN(std::optional<int> fd, TryLockUid(file));
  if (!fd) return std::optional<JobIdentityLease>();
  return std::optional<JobIdentityLease>(DynamicLease(uid, file, *fd));
}

Result<JobIdentityLease> JobUsers::AcquireDynamic(const DynamicUserPolicy& policy) {
  FW_RETURN_IF_ERROR(EnsurePrivateDirectory(policy.lock_dir));
  const std::set<uid_t> running = UidsInUse(policy.proc_root);
  const uint64_t count = static_cast<uint64_t>(policy.range.last) - policy.range.first + 1;
  uint64_t start = 0;
  {
    MutexLock lock(mu_);
    start = next_offset_ % count;
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t offset = (start + i) % count;
    const uid_t uid = static_cast<uid_t>(policy.range.first + offset);
    if (running.count(uid) != 0) continue;
    if (policy.skip_named_ids && HasPasswdOrGroupEntry(uid)) continue;
    const fs::path file = policy.lock_dir / (std::to_string(uid) + ".lock");
    FW_ASSIGN_OR_RETURN(std::optional<int> fd, TryLockUid(file));
    if (!fd) continue;
    {
      MutexLock lock(mu_);
      next_offset_ = offset + 1;
    }
    return DynamicLease(uid, file, *fd);
  }
  return Unavailable("no free uid in the job uid range " + std::to_string(policy.range.first) +
                     "-" + std::to_string(policy.range.last) +
                     ": each is held by a job or used by a running process");
}

void KillProcessesOfUid(uid_t uid) {
  if (uid == 0) return;
  pid_t child = ::fork();
  if (child == 0) {
    // Raw syscalls: this thread is the child's only one. kill(-1) spares the caller itself.
    if (::syscall(SYS_setresuid, uid, uid, uid) != 0) ::_exit(1);
    ::kill(-1, SIGKILL);
    ::_exit(0);
  }
  if (child < 0) return;
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace fleetwatch::agent
