#pragma once

#include <boost/json/value.hpp>

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "model/entities.h"
#include "server/fleets.h"
#include "server/gpu_health.h"
#include "server/projects.h"
#include "util/status.h"

namespace fleetwatch::api {

// Entities as the REST API shows them (docs/api.md). Secrets (token hashes, agent tokens) never
// appear. Thread-safe (pure functions).
boost::json::value UserToJson(const model::User& user);
boost::json::value ProjectToJson(const server::ProjectWithMembers& project);
// Host problems (FleetController::HostProblems) show as each instance's "error" (null when none).
using HostProblems = std::map<std::string, std::string>;
// GPU health (GpuHealthMonitor::AllHealth) shows as each instance's "health": {"status",
// "reason", "last_event", "last_event_at", "gpus": [{"index", "status", "reason"}]}, null when
// unknown (no readings yet).
using HostHealth = std::map<std::string, server::InstanceHealth>;
boost::json::value InstanceToJson(const model::Instance& instance,
                                  const HostProblems& problems = {}, const HostHealth& health = {});
boost::json::value FleetToJson(const server::FleetWithInstances& fleet,
                               const HostProblems& problems = {}, const HostHealth& health = {});
boost::json::value HealthToJson(const server::InstanceHealth& health);
boost::json::value JobToJson(const model::Job& job);
// Without `with_configuration` the "configuration" key is left out (run lists, unless asked:
// configurations are up to 1 MiB each); "resources", the configuration's requested resources, is
// always there.
boost::json::value RunToJson(const model::Run& run, bool with_configuration = true);

// Parses a request body that must be a JSON object whose keys are all in `allowed`, with the one
// strict reader (model/json_text.h): a duplicate key is refused, never "last one wins".
// InvalidArgument with a clear message otherwise.
Result<boost::json::object> ParseJsonObject(std::string_view body,
                                            std::initializer_list<std::string_view> allowed);

// Reads a string member. InvalidArgument when absent (and required) or not a string.
Result<std::string> GetString(const boost::json::object& object, std::string_view key);

}  // namespace fleetwatch::api
