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
#include "model/json_text.h"
#include "model/json_writer.h"
#include "model/names.h"
#include "util/certificates.h"

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
constexpr std::size_t kMaxCaCertBytes = 64 * 1024;
constexpr double kMaxCarbonIntensity = 10'000;  // gCO2e/kWh; coal is about 1,000

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

Result<bool> ReadBool(const boost::json::value& value, const std::string& path) {
  if (!value.is_bool()) {
    return Error(path, "must be true or false (got " + std::string(config::KindName(value)) + ")");
  }
  return value.get_bool();
}

Result<std::string> ReadCaCert(const boost::json::value& value, const std::string& path) {
  FW_ASSIGN_OR_RETURN(std::string pem, config::ReadString(value, path));
  if (pem.size() > kMaxCaCertBytes) {
    return Error(path, "is longer than " + std::to_string(kMaxCaCertBytes) + " bytes");
  }
  Status valid = ValidateCertificatesPem(pem);
  if (!valid.ok()) return Error(path, valid.message());
  return pem;
}

Result<std::string> ReadFingerprint(const boost::json::value& value, const std::string& path) {
  FW_ASSIGN_OR_RETURN(std::string text, config::ReadString(value, path));
  Result<std::string> fingerprint = NormalizeFingerprint(text);
  if (!fingerprint.ok()) return Error(path, fingerprint.status().message());
  return fingerprint;
}

// Host defaults from ssh_config.
struct HostDefaults {
  int port = kDefaultAgentPort;
  std::optional<std::string> token;
  std::optional<double> price;
  std::optional<bool> tls;
  std::optional<std::string> ca_cert;
};

// How the host is reached, from its own keys over the defaults (see fleet_spec.h).
Status ResolveTls(FleetHost& host, const std::string& path, std::optional<bool> tls,
                  std::optional<std::string> ca_cert, std::optional<std::string> fingerprint,
                  const HostDefaults& defaults) {
  if (ca_cert && fingerprint) {
    return Error(path, "give either fingerprint or ca_cert, not both");
  }
  if (!tls && !ca_cert && !fingerprint) {
    tls = defaults.tls;
    ca_cert = defaults.ca_cert;
  }
  if (tls == false && (ca_cert || fingerprint)) {
    return Error(KeyPath(path, "tls"),
                 std::string("is false, but ") + (fingerprint ? "a fingerprint" : "a ca_cert") +
                     " is given: a pinned or CA-checked host is reached over TLS");
  }
  if (!tls && !ca_cert && !fingerprint) {
    return Error(path,
                 "says nothing about TLS: add `fingerprint: sha256:...` (the agent prints it "
                 "when it starts), `ca_cert`, or `tls: false` for plain HTTP");
  }
  host.tls = tls.value_or(true);
  host.ca_cert = ca_cert.value_or("");
  host.fingerprint = fingerprint.value_or("");
  return Status::Ok();
}

Result<FleetHost> ReadHost(const boost::json::value& value, const std::string& path,
                           const HostDefaults& defaults) {
  FleetHost host;
  host.port = defaults.port;
  host.price = defaults.price;
  std::optional<std::string> token = defaults.token;
  std::optional<bool> tls;
  std::optional<std::string> ca_cert;
  std::optional<std::string> fingerprint;
  if (value.is_string()) {
    FW_ASSIGN_OR_RETURN(host.hostname, ReadHostname(value, path));
  } else if (value.is_object()) {
    const boost::json::object& object = value.get_object();
    FW_RETURN_IF_ERROR(config::CheckKeys(
        object, path, {"hostname", "port", "token", "price", "tls", "ca_cert", "fingerprint"},
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
    if (const boost::json::value* t = Find(object, "tls")) {
      FW_ASSIGN_OR_RETURN(tls, ReadBool(*t, KeyPath(path, "tls")));
    }
    if (const boost::json::value* ca = Find(object, "ca_cert")) {
      FW_ASSIGN_OR_RETURN(ca_cert, ReadCaCert(*ca, KeyPath(path, "ca_cert")));
    }
    if (const boost::json::value* f = Find(object, "fingerprint")) {
      FW_ASSIGN_OR_RETURN(fingerprint, ReadFingerprint(*f, KeyPath(path, "fingerprint")));
    }
  } else {
    return Error(path,
                 "must be a hostname or a mapping {hostname, port, token, price, tls, ca_cert, "
                 "fingerprint} (got " +
                     std::string(config::KindName(value)) + ")");
  }
  if (!token) {
    return Error(KeyPath(path, "token"),
                 "is required (the agent's token; set it here or as ssh_config.token)");
  }
  host.token = std::move(*token);
  FW_RETURN_IF_ERROR(
      ResolveTls(host, path, tls, std::move(ca_cert), std::move(fingerprint), defaults));
  return host;
}

Result<FleetConfiguration> FleetFromTree(const boost::json::object& root) {
  FW_RETURN_IF_ERROR(config::CheckKeys(root, "", {"type", "name", "ssh_config", "carbon_intensity"},
                                       kUnsupportedFleetKeys));
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

  if (const boost::json::value* carbon = Find(root, "carbon_intensity")) {
    Result<double> intensity =
        config::ReadNumber(*carbon, "carbon_intensity", 0, kMaxCarbonIntensity);
    if (!intensity.ok()) {
      return Error("carbon_intensity",
                   carbon->is_number()
                       ? std::string("must be between 0 and 10000 (grams of CO2e per kWh)")
                       : "must be a number of grams of CO2e per kWh (got " +
                             std::string(config::KindName(*carbon)) + ")");
    }
    fleet.carbon_intensity = *intensity;
  }

  const boost::json::value* ssh = Find(root, "ssh_config");
  if (ssh == nullptr) return Error("ssh_config", "is required (list hosts under ssh_config.hosts)");
  FW_ASSIGN_OR_RETURN(const boost::json::object* ssh_config,
                      config::ReadObject(*ssh, "ssh_config"));
  FW_RETURN_IF_ERROR(config::CheckKeys(*ssh_config, "ssh_config",
                                       {"port", "token", "price", "tls", "ca_cert", "hosts"},
                                       kUnsupportedSshKeys));

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
  if (const boost::json::value* tls = Find(*ssh_config, "tls")) {
    FW_ASSIGN_OR_RETURN(defaults.tls, ReadBool(*tls, "ssh_config.tls"));
  }
  if (const boost::json::value* ca = Find(*ssh_config, "ca_cert")) {
    FW_ASSIGN_OR_RETURN(defaults.ca_cert, ReadCaCert(*ca, "ssh_config.ca_cert"));
  }
  if (defaults.tls == false && defaults.ca_cert) {
    return Error("ssh_config.tls", "is false, but a ca_cert is given");
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
  // Defaults are copied into every host, so 1000 hosts sharing a 64 KiB ca_cert would normalize
  // to 64 MiB: a lower bound of the normalized size stops that before it is built.
  std::size_t normalized_bytes = 0;
  for (std::size_t i = 0; i < hosts->size(); ++i) {
    std::string path = IndexPath("ssh_config.hosts", i);
    FW_ASSIGN_OR_RETURN(FleetHost host, ReadHost((*hosts)[i], path, defaults));
    auto [it, inserted] = seen.emplace(std::make_pair(host.hostname, host.port), i);
    if (!inserted) {
      return Error(path, "duplicate host " + host.hostname + " port " + std::to_string(host.port) +
                             " (also ssh_config.hosts[" + std::to_string(it->second) + "])");
    }
    normalized_bytes += host.hostname.size() + host.ca_cert.size() + host.fingerprint.size();
    FW_RETURN_IF_ERROR(config::CheckNormalizedSize(normalized_bytes));
    fleet.hosts.push_back(std::move(host));
  }
  return fleet;
}

}  // namespace

std::optional<double> CarbonIntensityOf(std::string_view configuration_json) {
  Result<boost::json::value> root = ParseStrictJson(configuration_json);
  if (!root.ok() || !root->is_object()) return std::nullopt;
  const boost::json::value* value = root->get_object().if_contains("carbon_intensity");
  if (value == nullptr || !value->is_number()) return std::nullopt;
  const double d = value->to_number<double>();
  if (!(d >= 0 && d <= kMaxCarbonIntensity)) return std::nullopt;
  return d;
}

Result<FleetConfiguration> ParseFleetConfiguration(std::string_view text, ConfigFormat format) {
  FW_ASSIGN_OR_RETURN(boost::json::object root, config::ParseConfigTree(text, format));
  FW_ASSIGN_OR_RETURN(FleetConfiguration fleet, FleetFromTree(root));
  FW_RETURN_IF_ERROR(config::CheckNormalizedSize(ToJson(fleet).size()));
  return fleet;
}

std::string ToJson(const FleetConfiguration& config) {
  config::JsonWriter out;
  out.BeginObject();
  out.Key("name");
  out.String(config.name);
  if (config.carbon_intensity) {
    out.Key("carbon_intensity");
    out.Number(*config.carbon_intensity);
  }
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
    out.Key("tls");
    out.Bool(host.tls);
    if (!host.fingerprint.empty()) {
      out.Key("fingerprint");
      out.String(host.fingerprint);
    }
    if (!host.ca_cert.empty()) {
      out.Key("ca_cert");
      out.String(host.ca_cert);
    }
    out.EndObject();
  }
  out.EndArray();
  out.EndObject();
  return out.text();
}

}  // namespace fleetwatch::model
