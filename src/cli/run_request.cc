#include "cli/run_request.h"

#include <boost/json.hpp>
#include <charconv>
#include <cstdint>

#include "cli/shell_quote.h"

namespace fleetwatch::cli {
namespace {

// A number when `text` is plain decimal digits that fit an int64; the text otherwise.
boost::json::value ScalarValue(const std::string& text) {
  int64_t number = 0;
  bool digits_only = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (digits_only) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec == std::errc() && ptr == text.data() + text.size()) return number;
  }
  return boost::json::string(text);
}

}  // namespace

Result<std::string> BuildRunConfigurationJson(const RunFlags& flags) {
  if (flags.command.empty()) {
    return InvalidArgument(
        "no command to run: put it after \"--\", e.g. fleetwatch run -- python train.py");
  }
  boost::json::object config;
  config["type"] = "task";
  if (!flags.name.empty()) config["name"] = flags.name;
  config["commands"] = boost::json::array{boost::json::string(ShellJoin(flags.command))};

  boost::json::object resources;
  if (!flags.cpu.empty()) resources["cpu"] = ScalarValue(flags.cpu);
  if (!flags.memory.empty()) resources["memory"] = ScalarValue(flags.memory);
  if (!flags.gpu.empty()) resources["gpu"] = ScalarValue(flags.gpu);
  if (!resources.empty()) config["resources"] = std::move(resources);

  if (!flags.nodes.empty()) config["nodes"] = ScalarValue(flags.nodes);

  if (!flags.env.empty()) {
    boost::json::object env;
    for (const std::string& entry : flags.env) {
      size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0) {
        return InvalidArgument("--env takes KEY=VALUE (got an entry " +
                               std::string(eq == 0 ? "with an empty KEY" : "without '='") + ")");
      }
      env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    config["env"] = std::move(env);
  }
  if (!flags.max_duration.empty()) config["max_duration"] = ScalarValue(flags.max_duration);
  return boost::json::serialize(config);
}

}  // namespace fleetwatch::cli
