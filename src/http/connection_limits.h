#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "util/mutex.h"

namespace fleetwatch::http {

// What ConnectionLimits has counted so far.
struct ConnectionStats {
  int64_t open = 0;                            // connections admitted and not yet closed
  uint64_t refused_total = 0;                  // refused because `max_connections` were open
  uint64_t refused_unauthenticated_total = 0;  // refused by the per-address cap
};

// Decides whether a server admits a new connection, and counts the open ones: at most
// `max_connections` in all, and at most `max_unauthenticated_per_address` from one client address
// that have not yet authenticated (0 for either: no cap). Admission happens at accept time, before
// the connection gets any buffer. Thread-safe; must outlive every slot it handed out.
class ConnectionLimits {
 public:
  // One admitted connection. Releases its place when destroyed. Move-only; not thread-safe (one
  // connection's work runs one step at a time).
  class Slot {
   public:
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;  // releases this slot's place first
    Slot(const Slot&) = delete;
    ~Slot();

    // The connection passed authentication: from now on it no longer counts against its
    // address's unauthenticated cap. Idempotent.
    void MarkAuthenticated();

   private:
    friend class ConnectionLimits;
    Slot(ConnectionLimits& limits, std::string address)
        : limits_(&limits), address_(std::move(address)) {}

    ConnectionLimits* limits_;  // null once moved from
    std::string address_;
    bool authenticated_ = false;
  };

  ConnectionLimits(size_t max_connections, size_t max_unauthenticated_per_address)
      : max_connections_(max_connections),
        max_unauthenticated_per_address_(max_unauthenticated_per_address) {}
  ConnectionLimits(const ConnectionLimits&) = delete;
  ConnectionLimits& operator=(const ConnectionLimits&) = delete;

  // A slot for a new connection from `address` (any text naming the client's address), or nullopt
  // when a cap is reached; a refusal is counted and logged (the first and then every power of two,
  // so a flood cannot flood the log).
  std::optional<Slot> Admit(const std::string& address) FW_EXCLUDES(mu_);

  ConnectionStats stats() const FW_EXCLUDES(mu_);

 private:
  void Release(const std::string& address, bool authenticated) FW_EXCLUDES(mu_);
  void Authenticated(const std::string& address) FW_EXCLUDES(mu_);
  void ForgetUnauthenticated(const std::string& address) FW_REQUIRES(mu_);

  const size_t max_connections_;
  const size_t max_unauthenticated_per_address_;

  mutable Mutex mu_;
  ConnectionStats stats_ FW_GUARDED_BY(mu_);
  std::map<std::string, size_t> unauthenticated_ FW_GUARDED_BY(mu_);  // no zero entries
};

}  // namespace fleetwatch::http
