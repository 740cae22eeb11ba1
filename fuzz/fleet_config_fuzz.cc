// ParseFleetConfiguration on arbitrary text, as YAML or JSON (the first byte picks).
//
// Oracle: no crash or sanitizer report; an error is InvalidArgument whose message holds no
// control bytes; a fleet that parses survives a round trip: its normalized JSON (which leaves
// tokens out), written back as a fleet configuration with each host's token, parses to the same
// hosts, tokens included.

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <string>

#include "fuzz_support.h"
#include "model/fleet_spec.h"
#include "model/json_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetwatch;
  if (size == 0) return 0;
  const model::ConfigFormat format =
      data[0] % 2 == 0 ? model::ConfigFormat::kYaml : model::ConfigFormat::kJson;
  Result<model::FleetConfiguration> fleet =
      model::ParseFleetConfiguration(fuzz::AsText(data + 1, size - 1), format);
  if (!fleet.ok()) {
    FW_CHECK(fleet.status().code() == StatusCode::kInvalidArgument, "not InvalidArgument");
    FW_CHECK(fuzz::HasNoControlBytes(fleet.status().message()), "control bytes in the message");
    return 0;
  }
  FW_CHECK(!fleet->hosts.empty(), "a fleet without hosts");
  const std::string json = model::ToJson(*fleet);
  Result<boost::json::value> parsed = model::ParseStrictJson(json);
  FW_CHECK(parsed.ok() && parsed->is_object(), "the normalized fleet is not a JSON object");
  boost::json::value& tree = *parsed;
  boost::json::array hosts = tree.as_object()["hosts"].as_array();
  FW_CHECK(hosts.size() == fleet->hosts.size(), "another host count in the JSON");
  for (size_t i = 0; i < hosts.size(); ++i) hosts[i].as_object()["token"] = fleet->hosts[i].token;
  boost::json::object config;
  config["type"] = "fleet";
  config["name"] = tree.as_object()["name"];
  config["ssh_config"] = boost::json::object{{"hosts", hosts}};
  Result<model::FleetConfiguration> again =
      model::ParseFleetConfiguration(boost::json::serialize(config), model::ConfigFormat::kJson);
  if (!again.ok()) {
    fprintf(stderr, "re-parse of %s: %s\n", json.c_str(), again.status().message().c_str());
    FW_CHECK(false, "the normalized fleet does not parse");
  }
  FW_CHECK(model::ToJson(*again) == json, "normalizing twice changes the fleet");
  for (size_t i = 0; i < hosts.size(); ++i) {
    FW_CHECK(again->hosts[i].token == fleet->hosts[i].token, "another token");
  }
  return 0;
}
