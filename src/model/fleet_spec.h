#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/run_spec.h"
#include "util/status.h"

namespace fleetwatch::model {

// A fleet of hosts that each run `fleetwatch agent` (DESIGN.md "Fleet configuration"):
//   type: fleet
//   name: my-fleet
//   ssh_config:
//     port: 10998          # optional defaults for every host
//     token: secret
//     price: 2.5
//     hosts:
//       - hostname: 10.0.0.1
//         port: 10998
//         token: secret
//         price: 2.5      # USD/hour
//       - 10.0.0.2         # a bare hostname takes the defaults

struct FleetHost {
  std::string hostname;  // DNS name or IP literal
  int port = 10998;
  std::string token;  // the agent's bearer token
  std::optional<double> price;
};

struct FleetConfiguration {
  std::string name;
  std::vector<FleetHost> hosts;  // at least one, no duplicate hostname:port
};

// Parses and validates; same error policy as ParseRunConfiguration. Thread-safe.
Result<FleetConfiguration> ParseFleetConfiguration(std::string_view text, ConfigFormat format);

// Normalized JSON with tokens left out (it is shown to users).
std::string ToJson(const FleetConfiguration& config);

}  // namespace fleetwatch::model
