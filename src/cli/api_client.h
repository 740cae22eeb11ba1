#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "cli/config.h"
#include "http/client.h"
#include "util/status.h"

namespace fleetwatch::cli {

// The server's REST API as the CLI uses it: every request carries the bearer token, every reply
// is JSON, and every failure is a Status whose message can be shown as is (see api_error.h).
// Thread-compatible.
class ApiClient {
 public:
  // InvalidArgument when settings.url is not a usable URL.
  static Result<ApiClient> Create(const ClientSettings& settings);

  // `target` is a path (and query) under the server root, already encoded, e.g. "/api/projects".
  Result<boost::json::value> Get(std::string_view target);
  Result<boost::json::value> Delete(std::string_view target);
  // POSTs `json` as application/json.
  Result<boost::json::value> PostJson(std::string_view target, const boost::json::value& json);
  // POSTs `body` with the given content type (a configuration as YAML or JSON).
  Result<boost::json::value> Post(std::string_view target, std::string_view body,
                                  std::string_view content_type);

  // "/api/project/{project}" + suffix, the project percent-encoded.
  std::string ProjectPath(std::string_view suffix) const;

  const ClientSettings& settings() const { return settings_; }

 private:
  ApiClient(ClientSettings settings, http::Client client)
      : settings_(std::move(settings)), client_(std::move(client)) {}
  Result<boost::json::value> Call(std::string_view method, std::string_view target,
                                  std::string_view body, std::string_view content_type);

  ClientSettings settings_;
  http::Client client_;
};

// The http::Client options the settings call for (the CA certificates of an https server).
http::ClientOptions HttpClientOptions(const ClientSettings& settings);

// Percent-encodes one path segment (a project, fleet, run or user name).
std::string PathSegment(std::string_view name);

}  // namespace fleetwatch::cli
