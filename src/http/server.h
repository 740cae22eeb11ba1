#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "http/router.h"
#include "http/tls_options.h"
#include "util/status.h"

namespace fleetwatch::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                  // 0: any free port
  int threads = 4;                    // worker threads; handlers run on them and may block
  size_t body_limit_bytes = 1 << 20;  // larger bodies get 413
  // Headers and body must arrive by then (idle keep-alive connections are closed after it too);
  // also bounds writing each response. Expired connections are closed without a response.
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds shutdown_grace{10'000};  // Stop() waits this long for requests
  // Set: HTTPS only (TLS 1.2+), the files read by Start(). The TLS handshake is bounded by
  // read_timeout; a connection whose handshake fails (plain HTTP, garbage) is closed.
  std::optional<TlsServerOptions> tls;
};

// An HTTP/1.1 server on Boost.Beast: keep-alive, Expect: 100-continue, body limit (413 JSON
// "payload_too_large", also for a too-large declared Content-Length or chunked body), header
// limit of 64 KiB (431 JSON "headers_too_large"), read timeout (close), malformed requests or
// targets answered with 400 JSON "bad_request". Error responses close the connection. Handler
// exceptions become 500 JSON "internal" with a generic message (the exception text is logged,
// never sent). Every response carries Server: fleetwatch, Content-Length and the Response's
// Content-Type; a handler's own Content-Length/Transfer-Encoding headers are ignored and
// "Connection: close" is honoured. Handlers run on the worker threads, may block, and may run
// concurrently. Thread-safe: Start() and Stop() may be called from any thread except a handler's.
class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();  // calls Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the worker threads; returns the bound port (useful with port 0).
  // Unavailable when the host does not resolve or binding fails (e.g. the port is in use);
  // InvalidArgument when the TLS certificate or key does not load; FailedPrecondition when
  // already started. A stopped server may be started again.
  Result<uint16_t> Start();
  // Stops accepting, lets requests in flight finish (up to shutdown_grace), closes the remaining
  // connections and joins the threads. A handler still running after the grace period is waited
  // for. Idempotent; safe from a signal-handling thread; must not be called from a handler
  // (it would wait for itself).
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fleetwatch::http
