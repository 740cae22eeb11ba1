#pragma once

#include <string>
#include <string_view>

namespace fleetwatch::server {

// "One host belongs to one fleet": the key under which an agent's address is compared with every
// other fleet's. The hostname lowercased, without IPv6 brackets or a trailing dot; IPv4-mapped
// IPv6 addresses as their IPv4 form; every name of this machine's loopback or wildcard address
// (localhost and *.localhost, ip6-localhost, 127.0.0.0/8, 0.0.0.0, ::1, ::) as "loopback"; then
// ":port". Names that only DNS maps to the same host are caught later, by the agent's id
// (reconciler.h AgentIdHolder). Pure; thread-safe.
std::string HostKey(std::string_view hostname, int port);

}  // namespace fleetwatch::server
