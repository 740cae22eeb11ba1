// ParseRunConfiguration on arbitrary text, as YAML or JSON (the first byte picks): users submit
// these through the API and the CLI.
//
// Oracle: no crash or sanitizer report; an error is InvalidArgument whose message holds no
// control bytes (messages never echo raw input); a configuration that parses is normalized:
// its JSON form parses back to the same JSON form.

#include <string>

#include "fuzz_support.h"
#include "model/run_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetwatch;
  if (size == 0) return 0;
  const model::ConfigFormat format =
      data[0] % 2 == 0 ? model::ConfigFormat::kYaml : model::ConfigFormat::kJson;
  Result<model::RunConfiguration> config =
      model::ParseRunConfiguration(fuzz::AsText(data + 1, size - 1), format);
  if (!config.ok()) {
    FW_CHECK(config.status().code() == StatusCode::kInvalidArgument, "not InvalidArgument");
    FW_CHECK(fuzz::HasNoControlBytes(config.status().message()), "control bytes in the message");
    return 0;
  }
  const std::string json = model::ToJson(*config);
  Result<model::RunConfiguration> again =
      model::ParseRunConfiguration(json, model::ConfigFormat::kJson);
  if (!again.ok()) {
    fprintf(stderr, "re-parse of %s: %s\n", json.c_str(), again.status().message().c_str());
    FW_CHECK(false, "the normalized configuration does not parse");
  }
  FW_CHECK(model::ToJson(*again) == json, "normalizing twice changes the configuration");
  return 0;
}
