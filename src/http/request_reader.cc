#include "http/request_reader.h"

#include <boost/url/parse.hpp>
#include <string>
#include <utility>

#include "http/header_rules.h"

namespace fleetwatch::http {

void ApplyRequestLimits(RequestParser& parser, size_t body_limit_bytes) {
  parser.header_limit(kRequestHeaderLimitBytes);
  parser.body_limit(body_limit_bytes);
}

Result<Request> ToRequest(RequestMessage& message) {
  const std::string_view target = message.target();
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return InvalidArgument("invalid request target");
  Request request;
  request.method = std::string(message.method_string());
  request.target = std::string(target);
  request.path = url->path();
  for (const auto& param : url->params()) request.query[param.key] = param.value;
  for (const auto& field : message) {
    request.headers.emplace_back(ToLower(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  return request;
}

}  // namespace fleetwatch::http
