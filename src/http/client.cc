#include "http/client.h"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <string>
#include <vector>

#include "http/async_client.h"

namespace fleetwatch::http {
namespace {

namespace urls = boost::urls;

}  // namespace

Client::Client(std::string host, uint16_t port, bool https, std::string prefix,
               ClientOptions options)
    : host_(std::move(host)),
      port_(port),
      https_(https),
      prefix_(std::move(prefix)),
      options_(std::move(options)),
      async_(std::make_shared<AsyncClient>(1, 1)) {}

Result<Client> Client::Create(std::string_view base_url, ClientOptions options) {
  const std::string quoted = "\"" + std::string(base_url) + "\"";
  auto parsed = urls::parse_uri(base_url);
  if (!parsed) {
    return InvalidArgument("invalid URL " + quoted + "; expected http[s]://host[:port][/prefix]");
  }
  const urls::url_view& url = *parsed;
  const bool https = url.scheme_id() == urls::scheme::https;
  if (!https && url.scheme_id() != urls::scheme::http) {
    return InvalidArgument("invalid URL " + quoted + ": expected http[s]://host[:port][/prefix]");
  }
  if (!url.has_authority() || url.encoded_host().empty() ||
      url.host_type() == urls::host_type::ipvfuture) {
    return InvalidArgument("invalid URL " + quoted + ": no host");
  }
  if (url.has_userinfo() || url.has_query() || url.has_fragment()) {
    return InvalidArgument("invalid URL " + quoted +
                           ": user info, query and fragment are not allowed");
  }
  uint16_t port = https ? 443 : 80;
  if (url.has_port()) {
    const std::string_view digits = url.port();
    const bool numeric =
        !digits.empty() && digits.size() <= 5 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    const unsigned long value = numeric ? std::stoul(std::string(digits)) : 0;
    if (value == 0 || value > 65535) return InvalidArgument("invalid URL " + quoted + ": bad port");
    port = static_cast<uint16_t>(value);
  }
  std::string prefix(url.encoded_path());
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return Client(url.host_address(), port, https, std::move(prefix), std::move(options));
}

Result<Response> Client::Send(std::string_view method, std::string_view target,
                              std::string_view body,
                              const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string path;
  if (target.empty() || target.front() == '?') {
    path = (prefix_.empty() ? "/" : prefix_) + std::string(target);
  } else if (target.front() == '/') {
    path = prefix_ + std::string(target);
  } else {
    return InvalidArgument("request target must start with '/': \"" + std::string(target) + "\"");
  }
  AsyncRequest request;
  request.host = host_;
  request.port = port_;
  request.method = std::string(method);
  request.target = std::move(path);
  request.body = std::string(body);
  request.headers = headers;
  request.timeout = options_.timeout;
  request.max_response_bytes = options_.max_response_bytes;
  if (https_) request.tls = options_.tls;
  std::vector<Result<Response>> results = async_->SendAll({std::move(request)});
  return std::move(results.front());
}

}  // namespace fleetwatch::http
