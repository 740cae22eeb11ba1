#include "cli/fleet_views.h"

#include <boost/json.hpp>
#include <vector>

#include "cli/display_format.h"
#include "cli/json_fields.h"

namespace fleetwatch::cli {
namespace {

std::string OrDash(std::string text) { return text.empty() ? "-" : text; }

std::string HostText(const boost::json::value& instance) {
  std::string host = StringField(instance, "hostname");
  std::optional<int64_t> port = IntField(instance, "port");
  if (host.empty()) return "-";
  return port ? host + ":" + std::to_string(*port) : host;
}

// The instance's status, or "unreachable", followed by why the server cannot use it (its last
// poll's error: a refused certificate, a rejected token, another fleet's agent id...).
std::string InstanceStatusText(const boost::json::value& instance) {
  const boost::json::value* unreachable = Field(instance, "unreachable");
  std::string text = unreachable != nullptr && unreachable->is_bool() && unreachable->as_bool()
                         ? "unreachable"
                         : OrDash(StringField(instance, "status"));
  std::string error = StringField(instance, "error");
  if (!error.empty()) text += ": " + error;
  return text;
}

// The instance's GPU health: "-" while unknown, else its status and, unless healthy, why
// ("unhealthy: GPU 1: XID 79 (GPU has fallen off the bus; action reboot)"). Agent text in it is
// made safe by the table.
std::string InstanceHealthText(const boost::json::value& instance) {
  const boost::json::value* health = Field(instance, "health");
  if (health == nullptr || !health->is_object()) return "-";
  std::string text = OrDash(StringField(*health, "status"));
  std::string reason = StringField(*health, "reason");
  if (!reason.empty()) text += ": " + reason;
  return text;
}

}  // namespace

std::string FormatInstanceGpus(const boost::json::value& instance) {
  const boost::json::value* resources = Field(instance, "resources");
  if (resources == nullptr) return "-";
  struct Group {
    std::string name;
    std::optional<int64_t> memory;
    int count;
  };
  std::vector<Group> groups;
  for (const boost::json::value& gpu : ArrayField(*resources, "gpus")) {
    std::string name = OrDash(StringField(gpu, "name"));
    std::optional<int64_t> memory = IntField(gpu, "memory_bytes");
    bool found = false;
    for (Group& g : groups) {
      if (g.name == name && g.memory == memory) {
        ++g.count;
        found = true;
        break;
      }
    }
    if (!found) groups.push_back({name, memory, 1});
  }
  if (groups.empty()) return "-";
  std::string text;
  for (const Group& g : groups) {
    if (!text.empty()) text += ", ";
    text += std::to_string(g.count) + "x" + g.name;
    if (g.memory) text += " (" + FormatBytes(*g.memory) + ")";
  }
  return text;
}

Table FleetsTable(const boost::json::array& fleets, TimeMicros now) {
  Table table;
  table.headers = {"fleet", "instance", "backend", "host",   "gpu",
                   "price", "status",   "health",  "created"};
  for (const boost::json::value& fleet : fleets) {
    std::string fleet_name = StringField(fleet, "name");
    const boost::json::array& instances = ArrayField(fleet, "instances");
    if (instances.empty()) {
      table.rows.push_back({fleet_name, "-", "-", "-", "-", "-",
                            OrDash(StringField(fleet, "status")), "-",
                            FormatAge(StringField(fleet, "created_at"), now)});
      continue;
    }
    for (const boost::json::value& instance : instances) {
      table.rows.push_back({
          fleet_name,
          OrDash(StringField(instance, "name")),
          OrDash(StringField(instance, "backend")),
          HostText(instance),
          FormatInstanceGpus(instance),
          FormatPrice(NumberField(instance, "price")),
          InstanceStatusText(instance),
          InstanceHealthText(instance),
          FormatAge(StringField(instance, "created_at"), now),
      });
    }
  }
  return table;
}

}  // namespace fleetwatch::cli
