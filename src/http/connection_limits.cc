#include "http/connection_limits.h"

#include <spdlog/spdlog.h>

#include <bit>
#include <utility>

namespace fleetwatch::http {

ConnectionLimits::Slot::Slot(Slot&& other) noexcept
    : limits_(std::exchange(other.limits_, nullptr)),
      address_(std::move(other.address_)),
      authenticated_(other.authenticated_) {}

ConnectionLimits::Slot& ConnectionLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (limits_ != nullptr) limits_->Release(address_, authenticated_);
    limits_ = std::exchange(other.limits_, nullptr);
    address_ = std::move(other.address_);
    authenticated_ = other.authenticated_;
  }
  return *this;
}

ConnectionLimits::Slot::~Slot() {
  if (limits_ != nullptr) limits_->Release(address_, authenticated_);
}

void ConnectionLimits::Slot::MarkAuthenticated() {
  if (authenticated_ || limits_ == nullptr) return;
  authenticated_ = true;
  limits_->Authenticated(address_);
}

std::optional<ConnectionLimits::Slot> ConnectionLimits::Admit(const std::string& address) {
  MutexLock lock(mu_);
  if (max_connections_ != 0 && static_cast<size_t>(stats_.open) >= max_connections_) {
    const uint64_t refused = ++stats_.refused_total;
    if (std::has_single_bit(refused)) {
      spdlog::warn("http server: {} connections open, the most allowed; refused {} so far",
                   stats_.open, refused);
    }
    return std::nullopt;
  }
  size_t& unauthenticated = unauthenticated_[address];
  if (max_unauthenticated_per_address_ != 0 &&
      unauthenticated >= max_unauthenticated_per_address_) {
    const uint64_t refused = ++stats_.refused_unauthenticated_total;
    if (std::has_single_bit(refused)) {
      spdlog::warn(
          "http server: {} has {} connections open that have not authenticated, the most "
          "allowed; refused {} such connections so far",
          address, unauthenticated, refused);
    }
    return std::nullopt;
  }
  ++unauthenticated;
  ++stats_.open;
  return Slot(*this, address);
}

ConnectionStats ConnectionLimits::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

void ConnectionLimits::Release(const std::string& address, bool authenticated) {
  MutexLock lock(mu_);
  --stats_.open;
  if (!authenticated) ForgetUnauthenticated(address);
}

void ConnectionLimits::Authenticated(const std::string& address) {
  MutexLock lock(mu_);
  ForgetUnauthenticated(address);
}

void ConnectionLimits::ForgetUnauthenticated(const std::string& address) {
  auto it = unauthenticated_.find(address);
  if (it != unauthenticated_.end() && --it->second == 0) unauthenticated_.erase(it);
}

}  // namespace fleetwatch::http
