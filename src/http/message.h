#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace fleetwatch::http {

namespace internal {
class DeferredState;  // deferred.h
}

// An HTTP request as handlers see it: the transport's details already dealt with. Plain data;
// thread-compatible.
struct Request {
  std::string method;                              // "GET", "POST", ...
  std::string target;                              // as received: path and query, still encoded
  std::string path;                                // percent-decoded path, no query
  std::map<std::string, std::string> query;        // decoded query parameters (last one wins)
  std::map<std::string, std::string> path_params;  // filled by Router ("{name}" and "*")
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;

  // The first header of that (case-insensitive) name, or "" when absent.
  std::string_view Header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Server side: when set, sent instead of `body` straight from these bytes, which the server
  // keeps alive until the write completes (large immutable bodies such as a cached /metrics).
  std::shared_ptr<const std::string> shared_body;
  // Server side: extra headers to send. Client side: all received headers, names lowercased.
  std::vector<std::pair<std::string, std::string>> headers;
  // Server side: set by DeferResponse (deferred.h) for an answer that comes later; the other
  // fields are then ignored.
  std::shared_ptr<internal::DeferredState> deferred;
};

// {"error":{"code":code,"message":message}} (both escaped with JsonEscape) with the given HTTP
// status and Content-Type application/json.
Response JsonError(int status, std::string_view code, std::string_view message);

// The JSON error response for a non-ok Status, one HTTP status per code: 400 invalid_argument,
// 404 not_found, 409 already_exists / failed_precondition, 401 unauthenticated (with
// WWW-Authenticate: Bearer), 403 permission_denied, 413 payload_too_large, 503 unavailable.
// Internal errors (and an ok Status, which would be a bug) are logged and answered 500 with a
// generic message: their text may hold details that are not the caller's business.
Response ErrorResponseFor(const Status& status);

// Escapes text for a JSON string literal (without the quotes): quotes, backslashes and control
// characters are escaped, valid UTF-8 is kept, and each byte that is not part of valid UTF-8
// becomes U+FFFD, so the result is always valid JSON.
std::string JsonEscape(std::string_view text);

// Percent-encodes a path segment or query value (RFC 3986 unreserved characters kept).
std::string UrlEncode(std::string_view text);

}  // namespace fleetwatch::http
