#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/message.h"
#include "http/tls_options.h"
#include "util/status.h"

namespace fleetwatch::http {

// One request to one host. Plain data.
struct AsyncRequest {
  std::string host;  // IP literal (IPv6 with or without brackets) or a name to resolve
  uint16_t port = 0;
  std::string method = "GET";
  std::string target;  // path + query, already encoded; starts with '/'
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Resolve + connect + write + read, all together (a retry on a fresh connection included; a
  // reused connection skips the first two), counted from when the request leaves the queue
  // (see AsyncClient). Name resolution past the deadline fails the request on time, but
  // the system resolver may keep a thread busy until it gives up on its own.
  std::chrono::milliseconds timeout{5000};
  size_t max_response_bytes = 8 << 20;  // response body; larger ones fail with PayloadTooLarge
  // Set: HTTPS, the server checked as these options say (tls_options.h). Unset: plain HTTP.
  std::optional<TlsClientOptions> tls;
  // A request sent on a reused connection that the server had closed while it was idle (the
  // connection ends before any byte of the response) is sent once more on a fresh connection
  // when its method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) or this is set: set
  // it for a POST or PATCH that the server treats as idempotent (e.g. keyed by an id), never
  // for one that must not run twice. Unset, such a request fails with Unavailable "connection
  // to ... closed before a complete response" (or "... failed: ...") and is not sent again.
  bool retry_on_stale_connection = false;
  // Bytes reserved for receiving the response (capped at max_response_bytes + 64 KiB); 0: the
  // receive buffer starts small and each read takes at most its free space (512 bytes at first),
  // so a 100 KB response costs hundreds of reads. Set it near the expected size of a large
  // response; it is held only while the request is in flight.
  size_t read_buffer_bytes = 0;
};

// A pool of I/O threads sending requests asynchronously (Boost.Beast), made for polling
// thousands of hosts at once: every request has its own deadline and response-size cap, so one
// slow or broken host never delays the others.
//
// Connections are kept alive and reused (Connection: keep-alive): after a complete response
// that the server did not end with Connection: close and that had a length (Content-Length or
// chunked, not "until the connection closes"), the connection waits idle for the next request
// to the same endpoint: the same host (as written in the request), port and TLS setting,
// pinned fingerprint and CA certificates included, so a connection is never shared between
// different ways of checking the server. At most 2 idle connections per endpoint; an idle one
// is closed after `idle_timeout` (keep it below the servers' own idle deadline, 30 s for
// http::Server), when it is the oldest idle one and a new connection needs its place, and when
// the client is destroyed. A reused connection found closed by the server before the request is
// written is replaced by a fresh one; one that fails before any response byte arrives is
// retried once as AsyncRequest::retry_on_stale_connection says. A connection goes back to the
// pool before the request's callback runs, so a request sent from the callback may reuse it.
//
// At most `max_in_flight` requests are in flight at a time; further requests wait in a FIFO
// queue. Open connections (in flight and idle together) never exceed `max_in_flight`, so 10,000
// hosts do not exhaust file descriptors (each holds one: keep max_in_flight well below the
// process's RLIMIT_NOFILE, which is often 1024 by default); idle connections never delay a
// request, the oldest is closed to make room.
//
// HTTPS requests share one OpenSSL context per distinct verification setting, built on first use
// and kept for the client's lifetime; a TLS handshake (and the certificate check) happens once
// per connection, so a reused connection skips both.
//
// Requests carry Host, User-Agent: fleetwatch (unless given), Content-Length and
// Connection: keep-alive (Connection: close when idle_timeout is 0: no reuse at all). Any HTTP
// status is a successful Response; its `headers` hold all response headers, names lowercased.
//
// Owns its threads, connections and TLS contexts. Thread-safe: Send and SendAll may be called
// from any thread, Send also from a callback.
class AsyncClient {
 public:
  // `idle_timeout`: how long a connection may wait idle for reuse; 0 turns reuse off.
  // `user_agent`: the User-Agent of requests that set none (a replica names itself in it, so the
  // far side can tell which replica spoke to it).
  explicit AsyncClient(int threads = 2, size_t max_in_flight = 4096,
                       std::chrono::milliseconds idle_timeout = std::chrono::seconds(20),
                       std::string user_agent = "fleetwatch");
  // Cancels what is in flight or queued (those callbacks get Unavailable "... cancelled"),
  // closes the idle connections and joins the threads. Every callback has been called when it
  // returns. Must not be called from a callback.
  ~AsyncClient();
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  // Calls `done` exactly once, on an I/O thread, with the response or (the timeout counts
  // everything, a retry on a fresh connection included):
  //  - InvalidArgument: empty host, port 0, bad method, target or header, CA certificates that
  //    do not load;
  //  - Unavailable: "cannot reach http://host:port: ..." (resolve or connect failed or timed
  //    out), "no response from http://host:port within N ms", "malformed response from ...",
  //    "connection to ... closed before a complete response", a reset, or the client being
  //    destroyed (https:// for TLS requests); for HTTPS also "https://host:port: certificate
  //    verify failed: ...", "https://host:port: certificate fingerprint sha256:... does not
  //    match the pinned sha256:..." and "https://host:port: TLS handshake failed: ...";
  //  - PayloadTooLarge: the body exceeds max_response_bytes (or the headers 64 KiB).
  // `done` should be quick (it runs on an I/O thread) and must not throw; an exception is logged
  // and dropped.
  void Send(AsyncRequest request, std::function<void(Result<Response>)> done);

  // Sends all at once and waits for every result (each bounded by its own timeout plus its time
  // in the queue). Results are in request order. Must not be called from a callback.
  std::vector<Result<Response>> SendAll(std::vector<AsyncRequest> requests);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fleetwatch::http
