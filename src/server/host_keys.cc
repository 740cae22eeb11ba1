#include "server/host_keys.h"

#include <arpa/inet.h>

#include <cstring>

namespace fleetwatch::server {
namespace {

bool IsLoopbackV4(const in_addr& address) {
  const uint32_t host_order = ntohl(address.s_addr);
  return (host_order >> 24) == 127 || host_order == 0;
}

// The canonical text of an IP literal, "loopback" for this machine's, or "" for a DNS name.
std::string CanonicalAddress(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    if (IsLoopbackV4(v4)) return "loopback";
    char out[INET_ADDRSTRLEN] = {};
    return inet_ntop(AF_INET, &v4, out, sizeof out) != nullptr ? std::string(out) : host;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return "";
  if (IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_UNSPECIFIED(&v6)) return "loopback";
  if (IN6_IS_ADDR_V4MAPPED(&v6) || IN6_IS_ADDR_V4COMPAT(&v6)) {
    std::memcpy(&v4.s_addr, &v6.s6_addr[12], 4);
    if (IsLoopbackV4(v4)) return "loopback";
    char out[INET_ADDRSTRLEN] = {};
    if (inet_ntop(AF_INET, &v4, out, sizeof out) != nullptr) return out;
  }
  char out[INET6_ADDRSTRLEN] = {};
  return inet_ntop(AF_INET6, &v6, out, sizeof out) != nullptr ? std::string(out) : host;
}

bool IsLoopbackName(std::string_view name) {
  constexpr std::string_view kSuffix = ".localhost";
  return name == "localhost" || name == "localhost.localdomain" || name == "ip6-localhost" ||
         name == "ip6-loopback" ||
         (name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix);
}

}  // namespace

std::string HostKey(std::string_view hostname, int port) {
  std::string host(hostname);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  while (!host.empty() && host.back() == '.') host.pop_back();
  for (char& c : host) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (std::string address = CanonicalAddress(host); !address.empty()) {
    host = std::move(address);
  } else if (IsLoopbackName(host)) {
    host = "loopback";
  }
  return host + ":" + std::to_string(port);
}

}  // namespace fleetwatch::server
