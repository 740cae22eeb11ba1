#include "cli/api_client.h"

#include <boost/json.hpp>
#include <utility>
#include <vector>

#include "cli/api_error.h"
#include "http/message.h"

namespace fleetwatch::cli {

Result<ApiClient> ApiClient::Create(const ClientSettings& settings) {
  FW_ASSIGN_OR_RETURN(http::Client client,
                      http::Client::Create(settings.url, HttpClientOptions(settings)));
  return ApiClient(settings, std::move(client));
}

http::ClientOptions HttpClientOptions(const ClientSettings& settings) {
  http::ClientOptions options;
  options.tls.ca_certificates_pem = settings.ca_cert_pem;
  return options;
}

Result<boost::json::value> ApiClient::Get(std::string_view target) {
  return Call("GET", target, {}, {});
}

Result<boost::json::value> ApiClient::Delete(std::string_view target) {
  return Call("DELETE", target, {}, {});
}

Result<boost::json::value> ApiClient::PostJson(std::string_view target,
                                               const boost::json::value& json) {
  return Call("POST", target, boost::json::serialize(json), "application/json");
}

Result<boost::json::value> ApiClient::Post(std::string_view target, std::string_view body,
                                           std::string_view content_type) {
  return Call("POST", target, body, content_type);
}

std::string ApiClient::ProjectPath(std::string_view suffix) const {
  return "/api/project/" + PathSegment(settings_.project) + std::string(suffix);
}

Result<boost::json::value> ApiClient::Call(std::string_view method, std::string_view target,
                                           std::string_view body, std::string_view content_type) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Authorization", "Bearer " + settings_.token},
      {"Accept", "application/json"},
  };
  if (!content_type.empty()) headers.emplace_back("Content-Type", std::string(content_type));
  Result<http::Response> reply = client_.Send(method, target, body, headers);
  if (!reply.ok()) {
    Status cause = reply.status();
    if (cause.code() == StatusCode::kUnavailable) return ConnectionError(settings_.url, cause);
    return cause;
  }
  if (reply->status < 200 || reply->status >= 300) {
    return ErrorFromReply(reply->status, reply->body);
  }
  if (reply->body.empty()) return boost::json::value(boost::json::object());
  boost::system::error_code ec;
  boost::json::value json = boost::json::parse(reply->body, ec);
  if (ec) {
    return Internal("the server at " + settings_.url + " sent a reply that is not JSON (HTTP " +
                    std::to_string(reply->status) + ")");
  }
  return json;
}

std::string PathSegment(std::string_view name) { return http::UrlEncode(name); }

}  // namespace fleetwatch::cli
