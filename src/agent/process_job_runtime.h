#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "agent/job_runtime.h"
#include "util/clock.h"

namespace fleetwatch::agent {

struct ProcessJobRuntimeOptions {
  std::filesystem::path data_dir;  // logs go to <data_dir>/jobs/<job_id>/output.log
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  // Job cgroups are <cgroup_root>[/<v1 hierarchy>]/<cgroup_group>/<job_id>. At construction the
  // leftovers of an earlier runtime with the same data_dir (job ids with a directory under
  // <data_dir>/jobs) are killed and removed; other agents' job cgroups are left alone.
  std::string cgroup_group = "fleetwatch";
  bool use_cgroups = true;  // false: never touch cgroupfs (usage then comes from /proc)
  std::string gpu_vendor;   // picks the GPU visibility variables (see BuildJobEnvironment)
  std::map<std::string, std::string> agent_env;  // PATH, HOME, LANG, USER are passed on
  std::chrono::milliseconds reap_interval{100};
};

// Runs jobs as local processes (see process_launch.h) in cgroups when the host has usable ones,
// reaping only its own children: a background thread waitpid(pid, WNOHANG)s each running job
// every reap_interval, so other children of the process keep their statuses. When a job's main
// process ends, whatever it left in its process group or cgroup is killed. A cgroup that cannot
// be created is warned about once and the job runs without one. Destruction SIGKILLs jobs still
// running, reaps them and removes every job cgroup (logs stay). `clock` must outlive it.
std::unique_ptr<JobRuntime> NewProcessJobRuntime(ProcessJobRuntimeOptions options,
                                                 const Clock& clock);

}  // namespace fleetwatch::agent
