#include "server/fleets.h"

#include <map>
#include <string>

#include "model/fleet_spec.h"
#include "model/names.h"
#include "server/host_keys.h"
#include "util/ids.h"

namespace fleetwatch::server {
namespace {

Status FleetNotFound(std::string_view name) {
  return NotFound("fleet '" + std::string(model::IsValidName(name) ? name : "?") + "' not found");
}

bool IsLocalAgent(const model::Instance& instance) { return instance.backend == "local"; }

}  // namespace

Status FleetService::CheckHostsAreFree(const ProjectAccess& access,
                                       const model::FleetConfiguration& config) {
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> registered, store_.ListInstances(""));
  for (const model::FleetHost& host : config.hosts) {
    const std::string key = HostKey(host.hostname, host.port);
    for (const model::Instance& other : registered) {
      if (HostKey(other.hostname, other.agent_port) != key) continue;
      const std::string what = "host " + host.hostname + ":" + std::to_string(host.port);
      if (IsLocalAgent(other)) {
        return AlreadyExists(what + " is the server's own local agent (fleet '" + other.fleet_name +
                             "'); a host belongs to one fleet");
      }
      bool visible = other.project_id == access.project.id ||
                     access.user.global_role == model::GlobalRole::kAdmin;
      if (!visible && !access.user.id.empty()) {
        FW_ASSIGN_OR_RETURN(std::optional<model::ProjectRole> role,
                            store_.GetMemberRole(other.project_id, access.user.id));
        visible = role.has_value();
      }
      if (!visible) {
        return AlreadyExists(what +
                             " is already registered in another fleet; a host belongs "
                             "to one fleet");
      }
      return AlreadyExists(what + " is already registered in fleet '" + other.fleet_name +
                           "' of project '" + other.project_name +
                           "'; a host belongs to one fleet");
    }
  }
  return Status::Ok();
}

Result<FleetWithInstances> FleetService::Apply(const ProjectAccess& access, std::string_view text,
                                               model::ConfigFormat format) {
  if (!access.CanManage())
    return PermissionDenied("only project admins and managers can add fleets");
  FW_ASSIGN_OR_RETURN(model::FleetConfiguration config,
                      model::ParseFleetConfiguration(text, format));
  TimeMicros now = clock_.Now();
  FleetWithInstances out;
  out.fleet = {NewId(),     access.project.id,           access.project.name,
               config.name, model::FleetStatus::kActive, model::ToJson(config),
               now};
  for (size_t i = 0; i < config.hosts.size(); ++i) {
    const model::FleetHost& host = config.hosts[i];
    model::Instance instance;
    instance.id = NewId();
    instance.project_id = access.project.id;
    instance.project_name = access.project.name;
    instance.fleet_id = out.fleet.id;
    instance.fleet_name = config.name;
    instance.instance_num = static_cast<int>(i);
    instance.name = config.name + "-" + std::to_string(i);
    instance.status = model::InstanceStatus::kPending;
    instance.backend = "remote";
    instance.hostname = host.hostname;
    instance.agent_port = host.port;
    instance.agent_token = host.token;
    instance.price = host.price;
    instance.tls = host.tls;
    instance.tls_ca_cert = host.ca_cert;
    instance.tls_fingerprint = host.fingerprint;
    instance.created_at = now;
    out.instances.push_back(std::move(instance));
  }
  const Status name_taken = AlreadyExists(
      "fleet '" + config.name + "' already exists in project '" + access.project.name + "'");
  // The checks and the insert under one lock: two fleets naming one host at once cannot both
  // pass. (Several replicas would need the store to enforce it.)
  MutexLock lock(create_mu_);
  Result<model::Fleet> existing = store_.GetFleet(access.project.id, config.name);
  if (existing.ok()) return name_taken;
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();
  FW_RETURN_IF_ERROR(CheckHostsAreFree(access, config));
  Status s = store_.CreateFleet(out.fleet, out.instances);
  if (s.code() == StatusCode::kAlreadyExists) return name_taken;
  FW_RETURN_IF_ERROR(s);
  return out;
}

Result<std::vector<FleetWithInstances>> FleetService::List(const ProjectAccess& access) {
  FW_ASSIGN_OR_RETURN(std::vector<model::Fleet> fleets, store_.ListFleets(access.project.id));
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances,
                      store_.ListInstances(access.project.id));
  std::map<std::string, std::vector<model::Instance>> by_fleet;
  for (auto& i : instances) by_fleet[i.fleet_id].push_back(std::move(i));
  std::vector<FleetWithInstances> out;
  for (auto& f : fleets) {
    std::vector<model::Instance> mine = std::move(by_fleet[f.id]);
    out.push_back({std::move(f), std::move(mine)});
  }
  return out;
}

Result<FleetWithInstances> FleetService::Get(const ProjectAccess& access, std::string_view name) {
  if (!model::IsValidName(name)) return FleetNotFound(name);
  Result<model::Fleet> fleet = store_.GetFleet(access.project.id, name);
  if (!fleet.ok() && fleet.status().code() == StatusCode::kNotFound) return FleetNotFound(name);
  FW_RETURN_IF_ERROR(fleet.status());
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances,
                      store_.ListInstances(access.project.id));
  FleetWithInstances out{std::move(fleet).value(), {}};
  for (auto& i : instances) {
    if (i.fleet_id == out.fleet.id) out.instances.push_back(std::move(i));
  }
  return out;
}

Status FleetService::Delete(const ProjectAccess& access, std::string_view name) {
  if (!access.CanManage()) {
    return PermissionDenied("only project admins and managers can delete fleets");
  }
  if (!model::IsValidName(name)) return FleetNotFound(name);
  Status s = store_.DeleteFleet(access.project.id, name);
  if (s.code() == StatusCode::kNotFound) return FleetNotFound(name);
  if (s.code() == StatusCode::kFailedPrecondition) {
    return FailedPrecondition("fleet '" + std::string(name) +
                              "' still has unfinished jobs; stop their runs first");
  }
  return s;
}

Result<std::vector<model::Instance>> FleetService::ListInstances(const ProjectAccess& access) {
  return store_.ListInstances(access.project.id);
}

}  // namespace fleetwatch::server
