#include "agent/cgroup_tree.h"

#include <signal.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "agent/sys_files.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

bool IsDirectory(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

// mkdir that accepts an existing directory.
Status MakeDirectory(const fs::path& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return Status::Ok();
  return Unavailable("cannot create cgroup " + path.string() + ": " + std::strerror(errno));
}

std::vector<pid_t> ReadPids(const fs::path& procs) {
  std::vector<pid_t> pids;
  std::optional<std::string> text = ReadSmallFile(procs);
  if (!text) return pids;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    if (std::optional<int64_t> pid = ParseInteger(std::string_view(*text).substr(pos, end - pos));
        pid && *pid > 0) {
      pids.push_back(static_cast<pid_t>(*pid));
    }
    pos = end + 1;
  }
  return pids;
}

}  // namespace

std::string_view CgroupModeName(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::kV1:
      return "v1";
    case CgroupMode::kV2:
      return "v2";
    case CgroupMode::kNone:
      break;
  }
  return "none";
}

std::string DefaultCgroupRoot() {
  const char* env = std::getenv("FLEETWATCH_CGROUP_ROOT");
  return env != nullptr && *env != '\0' ? env : "/sys/fs/cgroup";
}

CgroupMode DetectCgroupMode(const fs::path& root) {
  std::error_code ec;
  if (fs::exists(root / "cgroup.controllers", ec)) return CgroupMode::kV2;
  if (IsDirectory(root / "cpuacct") && IsDirectory(root / "memory")) return CgroupMode::kV1;
  return CgroupMode::kNone;
}

std::vector<fs::path> JobCgroup::ProcsFiles() const {
  std::vector<fs::path> files;
  for (const fs::path& dir : dirs_) files.push_back(dir / "cgroup.procs");
  return files;
}

std::vector<pid_t> JobCgroup::Processes() const {
  return dirs_.empty() ? std::vector<pid_t>{} : ReadPids(dirs_.front() / "cgroup.procs");
}

void JobCgroup::KillAll() const {
  if (mode_ == CgroupMode::kV2 && !dirs_.empty()) {
    std::error_code ec;
    if (fs::exists(dirs_.front() / "cgroup.kill", ec)) {
      (void)WriteControlFile(dirs_.front() / "cgroup.kill", "1");
    }
  }
  // A process may fork while we read the list; a few rounds catch the stragglers.
  for (int round = 0; round < 5; ++round) {
    std::vector<pid_t> pids = Processes();
    if (pids.empty()) return;
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Status JobCgroup::Remove() const {
  for (int attempt = 0;; ++attempt) {
    bool all_gone = true;
    int error = 0;
    for (const fs::path& dir : dirs_) {
      if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
        all_gone = false;
        error = errno;
      }
    }
    if (all_gone) return Status::Ok();
    if (attempt >= 50) {
      return Unavailable("cannot remove cgroup " + dirs_.front().string() + ": " +
                         std::strerror(error));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<JobUsage> JobCgroup::ReadUsage() const {
  if (mode_ == CgroupMode::kV2 && dirs_.size() == 1) return ReadCgroupV2Usage(dirs_[0]);
  if (mode_ == CgroupMode::kV1 && dirs_.size() == 2) return ReadCgroupV1Usage(dirs_[0], dirs_[1]);
  return Unavailable("no cgroup");
}

CgroupTree::CgroupTree(fs::path root, std::string group)
    : root_(std::move(root)), group_(std::move(group)), mode_(DetectCgroupMode(root_)) {}

std::vector<fs::path> CgroupTree::GroupDirs() const {
  switch (mode_) {
    case CgroupMode::kV2:
      return {root_ / group_};
    case CgroupMode::kV1:
      return {root_ / "cpuacct" / group_, root_ / "memory" / group_};
    case CgroupMode::kNone:
      break;
  }
  return {};
}

Result<JobCgroup> CgroupTree::Create(const std::string& job_id, const CgroupLimits& limits) const {
  if (mode_ == CgroupMode::kNone) return Unavailable("this host has no usable cgroups");
  std::vector<fs::path> dirs;
  for (const fs::path& group_dir : GroupDirs()) {
    FW_RETURN_IF_ERROR(MakeDirectory(group_dir));
    if (mode_ == CgroupMode::kV2) {
      // Controllers must be enabled on the way down for cpu.max/memory.max to exist. Each one
      // separately: on a hybrid host a controller bound to v1 cannot be enabled, the other may.
      for (const fs::path& parent : {root_, group_dir}) {
        for (const char* controller : {"+cpu", "+memory"}) {
          (void)WriteControlFile(parent / "cgroup.subtree_control", controller);
        }
      }
    }
    dirs.push_back(group_dir / job_id);
    FW_RETURN_IF_ERROR(MakeDirectory(dirs.back()));
  }
  JobCgroup cgroup(mode_, dirs);
  if (limits.memory_bytes) {
    std::string value = std::to_string(*limits.memory_bytes);
    fs::path file =
        mode_ == CgroupMode::kV2 ? dirs[0] / "memory.max" : dirs[1] / "memory.limit_in_bytes";
    if (Status s = WriteControlFile(file, value); !s.ok()) {
      spdlog::warn("job {}: memory limit not applied: {}", job_id, s.message());
    }
  }
  if (limits.cpus && mode_ == CgroupMode::kV2 && *limits.cpus > 0) {
    constexpr int64_t kPeriod = 100'000;
    auto quota = static_cast<int64_t>(std::ceil(*limits.cpus * kPeriod));
    std::string value = std::to_string(quota) + " " + std::to_string(kPeriod);
    if (Status s = WriteControlFile(dirs[0] / "cpu.max", value); !s.ok()) {
      spdlog::warn("job {}: cpu limit not applied: {}", job_id, s.message());
    }
  }
  return cgroup;
}

int CgroupTree::RemoveLeftovers(const std::function<bool(const std::string&)>& owned) const {
  int removed = 0;
  std::vector<fs::path> group_dirs = GroupDirs();
  if (group_dirs.empty()) return 0;
  // Names are collected first: removing entries while iterating a directory is unspecified.
  auto list = [](const fs::path& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec)) names.push_back(it->path().filename().string());
    }
    return names;
  };
  for (const std::string& job_id : list(group_dirs.front())) {
    if (owned && !owned(job_id)) continue;
    std::vector<fs::path> dirs;
    for (const fs::path& group_dir : group_dirs) dirs.push_back(group_dir / job_id);
    JobCgroup leftover(mode_, dirs);
    leftover.KillAll();
    if (Status s = leftover.Remove(); s.ok()) {
      ++removed;
    } else {
      spdlog::warn("leftover cgroup: {}", s.message());
    }
  }
  // On v1 a job may also have been left in the second hierarchy only.
  for (size_t i = 1; i < group_dirs.size(); ++i) {
    for (const std::string& job_id : list(group_dirs[i])) {
      if (owned && !owned(job_id)) continue;
      JobCgroup leftover(mode_, {group_dirs[i] / job_id});
      leftover.KillAll();
      (void)leftover.Remove();
    }
  }
  // The group itself goes too (it is made again on the next Create); busy or absent is fine.
  for (const fs::path& group_dir : group_dirs) ::rmdir(group_dir.c_str());
  return removed;
}

}  // namespace fleetwatch::agent
