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
//   carbon_intensity: 400  # optional: the grid's gCO2e per kWh where the hosts run (an estimate
//                          # the operator supplies; default: the server's
//                          # FLEETWATCH_CARBON_INTENSITY)
//   ssh_config:
//     port: 10998          # optional defaults for every host
//     token: secret
//     price: 2.5
//     ca_cert: |           # optional default: agents' certificates signed by this CA
//       -----BEGIN CERTIFICATE-----
//       ...
//     hosts:
//       - hostname: 10.0.0.1
//         port: 10998
//         token: secret
//         price: 2.5      # USD/hour
//         fingerprint: sha256:9f86...  # the agent's certificate, pinned like an SSH host key
//       - hostname: 10.0.0.2  # takes the defaults (here: the CA)
//       - hostname: 10.0.0.3
//         tls: false       # plain HTTP: must be said explicitly
//
// Every host must say how it is reached: `fingerprint` (HTTPS, the agent's certificate must have
// that SHA-256), `ca_cert` (HTTPS, verified against that CA and the hostname), `tls: true` alone
// (HTTPS, the system CA store) or `tls: false` (plain HTTP). `tls` and `ca_cert` may be given as
// ssh_config defaults; a host's `fingerprint` takes precedence over a default `ca_cert`.

struct FleetHost {
  std::string hostname;  // DNS name or IP literal
  int port = 10998;
  std::string token;  // the agent's bearer token
  std::optional<double> price;
  bool tls = true;          // HTTPS to the agent
  std::string ca_cert;      // PEM certificates (with tls), or empty
  std::string fingerprint;  // "sha256:<64 lowercase hex>" (with tls), or empty
};

struct FleetConfiguration {
  std::string name;
  std::vector<FleetHost> hosts;  // at least one, no duplicate hostname:port
  // Grams of CO2e per kWh of the grid that powers the hosts, 0..10000; none: the server's default.
  std::optional<double> carbon_intensity;
};

// The carbon intensity (gCO2e/kWh) of a fleet stored as ToJson wrote it, or nullopt when it has
// none or the JSON does not parse. Thread-safe.
std::optional<double> CarbonIntensityOf(std::string_view configuration_json);

// Parses and validates; same error policy as ParseRunConfiguration. Thread-safe.
Result<FleetConfiguration> ParseFleetConfiguration(std::string_view text, ConfigFormat format);

// Normalized JSON with tokens left out (it is shown to users); `tls` always, the fingerprint
// and CA certificates when given.
std::string ToJson(const FleetConfiguration& config);

}  // namespace fleetwatch::model
