#include "cli/api_error.h"

#include <boost/json.hpp>
#include <string>

namespace fleetwatch::cli {
namespace {

StatusCode CodeFor(int http_status, std::string_view error_code) {
  switch (http_status) {
    case 400:
    case 415:
      return StatusCode::kInvalidArgument;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return error_code == "already_exists" ? StatusCode::kAlreadyExists
                                            : StatusCode::kFailedPrecondition;
    case 413:
      return StatusCode::kPayloadTooLarge;
    case 502:
    case 503:
    case 504:
      return StatusCode::kUnavailable;
    default:
      return http_status >= 400 && http_status < 500 ? StatusCode::kInvalidArgument
                                                     : StatusCode::kInternal;
  }
}

}  // namespace

Status ErrorFromReply(int http_status, std::string_view body) {
  std::string code, message;
  boost::system::error_code ec;
  boost::json::value reply = boost::json::parse(body, ec);
  if (!ec && reply.is_object()) {
    if (const boost::json::value* error = reply.as_object().if_contains("error");
        error != nullptr && error->is_object()) {
      if (const auto* c = error->as_object().if_contains("code"); c && c->is_string()) {
        code = c->as_string();
      }
      if (const auto* m = error->as_object().if_contains("message"); m && m->is_string()) {
        message = m->as_string();
      }
    }
  }
  if (http_status == 401) {
    return Unauthenticated("the server rejected the token (run fleetwatch config --token ...)");
  }
  if (message.empty()) message = "the server answered HTTP " + std::to_string(http_status);
  return Status(CodeFor(http_status, code), message);
}

Status ConnectionError(std::string_view url, const Status& cause) {
  // http::Client already says "cannot reach http://host:port: why"; keep only the why.
  std::string_view why = cause.message();
  constexpr std::string_view kPrefix = "cannot reach ";
  if (why.substr(0, kPrefix.size()) == kPrefix) {
    if (size_t colon = why.find(": "); colon != std::string_view::npos) {
      why.remove_prefix(colon + 2);
    }
  }
  return Unavailable("cannot reach the server at " + std::string(url) + ": " + std::string(why));
}

}  // namespace fleetwatch::cli
