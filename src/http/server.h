#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "http/router.h"
#include "util/status.h"

namespace fleetwatch::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  int threads = 4;    // worker threads; handlers run on them and may block
  size_t body_limit_bytes = 1 << 20;                   // larger bodies get 413
  std::chrono::milliseconds read_timeout{30'000};      // headers and body must arrive by then
  std::chrono::milliseconds shutdown_grace{10'000};    // Stop() waits this long for requests
};

// An HTTP/1.1 server on Boost.Beast: keep-alive, body limit (413), timeouts (408 or close),
// malformed requests answered with 400. Handler exceptions become 500 JSON errors. Thread-safe.
class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();  // calls Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the worker threads; returns the bound port. Unavailable when binding fails.
  Result<uint16_t> Start();
  // Stops accepting, lets requests in flight finish (up to shutdown_grace), joins the threads.
  // Idempotent.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fleetwatch::http
