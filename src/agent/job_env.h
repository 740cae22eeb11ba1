#pragma once

#include <map>
#include <string>

#include "agent/job_runtime.h"

namespace fleetwatch::agent {

// PATH of a job whose run sets none.
inline constexpr char kDefaultJobPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// What the agent knows of a job beyond its spec.
struct JobEnvContext {
  std::string home;        // the job's own directory
  std::string user_name;   // USER and LOGNAME; empty: neither is set
  std::string gpu_vendor;  // "amd": ROCR_/HIP_VISIBLE_DEVICES; else CUDA_/NVIDIA_VISIBLE_DEVICES
};

// The whole environment of a job, built from nothing (nothing of the agent's own environment is
// passed on), in the order docs/agent-api.md gives (later entries win): PATH (kDefaultJobPath)
// and LANG (C.UTF-8), the run's env, then HOME, USER and LOGNAME from `context`, the DSTACK_*
// variables and the GPU visibility variables set to the comma-separated gpu_indices.
// Pure function; thread-safe.
std::map<std::string, std::string> BuildJobEnvironment(const JobSpec& spec,
                                                       const JobEnvContext& context);

// The variables of the current process (environ) as a map.
std::map<std::string, std::string> CurrentEnvironment();

}  // namespace fleetwatch::agent
