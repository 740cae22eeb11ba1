#include "agent/job_env.h"

extern char** environ;

namespace fleetwatch::agent {

std::map<std::string, std::string> BuildJobEnvironment(const JobSpec& spec,
                                                       const JobEnvContext& context) {
  std::map<std::string, std::string> env = {{"PATH", kDefaultJobPath}, {"LANG", "C.UTF-8"}};
  for (const auto& [name, value] : spec.env) env[name] = value;
  env["HOME"] = context.home;
  if (!context.user_name.empty()) {
    env["USER"] = context.user_name;
    env["LOGNAME"] = context.user_name;
  }

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
  if (context.gpu_vendor == "amd") {
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
