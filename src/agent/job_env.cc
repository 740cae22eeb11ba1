#include "agent/job_env.h"

extern char** environ;

namespace fleetwatch::agent {

std::map<std::string, std::string> BuildJobEnvironment(
    const JobSpec& spec, const std::map<std::string, std::string>& agent_env,
    const std::string& gpu_vendor) {
  std::map<std::string, std::string> env;
  for (const char* name : {"PATH", "HOME", "LANG", "USER"}) {
    if (auto it = agent_env.find(name); it != agent_env.end()) env[name] = it->second;
  }
  for (const auto& [name, value] : spec.env) env[name] = value;

  const ClusterInfo& cluster = spec.cluster;
  int gpus_per_node = cluster.gpus_per_node.value_or(static_cast<int>(spec.gpu_indices.size()));
  std::string ips;
  for (const std::string& ip : cluster.nodes_ips) ips += (ips.empty() ? "" : "\n") + ip;
  env["DSTACK_RUN_NAME"] = spec.run_name;
  env["DSTACK_NODES_NUM"] = std::to_string(cluster.nodes_num);
  env["DSTACK_NODE_RANK"] = std::to_string(cluster.node_rank);
  env["DSTACK_MASTER_NODE_IP"] = cluster.master_node_ip;
  env["DSTACK_NODES_IPS"] = ips;
  env["DSTACK_GPUS_NUM"] = std::to_string(static_cast<int64_t>(gpus_per_node) * cluster.nodes_num);
  env["DSTACK_GPUS_PER_NODE"] = std::to_string(gpus_per_node);

  std::string devices;
  for (int index : spec.gpu_indices)
    devices += (devices.empty() ? "" : ",") + std::to_string(index);
  if (gpu_vendor == "amd") {
    env["ROCR_VISIBLE_DEVICES"] = devices;
    env["HIP_VISIBLE_DEVICES"] = devices;
  } else {
    env["CUDA_VISIBLE_DEVICES"] = devices;
    env["NVIDIA_VISIBLE_DEVICES"] = devices;
  }
  return env;
}

std::map<std::string, std::string> CurrentEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

}  // namespace fleetwatch::agent
