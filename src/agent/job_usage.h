#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#include "util/status.h"

namespace fleetwatch::agent {

// A job's resource use at one moment: what the metrics point of spec/METRICS.md reports.
struct JobUsage {
  int64_t cpu_usage_micro = 0;           // CPU time used so far, all processes, microseconds
  int64_t memory_usage_bytes = 0;        // charged memory, page cache included
  int64_t memory_working_set_bytes = 0;  // usage minus inactive file pages (never negative)
};

// cgroup v2: cpu.stat usage_usec, memory.current, memory.stat inactive_file in `dir`.
// Unavailable when a file is missing or malformed. Thread-safe.
Result<JobUsage> ReadCgroupV2Usage(const std::filesystem::path& dir);

// cgroup v1: cpuacct.usage (ns) in `cpuacct_dir`; memory.usage_in_bytes and memory.stat
// total_inactive_file in `memory_dir`. Unavailable when a file is missing or malformed.
Result<JobUsage> ReadCgroupV1Usage(const std::filesystem::path& cpuacct_dir,
                                   const std::filesystem::path& memory_dir);

// Without cgroups: the processes of process group `pgid` found under `proc_root` (normally
// /proc): utime+stime+cutime+cstime from <pid>/stat, resident pages from <pid>/statm (working
// set = usage). Processes that left the group or vanish while reading are not counted.
// NotFound when no process of the group is left. Thread-safe.
Result<JobUsage> ReadProcessGroupUsage(const std::filesystem::path& proc_root, pid_t pgid);

// ReadProcessGroupUsage for several process groups in one pass over `proc_root` (every process's
// stat is read once, whatever the number of groups). A group with no process left is absent from
// the result. Thread-safe.
std::map<pid_t, JobUsage> ReadProcessGroupsUsage(const std::filesystem::path& proc_root,
                                                 const std::vector<pid_t>& pgids);

}  // namespace fleetwatch::agent
