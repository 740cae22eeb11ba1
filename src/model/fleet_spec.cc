#include "model/fleet_spec.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "model/config_fields.h"
#include "model/config_tree.h"
#include "model/json_writer.h"
#include "model/names.h"

namespace fleetwatch::model {
namespace {

using config::Error;
using config::Find;
using config::GotSuffix;
using config::IndexPath;
using config::KeyPath;
using config::UnsupportedKey;

constexpr int kDefaultAgentPort = 10998;
constexpr std::size_t kMaxHosts = 1000;
constexpr std::size_t kMaxTokenBytes = 256;
constexpr double kMaxPrice = 1'000'000;  // USD per hour

constexpr std::string_view kNotOverSsh =
    "is not supported: fleetwatch talks to the host's agent, not over SSH";
constexpr std::string_view kNotHostFleet =
    "is not supported: a fleet is the hosts listed under ssh_config.hosts, each running "
    "`fleetwatch agent`";

constexpr UnsupportedKey kUnsupportedFleetKeys[] = {
    {"nodes", kNotHostFleet},
    {"placement", kNotHostFleet},
    {"backends", kNotHostFleet},
    {"regions", kNotHostFleet},
    {"availability_zones", kNotHostFleet},
    {"instance_types", kNotHostFleet},
    {"resources", kNotHostFleet},
    {"spot_policy", kNotHostFleet},
    {"retry", kNotHostFleet},
    {"max_price", kNotHostFleet},
    {"idle_duration", kNotHostFleet},
    {"termination_policy", kNotHostFleet},
    {"termination_idle_time", kNotHostFleet},
    {"reservation", kNotHostFleet},
    {"blocks", kNotHostFleet},
    {"env", kNotHostFleet},
    {"tags", kNotHostFleet},
};

constexpr UnsupportedKey kUnsupportedSshKeys[] = {
    {"user", kNotOverSsh},
    {"identity_file", kNotOverSsh},
    {"ssh_key", kNotOverSsh},
    {"proxy_jump", kNotOverSsh},
};

constexpr UnsupportedKey kUnsupportedHostKeys[] = {
    {"user", kNotOverSsh},
    {"identity_file", kNotOverSsh},
    {"ssh_key", kNotOverSsh},
    {"proxy_jump", kNotOverSsh},
    {"internal_ip", "is not supported"},
    {"blocks", "is not supported"},
};

bool IsAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 1123 host name: dot-separated labels of [A-Za-z0-9-], 1..63 each, no leading or trailing
// '-', at most 253 characters in all.
bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

// The canonical form of a hostname (lowercase DNS name, IPv4 dotted quad, IPv6 as inet_ntop
// writes it, without brackets), or nullopt when it is none of those.
std::optional<std::string> CanonicalHostname(std::string_view text) {
  if (text.empty() || text.size() > 253) return std::nullopt;
  bool bracketed = text.front() == '[' && text.back() == ']' && text.size() > 2;
  std::string_view inner = bracketed ? text.substr(1, text.size() - 2) : text;
  for (char c : inner) {
    if (!IsAlnum(c) && c != '-' && c != '.' && c != ':') return std::nullopt;
  }
  std::string buffer(inner);
  char out[INET6_ADDRSTRLEN] = {};
  if (bracketed || inner.find(':') != std::string_view::npos) {
    in6_addr address{};
    if (inet_pton(AF_INET6, buffer.c_str(), &address) != 1) return std::nullopt;
    if (inet_ntop(AF_INET6, &address, out, sizeof out) == nullptr) return std::nullopt;
    return std::string(out);
  }
  if (inner.find_first_not_of("0123456789.") == std::string_view::npos) {
    in_addr address{};
    if (inet_pton(AF_INET, buffer.c_str(), &address) != 1) return std::nullopt;
    if (inet_ntop(AF_INET, &address, out, sizeof out) == nullptr) return std::nullopt;
    return std::string(out);
  }
  if (!IsDnsName(inner)) return std::nullopt;
  for (char& c : buffer) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return buffer;
}

Result<std::string> ReadHostname(const boost::json::value& value, const std::string& path) {
  FW_ASSIGN_OR_RETURN(std::string text, config::ReadString(value, path));
  std::optional<std::string> canonical = CanonicalHostname(text);
  if (!canonical) {
    return Error(path, "must be a DNS name or an IPv4 or IPv6 address" + GotSuffix(text));
  }
  return *canonical;
}

Result<std::string> ReadToken(const boost::json::value& value, const std::string& path) {
  FW_ASSIGN_OR_RETURN(std::string token, config::ReadString(value, path));
  bool ok = !token.empty() && token.size() <= kMaxTokenBytes;
  for (char c : token) ok = ok && c > 0x20 && c < 0x7f;
  if (!ok) {
    return Error(path, "must be 1 to " + std::to_string(kMaxTokenBytes) +
                           " printable ASCII characters without spaces");
  }
  return token;
}

Result<int> ReadPort(const boost::json::value& value, const std::string& path) {
  FW_ASSIGN_OR_RETURN(int64_t port, config::ReadInteger(value, path, 1, 65535));
  return static_cast<int>(port);
}

Result<double> ReadPrice(const boost::json::value& value, const std::string& path) {
  Result<double> price = config::ReadNumber(value, path, 0, kMaxPrice);
  if (!price.ok() && value.is_number()) {
    return Error(path, "must be between 0 and 1000000 (USD per hour)");
  }
  return price;
}

// Host defaults from ssh_config.
struct HostDefaults {
  int port = kDefaultAgentPort;
  std::optional<std::string> token;
  std::optional<double> price;
};

Result<FleetHost> ReadHost(const boost::json::value& value, const std::string& path,
                           const HostDefaults& defaults) {
  FleetHost host;
  host.port = defaults.port;
  host.price = defaults.price;
  std::optional<std::string> token = defaults.token;
  if (value.is_string()) {
    FW_ASSIGN_OR_RETURN(host.hostname, ReadHostname(value, path));
  } else if (value.is_object()) {
    const boost::json::object& object = value.get_object();
    FW_RETURN_IF_ERROR(config::CheckKeys(object, path, {"hostname", "port", "token", "price"},
                                         kUnsupportedHostKeys));
    const boost::json::value* hostname = Find(object, "hostname");
    if (hostname == nullptr) return Error(KeyPath(path, "hostname"), "is required");
    FW_ASSIGN_OR_RETURN(host.hostname, ReadHostname(*hostname, KeyPath(path, "hostname")));
    if (const boost::json::value* port = Find(object, "port")) {
      FW_ASSIGN_OR_RETURN(host.port, ReadPort(*port, KeyPath(path, "port")));
    }
    if (const boost::json::value* t = Find(object, "token")) {
      FW_ASSIGN_OR_RETURN(token, ReadToken(*t, KeyPath(path, "token")));
    }
    if (const boost::json::value* price = Find(object, "price")) {
      FW_ASSIGN_OR_RETURN(host.price, ReadPrice(*price, KeyPath(path, "price")));
    }
  } else {
    return Error(path, "must be a hostname or a mapping {hostname, port, token, price} (got " +
                           std::string(config::KindName(value)) + ")");
  }
  if (!token) {
    return Error(KeyPath(path, "token"),
                 "is required (the agent's token; set it here or as ssh_config.token)");
  }
  host.token = std::move(*token);
  return host;
}

Result<FleetConfiguration> FleetFromTree(const boost::json::object& root) {
  FW_RETURN_IF_ERROR(
      config::CheckKeys(root, "", {"type", "name", "ssh_config"}, kUnsupportedFleetKeys));
  FleetConfiguration fleet;

  const boost::json::value* type = Find(root, "type");
  if (type == nullptr) return Error("type", "is required (type: fleet)");
  FW_ASSIGN_OR_RETURN(std::string type_text, config::ReadString(*type, "type"));
  if (type_text != "fleet") return Error("type", "must be fleet" + GotSuffix(type_text));

  const boost::json::value* name = Find(root, "name");
  if (name == nullptr) return Error("name", "is required");
  FW_ASSIGN_OR_RETURN(fleet.name, config::ReadString(*name, "name"));
  Status valid = ValidateName("fleet name", fleet.name);
  if (!valid.ok()) return Error("name", valid.message());

  const boost::json::value* ssh = Find(root, "ssh_config");
  if (ssh == nullptr) return Error("ssh_config", "is required (list hosts under ssh_config.hosts)");
  FW_ASSIGN_OR_RETURN(const boost::json::object* ssh_config,
                      config::ReadObject(*ssh, "ssh_config"));
  FW_RETURN_IF_ERROR(config::CheckKeys(*ssh_config, "ssh_config",
                                       {"port", "token", "price", "hosts"}, kUnsupportedSshKeys));

  HostDefaults defaults;
  if (const boost::json::value* port = Find(*ssh_config, "port")) {
    FW_ASSIGN_OR_RETURN(defaults.port, ReadPort(*port, "ssh_config.port"));
  }
  if (const boost::json::value* token = Find(*ssh_config, "token")) {
    FW_ASSIGN_OR_RETURN(defaults.token, ReadToken(*token, "ssh_config.token"));
  }
  if (const boost::json::value* price = Find(*ssh_config, "price")) {
    FW_ASSIGN_OR_RETURN(defaults.price, ReadPrice(*price, "ssh_config.price"));
  }

  const boost::json::value* hosts_value = Find(*ssh_config, "hosts");
  if (hosts_value == nullptr) return Error("ssh_config.hosts", "is required");
  FW_ASSIGN_OR_RETURN(const boost::json::array* hosts,
                      config::ReadArray(*hosts_value, "ssh_config.hosts"));
  if (hosts->empty()) return Error("ssh_config.hosts", "must list at least one host");
  if (hosts->size() > kMaxHosts) {
    return Error("ssh_config.hosts",
                 "has too many hosts (at most " + std::to_string(kMaxHosts) + ")");
  }
  std::map<std::pair<std::string, int>, std::size_t> seen;  // hostname:port -> index
  for (std::size_t i = 0; i < hosts->size(); ++i) {
    std::string path = IndexPath("ssh_config.hosts", i);
    FW_ASSIGN_OR_RETURN(FleetHost host, ReadHost((*hosts)[i], path, defaults));
    auto [it, inserted] = seen.emplace(std::make_pair(host.hostname, host.port), i);
    if (!inserted) {
      return Error(path, "duplicate host " + host.hostname + " port " + std::to_string(host.port) +
                             " (also ssh_config.hosts[" + std::to_string(it->second) + "])");
    }
    fleet.hosts.push_back(std::move(host));
  }
  return fleet;
}

}  // namespace

Result<FleetConfiguration> ParseFleetConfiguration(std::string_view text, ConfigFormat format) {
  FW_ASSIGN_OR_RETURN(boost::json::object root, config::ParseConfigTree(text, format));
  return FleetFromTree(root);
}

std::string ToJson(const FleetConfiguration& config) {
  config::JsonWriter out;
  out.BeginObject();
  out.Key("name");
  out.String(config.name);
  out.Key("hosts");
  out.BeginArray();
  for (const FleetHost& host : config.hosts) {
    out.BeginObject();
    out.Key("hostname");
    out.String(host.hostname);
    out.Key("port");
    out.Integer(host.port);
    if (host.price) {
      out.Key("price");
      out.Number(*host.price);
    }
    out.EndObject();
  }
  out.EndArray();
  out.EndObject();
  return out.text();
}

}  // namespace fleetwatch::model
