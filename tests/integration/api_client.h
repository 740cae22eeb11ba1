#pragma once

#include <boost/json.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/client.h"

namespace fleetwatch::testing {

// v[key] when it is a string, else "".
std::string Str(const boost::json::value& v, std::string_view key);

// A reply from the server under test, with the body parsed when it is JSON.
struct ApiReply {
  int status = 0;
  std::string body;
  boost::json::value json;                                   // null when the body is not JSON
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased

  // json["error"]["code"], or "" when absent.
  std::string ErrorCode() const;
  // The first header of that (lowercase) name, or "" when absent.
  std::string Header(std::string_view name) const;
};

// Talks to a server under test as one user. Fails the current test on transport errors.
class ApiClient {
 public:
  ApiClient(std::string url, std::string token, http::ClientOptions options = {})
      : url_(std::move(url)), token_(std::move(token)), options_(std::move(options)) {}

  ApiReply Get(std::string_view target) const { return Send("GET", target); }
  ApiReply Delete(std::string_view target) const { return Send("DELETE", target); }
  ApiReply PostJson(std::string_view target, const boost::json::value& body) const {
    return Send("POST", target, boost::json::serialize(body), "application/json");
  }
  ApiReply Send(std::string_view method, std::string_view target, std::string_view body = {},
                std::string_view content_type = {}) const;

  const std::string& token() const { return token_; }

 private:
  std::string url_;
  std::string token_;            // empty: no Authorization header
  http::ClientOptions options_;  // e.g. the CA of an https server
};

// Polls GET /api/project/{project}/runs/{run} as `client` until the run's status is `status` or
// `timeout` passes; the last reply either way (a caller checks its "status").
ApiReply WaitForRunStatus(const ApiClient& client, std::string_view project, std::string_view run,
                          std::string_view status,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace fleetwatch::testing
