#include "api/json_mapping.h"

#include <boost/json.hpp>

#include <limits>
#include <string>
#include <utility>

#include "model/json_text.h"
#include "server/status_message.h"
#include "util/time_format.h"

namespace fleetwatch::api {
namespace json = boost::json;
namespace {

json::value OptionalTime(const std::optional<TimeMicros>& t) {
  if (!t) return nullptr;
  return json::value(FormatTimestamp(*t));
}

// A stored configuration is JSON we wrote ourselves; parse failure would be a bug. Read with the
// strict reader so that its numbers come back as the same doubles (bounds: what was stored).
json::value StoredJson(const std::string& text) {
  Result<json::value> v = model::ParseStrictJson(
      text, {.max_depth = 1024, .max_nodes = std::numeric_limits<std::size_t>::max()});
  if (!v.ok()) return json::object();
  return std::move(*v);
}

}  // namespace

json::value UserToJson(const model::User& user) {
  return json::object{{"name", user.name},
                      {"global_role", model::ToString(user.global_role)},
                      {"created_at", FormatTimestamp(user.created_at)}};
}

json::value ProjectToJson(const server::ProjectWithMembers& project) {
  json::array members;
  for (const auto& m : project.members) {
    members.push_back(
        json::object{{"user_name", m.user_name}, {"project_role", model::ToString(m.role)}});
  }
  return json::object{{"name", project.project.name},
                      {"owner", project.owner_name},
                      {"created_at", FormatTimestamp(project.project.created_at)},
                      {"members", std::move(members)}};
}

json::value HealthToJson(const server::InstanceHealth& health) {
  auto text_or_null = [](const std::string& text) -> json::value {
    if (text.empty()) return nullptr;
    return json::value(text);
  };
  json::array gpus;
  for (const server::GpuHealth& g : health.gpus) {
    gpus.push_back(json::object{{"index", g.index},
                                {"status", server::ToString(g.status)},
                                {"reason", text_or_null(g.reason)}});
  }
  json::value last_event_at = nullptr;
  if (health.last_event_at) last_event_at = FormatTimestamp(*health.last_event_at);
  return json::object{{"status", server::ToString(health.status)},
                      {"reason", text_or_null(health.reason)},
                      {"last_event", text_or_null(health.last_event)},
                      {"last_event_at", last_event_at},
                      {"gpus", std::move(gpus)}};
}

json::value InstanceToJson(const model::Instance& instance, const HostProblems& problems,
                           const HostHealth& health) {
  json::array gpus;
  for (const auto& g : instance.resources.gpus) {
    gpus.push_back(json::object{{"index", g.index},
                                {"name", g.name},
                                {"uuid", g.uuid},
                                {"memory_bytes", g.memory_bytes},
                                {"vendor", g.vendor}});
  }
  json::value price = nullptr;
  if (instance.price) price = *instance.price;
  json::value last_seen = nullptr;
  if (instance.last_seen_at) last_seen = FormatTimestamp(*instance.last_seen_at);
  json::value error = nullptr;
  if (auto it = problems.find(instance.id); it != problems.end()) error = it->second;
  json::value fingerprint = nullptr;
  if (!instance.tls_fingerprint.empty()) fingerprint = instance.tls_fingerprint;
  json::value gpu_health = nullptr;
  if (auto it = health.find(instance.id); it != health.end()) gpu_health = HealthToJson(it->second);
  return json::object{{"id", instance.id},
                      {"name", instance.name},
                      {"fleet_name", instance.fleet_name},
                      {"project_name", instance.project_name},
                      {"status", model::ToString(instance.status)},
                      {"backend", instance.backend},
                      {"hostname", instance.hostname},
                      {"port", instance.agent_port},
                      {"price", price},
                      {"resources", json::object{{"cpus", instance.resources.cpus},
                                                 {"memory_bytes", instance.resources.memory_bytes},
                                                 {"gpus", std::move(gpus)}}},
                      {"created_at", FormatTimestamp(instance.created_at)},
                      {"unreachable", instance.unreachable},
                      {"last_seen_at", last_seen},
                      {"error", error},
                      {"tls", instance.tls},
                      {"tls_fingerprint", fingerprint},
                      {"health", std::move(gpu_health)}};
}

json::value FleetToJson(const server::FleetWithInstances& fleet, const HostProblems& problems,
                        const HostHealth& health) {
  json::array instances;
  for (const auto& i : fleet.instances) instances.push_back(InstanceToJson(i, problems, health));
  return json::object{{"id", fleet.fleet.id},
                      {"name", fleet.fleet.name},
                      {"project_name", fleet.fleet.project_name},
                      {"status", model::ToString(fleet.fleet.status)},
                      {"created_at", FormatTimestamp(fleet.fleet.created_at)},
                      {"configuration", StoredJson(fleet.fleet.configuration_json)},
                      {"instances", std::move(instances)}};
}

json::value JobToJson(const model::Job& job) {
  json::value reason = nullptr, exit_code = nullptr, instance = nullptr;
  if (job.termination_reason) reason = json::string(model::ToString(*job.termination_reason));
  if (job.exit_code) exit_code = *job.exit_code;
  if (job.instance_name) instance = json::string(*job.instance_name);
  return json::object{{"id", job.id},
                      {"job_name", job.job_name},
                      {"job_num", job.job_num},
                      {"replica_num", job.replica_num},
                      {"status", model::ToString(job.status)},
                      {"status_message", server::JobStatusMessage(job)},
                      {"termination_reason", reason},
                      {"exit_code", exit_code},
                      {"instance_name", instance},
                      {"submitted_at", FormatTimestamp(job.submitted_at)},
                      {"finished_at", OptionalTime(job.finished_at)}};
}

json::value RunToJson(const model::Run& run, bool with_configuration) {
  json::array jobs;
  for (const auto& j : run.jobs) jobs.push_back(JobToJson(j));
  json::value reason = nullptr;
  if (run.termination_reason) reason = json::string(model::ToString(*run.termination_reason));
  json::object out{{"id", run.id},
                   {"run_name", run.run_name},
                   {"project_name", run.project_name},
                   {"user_name", run.user_name},
                   {"run_type", model::ToString(run.type)},
                   {"status", model::ToString(run.status)},
                   {"status_message", server::RunStatusMessage(run)},
                   {"termination_reason", reason},
                   {"submitted_at", FormatTimestamp(run.submitted_at)},
                   {"finished_at", OptionalTime(run.finished_at)},
                   {"cost", run.cost}};
  // "resources" (small) is shown everywhere so that lists without "configuration" still say
  // what a run asked for.
  json::value configuration = StoredJson(run.configuration_json);
  const json::value* resources =
      configuration.is_object() ? configuration.get_object().if_contains("resources") : nullptr;
  out.emplace("resources", resources != nullptr ? *resources : json::value(nullptr));
  if (with_configuration) out.emplace("configuration", std::move(configuration));
  out.emplace("jobs", std::move(jobs));
  return out;
}

Result<json::object> ParseJsonObject(std::string_view body,
                                     std::initializer_list<std::string_view> allowed) {
  Result<json::value> parsed = model::ParseStrictJson(body, {32, 10'000, "the JSON body"});
  if (!parsed.ok()) return parsed.status();
  json::value& v = *parsed;
  if (!v.is_object()) return InvalidArgument("the JSON body must be an object");
  for (const auto& [key, value] : v.as_object()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) {
      // Echo the key only when it is short and plain; it is untrusted text.
      std::string_view k = key;
      std::string shown;
      for (char c : k.size() <= 64 ? k : std::string_view()) {
        bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
        if (!safe) {
          shown.clear();
          break;
        }
        shown += c;
      }
      return InvalidArgument(shown.empty() ? "unknown key in the JSON body"
                                           : "unknown key '" + shown + "' in the JSON body");
    }
  }
  return std::move(v.as_object());
}

Result<std::string> GetString(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  if (v == nullptr) return InvalidArgument("missing '" + std::string(key) + "'");
  if (!v->is_string()) return InvalidArgument("'" + std::string(key) + "' must be a string");
  return std::string(v->as_string());
}

}  // namespace fleetwatch::api
