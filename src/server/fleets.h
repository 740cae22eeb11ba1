#pragma once

#include <string_view>
#include <vector>

#include "model/entities.h"
#include "model/fleet_spec.h"
#include "model/run_spec.h"
#include "server/auth.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

struct FleetWithInstances {
  model::Fleet fleet;
  std::vector<model::Instance> instances;
};

// Fleets of hosts running `fleetwatch agent`, and their instances. Thread-safe.
class FleetService {
 public:
  FleetService(store::Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Parses and validates the fleet configuration and creates the fleet with one `pending`
  // instance per host (backend `remote`, named "{fleet}-{n}"). Project admins and managers only.
  // AlreadyExists when the project has a fleet of that name, or when a host (compared by
  // HostKey) is already in a fleet of any project or is the server's local agent: a host belongs
  // to one fleet. The message names the other fleet and project only to a caller who may see
  // that project.
  Result<FleetWithInstances> Apply(const ProjectAccess& access, std::string_view text,
                                   model::ConfigFormat format) FW_EXCLUDES(create_mu_);
  Result<std::vector<FleetWithInstances>> List(const ProjectAccess& access);
  Result<FleetWithInstances> Get(const ProjectAccess& access, std::string_view name);
  // Project admins and managers only; FailedPrecondition while jobs run on the fleet.
  Status Delete(const ProjectAccess& access, std::string_view name);
  Result<std::vector<model::Instance>> ListInstances(const ProjectAccess& access);

 private:
  Status CheckHostsAreFree(const ProjectAccess& access, const model::FleetConfiguration& config)
      FW_REQUIRES(create_mu_);

  store::Store& store_;
  const Clock& clock_;
  Mutex create_mu_;  // serializes Apply's checks with its insert
};

}  // namespace fleetwatch::server
