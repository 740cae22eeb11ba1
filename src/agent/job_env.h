#pragma once

#include <map>
#include <string>

#include "agent/job_runtime.h"

namespace fleetwatch::agent {

// The environment of a job, in the order docs/agent-api.md gives (later entries win): the
// agent's PATH, HOME, LANG and USER taken from `agent_env`, the run's env, the DSTACK_*
// variables, then the GPU visibility variables of `gpu_vendor` ("amd": ROCR_/HIP_VISIBLE_DEVICES;
// anything else: CUDA_/NVIDIA_VISIBLE_DEVICES) set to the comma-separated gpu_indices.
// Pure function; thread-safe.
std::map<std::string, std::string> BuildJobEnvironment(
    const JobSpec& spec, const std::map<std::string, std::string>& agent_env,
    const std::string& gpu_vendor);

// The variables of the current process (environ) as a map.
std::map<std::string, std::string> CurrentEnvironment();

}  // namespace fleetwatch::agent
