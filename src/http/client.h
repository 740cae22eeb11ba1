#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"
#include "http/tls_options.h"
#include "util/status.h"

namespace fleetwatch::http {

struct ClientOptions {
  std::chrono::milliseconds timeout{30'000};  // connect + request + response
  size_t max_response_bytes = 64 << 20;       // larger bodies fail with kPayloadTooLarge
  TlsClientOptions tls;                       // for https:// URLs (default: the system CA store)
};

class AsyncClient;

// A blocking HTTP/1.1 client for one base URL ("http://host:port" or "https://host:port",
// optionally with a path prefix): a thin wrapper of an AsyncClient of its own (one I/O thread).
// One connection per request. Thread-compatible: one instance per thread, or external locking.
class Client {
 public:
  // InvalidArgument for a URL that is not http[s]://host[:port][/prefix] (user info, query or
  // fragment are refused). The port defaults to 80 (http) or 443 (https).
  static Result<Client> Create(std::string_view base_url, ClientOptions options = {});

  // Sends `method` to base path + `target` (path and query, already encoded; starts with '/' or
  // '?') with the given headers. Host, User-Agent: fleetwatch (unless given) and Content-Length
  // are added, Content-Type only when given. Any HTTP status is a successful Response; its
  // `headers` hold all response headers, names lowercased.
  // Errors as AsyncClient::Send gives them: InvalidArgument for a bad method, target or header;
  // Unavailable when the server cannot be reached ("cannot reach http://host:port: ..."), fails
  // the TLS checks, closes early or does not answer within options.timeout; PayloadTooLarge when
  // the response body exceeds options.max_response_bytes.
  Result<Response> Send(std::string_view method, std::string_view target,
                        std::string_view body = {},
                        const std::vector<std::pair<std::string, std::string>>& headers = {});

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  bool https() const { return https_; }

 private:
  Client(std::string host, uint16_t port, bool https, std::string prefix, ClientOptions options);
  std::string host_;
  uint16_t port_;
  bool https_;
  std::string prefix_;
  ClientOptions options_;
  std::shared_ptr<AsyncClient> async_;
};

}  // namespace fleetwatch::http
