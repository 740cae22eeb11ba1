#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/job_usage.h"
#include "util/status.h"

namespace fleetwatch::agent {

enum class CgroupMode { kNone, kV1, kV2 };

// "none", "v1", "v2" (the inventory's "cgroup" field).
std::string_view CgroupModeName(CgroupMode mode);

// The cgroupfs mount point: $FLEETWATCH_CGROUP_ROOT when set, else "/sys/fs/cgroup".
std::string DefaultCgroupRoot();

// v2 when `root`/cgroup.controllers exists; v1 when `root`/cpuacct and `root`/memory are
// directories; none otherwise.
CgroupMode DetectCgroupMode(const std::filesystem::path& root);

struct CgroupLimits {
  std::optional<int64_t> memory_bytes;  // v2 memory.max, v1 memory.limit_in_bytes
  std::optional<double> cpus;           // v2 cpu.max only (v1 has no cpu hierarchy here)
};

// One job's cgroup: one directory on v2, two on v1 (cpuacct and memory hierarchies). A value
// type naming directories; thread-safe as far as the kernel's files are.
class JobCgroup {
 public:
  JobCgroup(CgroupMode mode, std::vector<std::filesystem::path> dirs)
      : mode_(mode), dirs_(std::move(dirs)) {}

  CgroupMode mode() const { return mode_; }
  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }
  // The cgroup.procs files a process writes "0" to in order to join.
  std::vector<std::filesystem::path> ProcsFiles() const;
  // The pids in the cgroup now (from the first hierarchy).
  std::vector<pid_t> Processes() const;
  // SIGKILLs every process in the cgroup (v2 cgroup.kill when present, then each listed pid).
  void KillAll() const;
  // Removes the directories, retrying for up to about a second while dying processes leave.
  // Unavailable when one remains.
  Status Remove() const;
  Result<JobUsage> ReadUsage() const;

 private:
  CgroupMode mode_;
  std::vector<std::filesystem::path> dirs_;
};

// Where job cgroups live: `<root>/<group>/<job_id>` on v2, `<root>/{cpuacct,memory}/<group>/
// <job_id>` on v1. Thread-safe (state is fixed at construction).
class CgroupTree {
 public:
  // `root` is the cgroupfs mount point, `group` the directory that holds the job cgroups
  // ("fleetwatch" for the agent).
  CgroupTree(std::filesystem::path root, std::string group);

  CgroupMode mode() const { return mode_; }

  // Creates (or reuses) the job's cgroup and writes the limits. Unavailable when the cgroup
  // cannot be created (no cgroups, read-only, no permission): the caller runs the job without
  // one. A limit that cannot be written is logged, not an error.
  Result<JobCgroup> Create(const std::string& job_id, const CgroupLimits& limits) const;

  // Kills the processes of the job cgroups under the group that `owned` accepts (by job id; all
  // of them by default) and removes those cgroups, then the group directory itself when it is
  // empty. Returns how many job cgroups were removed.
  int RemoveLeftovers(const std::function<bool(const std::string& job_id)>& owned = nullptr) const;

 private:
  std::vector<std::filesystem::path> GroupDirs() const;

  std::filesystem::path root_;
  std::string group_;
  CgroupMode mode_;
};

}  // namespace fleetwatch::agent
