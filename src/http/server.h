#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/connection_limits.h"
#include "http/router.h"
#include "http/tls_options.h"
#include "util/status.h"

namespace fleetwatch::http {

// Checks a request's Authorization header value ("" when absent) before its body is read: ok lets
// the request go on (the handler still decides what the caller may do); any other Status is
// answered at once (ErrorResponseFor: 401 for Unauthenticated) and the connection closed. Runs
// on the worker threads, may block briefly (a token lookup), may run concurrently.
using HeaderAuthenticator = std::function<Status(std::string_view authorization)>;

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

  // Connections open at once; beyond it a new one is closed at accept (plain HTTP: after a
  // best-effort 503 written from a constant, no buffer allocated). 0: no cap.
  size_t max_connections = 4096;
  // Set (both): requests for which `needs_authentication(path)` holds, the path decoded as the
  // router sees it, are checked by `authenticate` once their header has arrived, before the body
  // is read. A connection counts as unauthenticated until a request on it passed the check; one
  // client address may hold at most `max_unauthenticated_per_address` of those (0: no cap), more
  // are closed at accept. Unset: no check and no per-address cap.
  HeaderAuthenticator authenticate;
  std::function<bool(std::string_view path)> needs_authentication;
  size_t max_unauthenticated_per_address = 64;
};

// An HTTP/1.1 server on Boost.Beast: keep-alive, Expect: 100-continue, body limit (413 JSON
// "payload_too_large", also for a too-large declared Content-Length or chunked body), header
// limit of 64 KiB (431 JSON "headers_too_large"), read timeout (close), malformed requests or
// targets answered with 400 JSON "bad_request". Error responses close the connection. Handler
// exceptions become 500 JSON "internal" with a generic message (the exception text is logged,
// never sent). Every response carries Server: fleetwatch, Content-Length and the Response's
// Content-Type; a handler's own Content-Length/Transfer-Encoding headers are ignored and
// "Connection: close" is honoured. Handlers run on the worker threads, may block, and may run
// concurrently; a handler that waits on something slow should answer later instead
// (DeferResponse, deferred.h), which holds no thread while it waits. Connection caps and the
// header-first authentication are in ServerOptions.
// Thread-safe: Start() and Stop() may be called from any thread except a handler's.
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

  // The connections counted since construction (across restarts). Thread-safe.
  ConnectionStats connection_stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fleetwatch::http
