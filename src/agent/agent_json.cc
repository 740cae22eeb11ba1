#include "agent/agent_json.h"

#include <boost/json/value.hpp>

#include <limits>
#include <set>
#include <string>

#include "model/json_text.h"

namespace fleetwatch::agent {
namespace {

namespace json = boost::json;

constexpr int64_t kDefaultGraceSeconds = 10;
constexpr int64_t kMaxGraceSeconds = 300;
constexpr size_t kMaxCommands = 10'000;
constexpr size_t kMaxEnv = 10'000;

Result<json::object> ParseObject(std::string_view body) {
  FW_ASSIGN_OR_RETURN(json::value value, model::ParseStrictJson(body, {.subject = "the body"}));
  if (!value.is_object()) return InvalidArgument("the body must be a JSON object");
  return std::move(value.as_object());
}

Status OnlyKeys(const json::object& object, std::initializer_list<std::string_view> known,
                std::string_view where) {
  for (const auto& entry : object) {
    if (std::find(known.begin(), known.end(), entry.key()) == known.end()) {
      std::string key(entry.key());
      // Keep the message one readable line whatever the key holds.
      if (key.size() > 64) key = key.substr(0, 64) + "...";
      for (char& c : key) {
        if (static_cast<unsigned char>(c) < 0x20) c = '?';
      }
      return InvalidArgument("unknown field \"" + key + "\"" +
                             (where.empty() ? "" : " in " + std::string(where)));
    }
  }
  return Status::Ok();
}

bool IsNull(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v == nullptr || v->is_null();
}

// Text that reaches execve: a NUL would silently cut it short.
Result<std::string> ExecText(const json::value& value, const std::string& field) {
  if (!value.is_string()) return InvalidArgument(field + " must be a string");
  std::string text(value.as_string());
  if (text.find('\0') != std::string::npos) {
    return InvalidArgument(field + " must not contain NUL characters");
  }
  return text;
}

Result<std::string> OptionalString(const json::object& object, std::string_view key) {
  if (IsNull(object, key)) return std::string();
  return ExecText(object.at(key), std::string(key));
}

// An integer in [min, max]; doubles are refused so that 1.5 never turns into 1.
Result<int64_t> Integer(const json::value& value, const std::string& field, int64_t min,
                        int64_t max) {
  int64_t n = 0;
  if (value.is_int64()) {
    n = value.as_int64();
  } else if (value.is_uint64()) {
    return InvalidArgument(field + " is too large");
  } else {
    return InvalidArgument(field + " must be an integer");
  }
  if (n < min || n > max) {
    return InvalidArgument(field + " must be between " + std::to_string(min) + " and " +
                           std::to_string(max));
  }
  return n;
}

bool IsEnvName(std::string_view name) {
  if (name.empty()) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(name[0])) return false;
  for (char c : name) {
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

Status ParseCluster(const json::object& object, JobSpec& spec) {
  FW_RETURN_IF_ERROR(
      OnlyKeys(object, {"nodes_num", "node_rank", "master_node_ip", "nodes_ips", "gpus_per_node"},
               "cluster"));
  ClusterInfo& cluster = spec.cluster;
  constexpr int64_t kMaxNodes = 100'000;
  if (!IsNull(object, "nodes_num")) {
    FW_ASSIGN_OR_RETURN(int64_t n,
                        Integer(object.at("nodes_num"), "cluster.nodes_num", 1, kMaxNodes));
    cluster.nodes_num = static_cast<int>(n);
  }
  if (!IsNull(object, "node_rank")) {
    FW_ASSIGN_OR_RETURN(int64_t rank, Integer(object.at("node_rank"), "cluster.node_rank", 0,
                                              cluster.nodes_num - 1));
    cluster.node_rank = static_cast<int>(rank);
  }
  if (!IsNull(object, "master_node_ip")) {
    FW_ASSIGN_OR_RETURN(cluster.master_node_ip,
                        ExecText(object.at("master_node_ip"), "cluster.master_node_ip"));
  }
  if (!IsNull(object, "nodes_ips")) {
    const json::value& ips = object.at("nodes_ips");
    if (!ips.is_array()) return InvalidArgument("cluster.nodes_ips must be a list of strings");
    cluster.nodes_ips.clear();
    for (const json::value& ip : ips.as_array()) {
      FW_ASSIGN_OR_RETURN(std::string text, ExecText(ip, "each of cluster.nodes_ips"));
      cluster.nodes_ips.push_back(std::move(text));
    }
  }
  if (!IsNull(object, "gpus_per_node")) {
    FW_ASSIGN_OR_RETURN(int64_t n,
                        Integer(object.at("gpus_per_node"), "cluster.gpus_per_node", 0, 1024));
    cluster.gpus_per_node = static_cast<int>(n);
  }
  return Status::Ok();
}

}  // namespace

Result<JobSpec> ParseStartJobRequest(std::string_view body, const std::vector<model::Gpu>& gpus) {
  FW_ASSIGN_OR_RETURN(json::object object, ParseObject(body));
  FW_RETURN_IF_ERROR(OnlyKeys(object,
                              {"job_id", "job_name", "run_name", "commands", "env", "working_dir",
                               "gpu_indices", "cpus", "memory_bytes", "cluster"},
                              ""));
  JobSpec spec;
  const json::value* job_id = object.if_contains("job_id");
  if (job_id == nullptr || !job_id->is_string()) return InvalidArgument("job_id must be a string");
  spec.job_id = std::string(job_id->as_string());
  if (!IsValidJobId(spec.job_id)) {
    return InvalidArgument("job_id must be 1 to 64 characters of A-Z, a-z, 0-9 and '-'");
  }
  FW_ASSIGN_OR_RETURN(spec.job_name, OptionalString(object, "job_name"));
  FW_ASSIGN_OR_RETURN(spec.run_name, OptionalString(object, "run_name"));

  const json::value* commands = object.if_contains("commands");
  if (commands == nullptr || !commands->is_array() || commands->as_array().empty()) {
    return InvalidArgument("commands must be a non-empty list of strings");
  }
  if (commands->as_array().size() > kMaxCommands) return InvalidArgument("too many commands");
  for (const json::value& command : commands->as_array()) {
    if (!command.is_string())
      return InvalidArgument("commands must be a non-empty list of strings");
    FW_ASSIGN_OR_RETURN(std::string text, ExecText(command, "each command"));
    spec.commands.push_back(std::move(text));
  }

  if (!IsNull(object, "env")) {
    const json::value& env = object.at("env");
    if (!env.is_object()) return InvalidArgument("env must be an object of strings");
    if (env.as_object().size() > kMaxEnv) return InvalidArgument("too many env variables");
    for (const auto& entry : env.as_object()) {
      std::string name(entry.key());
      if (!IsEnvName(name)) {
        return InvalidArgument("env names must match ^[A-Za-z_][A-Za-z0-9_]*$");
      }
      FW_ASSIGN_OR_RETURN(std::string value, ExecText(entry.value(), "env." + name));
      spec.env[name] = std::move(value);
    }
  }

  if (!IsNull(object, "working_dir")) {
    FW_ASSIGN_OR_RETURN(std::string dir, ExecText(object.at("working_dir"), "working_dir"));
    if (dir.empty()) return InvalidArgument("working_dir must not be empty");
    spec.working_dir = std::move(dir);
  }

  if (!IsNull(object, "gpu_indices")) {
    const json::value& indices = object.at("gpu_indices");
    if (!indices.is_array()) return InvalidArgument("gpu_indices must be a list of integers");
    std::set<int64_t> seen;
    for (const json::value& index : indices.as_array()) {
      if (!index.is_int64() && !index.is_uint64()) {
        return InvalidArgument("gpu_indices must be a list of integers");
      }
      bool exists = index.is_int64() && std::any_of(gpus.begin(), gpus.end(), [&](const auto& g) {
                      return g.index == index.as_int64();
                    });
      if (!exists) {
        return InvalidArgument("gpu_indices: this host has no GPU " +
                               (index.is_int64() ? std::to_string(index.as_int64())
                                                 : std::to_string(index.as_uint64())) +
                               " (it has " + std::to_string(gpus.size()) + ")");
      }
      if (!seen.insert(index.as_int64()).second) {
        return InvalidArgument("gpu_indices must not repeat an index");
      }
      spec.gpu_indices.push_back(static_cast<int>(index.as_int64()));
    }
  }

  if (!IsNull(object, "cpus")) {
    const json::value& cpus = object.at("cpus");
    double value = 0;
    if (cpus.is_int64()) {
      value = static_cast<double>(cpus.as_int64());
    } else if (cpus.is_double()) {
      value = cpus.as_double();
    } else {
      return InvalidArgument("cpus must be a number");
    }
    if (!(value > 0 && value <= 1e6)) return InvalidArgument("cpus must be positive");
    spec.cpus = value;
  }
  if (!IsNull(object, "memory_bytes")) {
    FW_ASSIGN_OR_RETURN(int64_t memory, Integer(object.at("memory_bytes"), "memory_bytes", 1,
                                                std::numeric_limits<int64_t>::max()));
    spec.memory_bytes = memory;
  }
  if (!IsNull(object, "cluster")) {
    const json::value& cluster = object.at("cluster");
    if (!cluster.is_object()) return InvalidArgument("cluster must be an object");
    FW_RETURN_IF_ERROR(ParseCluster(cluster.as_object(), spec));
  }
  return spec;
}

Result<std::chrono::seconds> ParseStopJobRequest(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::chrono::seconds(kDefaultGraceSeconds);
  }
  FW_ASSIGN_OR_RETURN(json::object object, ParseObject(body));
  FW_RETURN_IF_ERROR(OnlyKeys(object, {"grace_seconds"}, ""));
  if (IsNull(object, "grace_seconds")) return std::chrono::seconds(kDefaultGraceSeconds);
  FW_ASSIGN_OR_RETURN(int64_t grace,
                      Integer(object.at("grace_seconds"), "grace_seconds", 0, kMaxGraceSeconds));
  return std::chrono::seconds(grace);
}

json::object JobStateJson(const JobState& state) {
  json::object o;
  o["job_id"] = state.job_id;
  o["state"] = JobPhaseName(state.phase);
  if (state.pid > 0) {
    o["pid"] = state.pid;
  } else {
    o["pid"] = nullptr;
  }
  o["exit_code"] = state.exit_code ? json::value(*state.exit_code) : json::value(nullptr);
  o["signal"] = state.signal ? json::value(*state.signal) : json::value(nullptr);
  o["stop_requested"] = state.stop_requested;
  o["started_at"] = state.started_at;
  o["finished_at"] = state.finished_at ? json::value(*state.finished_at) : json::value(nullptr);
  o["error"] = state.error ? json::value(*state.error) : json::value(nullptr);
  return o;
}

json::object MetricsPointJson(const JobMetricsPoint& point) {
  json::array gpus;
  for (const GpuSample& gpu : point.gpus) {
    gpus.push_back(json::object{{"gpu_memory_usage_bytes", gpu.memory_used_bytes},
                                {"gpu_util_percent", gpu.util_percent}});
  }
  json::object o;
  o["timestamp_micro"] = point.timestamp_micro;
  o["cpu_usage_micro"] = point.usage.cpu_usage_micro;
  o["memory_usage_bytes"] = point.usage.memory_usage_bytes;
  o["memory_working_set_bytes"] = point.usage.memory_working_set_bytes;
  o["gpus"] = std::move(gpus);
  return o;
}

json::object InventoryJson(const HostInventory& inventory, std::string_view agent_id) {
  json::object o;
  o["agent_id"] = agent_id;
  o["hostname"] = inventory.hostname;
  o["cpus"] = inventory.cpus;
  o["memory_bytes"] = inventory.memory_bytes;
  o["cgroup"] = CgroupModeName(inventory.cgroup);
  json::array gpus;
  for (const model::Gpu& gpu : inventory.gpus) {
    gpus.push_back(json::object{{"index", gpu.index},
                                {"name", gpu.name},
                                {"uuid", gpu.uuid},
                                {"memory_bytes", gpu.memory_bytes},
                                {"vendor", gpu.vendor}});
  }
  o["gpus"] = std::move(gpus);
  return o;
}

}  // namespace fleetwatch::agent
