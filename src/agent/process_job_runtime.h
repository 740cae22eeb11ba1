#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "agent/job_identity.h"
#include "agent/job_runtime.h"
#include "util/clock.h"

namespace fleetwatch::agent {

struct ProcessJobRuntimeOptions {
  // The agent's own (0700) directory: job logs are <data_dir>/logs/<job_id>.log, 0600, and the
  // records of accepted jobs <data_dir>/accepted/<job_id>.json (job_records.h).
  std::filesystem::path data_dir;
  // The jobs root (job_dirs.h): each job's directory <jobs_dir>/<job_id> is its HOME and default
  // working directory, owned by the job's user. Empty: <data_dir>/jobs. The caller checks a
  // jobs root shared with other users beforehand (PrepareJobsRoot); a missing one is created.
  std::filesystem::path jobs_dir;
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  // Job cgroups are <cgroup_root>[/<v1 hierarchy>]/<cgroup_group>/<job_id>. At construction the
  // leftovers of an earlier runtime with the same data_dir (job ids with a log or a record) are
  // killed and removed, with their job directories, and the logs of those without a record;
  // other agents' job cgroups are left alone.
  std::string cgroup_group = "fleetwatch";
  bool use_cgroups = true;  // false: never touch cgroupfs (usage then comes from /proc)
  std::string gpu_vendor;   // picks the GPU visibility variables (see BuildJobEnvironment)
  JobUserPolicy job_users = AgentUserPolicy{};  // who each job runs as (job_identity.h)
  std::chrono::milliseconds reap_interval{100};
};

// Every job is recorded (job_records.h) before its process starts, and its record removed by
// Acknowledge. The recorded jobs of an earlier runtime with the same data_dir are held from
// construction in phase kLost (their processes killed as above, and those under a dynamic uid
// nobody holds now), so that Start never runs them again.
//
// Runs jobs as local processes (see process_launch.h) in cgroups when the host has usable ones,
// each as the user job_users gives it (a dynamic uid is held from Start until Acknowledge or
// destruction), in a clean environment (job_env.h), reaping only its own children: a background
// thread waitpid(pid, WNOHANG)s each running job every reap_interval, so other children of the
// process keep their statuses. When a job's main process ends, whatever it left in its process
// group or cgroup is killed, and with a uid of its own every process of that uid. A job for which
// no uid is free fails to start with that reason. A cgroup that cannot be created is warned about
// once and the job runs without one. Acknowledge removes the job's directory (never following a
// symlink in it), log and cgroup. Destruction SIGKILLs jobs still running, reaps them and removes
// every job cgroup and job directory (logs stay until the next runtime with this data_dir starts).
// `clock` must outlive it.
std::unique_ptr<JobRuntime> NewProcessJobRuntime(ProcessJobRuntimeOptions options,
                                                 const Clock& clock);

}  // namespace fleetwatch::agent
