#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace fleetwatch::testing {

// A TCP proxy on 127.0.0.1 for tests of several servers behind one address: each connection it
// accepts goes to the next backend in turn (backend 0, 1, ..., 0, ...), and carries one HTTP
// request only: "Connection: close" is added to the request's header, so the backend closes the
// connection after its response and a client that keeps connections alive (Prometheus) opens a
// new one, to the next backend, for its next request. Bytes are otherwise passed on unchanged,
// both ways. Listens on port 0 (port()); a thread accepts, one thread per connection pumps.
// Thread-safe; the destructor closes everything and joins its threads.
class RoundRobinProxy {
 public:
  // Backends are loopback ports. Aborts when it cannot listen (a test's precondition).
  explicit RoundRobinProxy(std::vector<uint16_t> backends);
  ~RoundRobinProxy();
  RoundRobinProxy(const RoundRobinProxy&) = delete;
  RoundRobinProxy& operator=(const RoundRobinProxy&) = delete;

  uint16_t port() const { return port_; }
  // Connections sent to each backend so far, in the order of the backends given.
  std::vector<uint64_t> connections() const;

 private:
  void Accept();
  void Pump(int client, size_t backend);

  const std::vector<uint16_t> backends_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // the destructor writes to it to end every wait
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;    // guarded by mu_
  std::vector<std::thread> pumps_;  // guarded by mu_
  size_t next_ = 0;                 // guarded by mu_
  std::thread acceptor_;
};

}  // namespace fleetwatch::testing
