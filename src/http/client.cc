#include "http/client.h"
#include "http/header_rules.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace fleetwatch::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace urls = boost::urls;
using tcp = asio::ip::tcp;

constexpr uint32_t kResponseHeaderLimitBytes = 64 * 1024;

bool IsIpv6(std::string_view host) { return host.find(':') != std::string_view::npos; }

}  // namespace

Result<Client> Client::Create(std::string_view base_url, ClientOptions options) {
  const std::string quoted = "\"" + std::string(base_url) + "\"";
  auto parsed = urls::parse_uri(base_url);
  if (!parsed) {
    return InvalidArgument("invalid URL " + quoted + "; expected http://host[:port][/prefix]");
  }
  const urls::url_view& url = *parsed;
  if (url.scheme_id() == urls::scheme::https) {
    return InvalidArgument("invalid URL " + quoted + ": https is not supported yet");
  }
  if (url.scheme_id() != urls::scheme::http) {
    return InvalidArgument("invalid URL " + quoted + ": expected http://host[:port][/prefix]");
  }
  if (!url.has_authority() || url.encoded_host().empty() ||
      url.host_type() == urls::host_type::ipvfuture) {
    return InvalidArgument("invalid URL " + quoted + ": no host");
  }
  if (url.has_userinfo() || url.has_query() || url.has_fragment()) {
    return InvalidArgument("invalid URL " + quoted +
                           ": user info, query and fragment are not allowed");
  }
  uint16_t port = 80;
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
  return Client(url.host_address(), port, std::move(prefix), options);
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
  if (!IsToken(method))
    return InvalidArgument("invalid HTTP method \"" + std::string(method) + "\"");
  if (!IsHeaderSafe(path) || path.find_first_of(" \t") != std::string::npos) {
    return InvalidArgument("request target is not encoded: \"" + std::string(target) + "\"");
  }
  const std::string host_port =
      (IsIpv6(host_) ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
  const std::string base = "http://" + host_port;
  const std::string timeout_text = std::to_string(options_.timeout.count()) + " ms";

  bhttp::request<bhttp::string_body> request;
  const bhttp::verb verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown) {
    request.method_string(method);
  } else {
    request.method(verb);
  }
  request.target(path);
  request.version(11);
  for (const auto& [name, value] : headers) {
    if (!IsToken(name) || !IsHeaderSafe(value)) {
      return InvalidArgument("invalid HTTP header \"" + name + "\"");
    }
    request.insert(name, value);
  }
  if (request.find(bhttp::field::host) == request.end()) request.set(bhttp::field::host, host_port);
  if (request.find(bhttp::field::user_agent) == request.end()) {
    request.set(bhttp::field::user_agent, "fleetwatch");
  }
  request.erase(bhttp::field::transfer_encoding);
  request.body() = std::string(body);
  request.content_length(body.size());
  request.keep_alive(false);

  // A private context per call: the blocking call runs it to completion on this thread, and the
  // tcp_stream deadline bounds connect, write and read together.
  asio::io_context io_context(1);
  beast::tcp_stream stream(io_context);
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(kResponseHeaderLimitBytes);
  parser.body_limit(options_.max_response_bytes);
  beast::flat_buffer buffer;
  std::vector<tcp::endpoint> endpoints;
  beast::error_code error;
  enum class Step { kResolve, kConnect, kWrite, kRead } step = Step::kResolve;

  auto on_read = [&](beast::error_code ec, size_t) { error = ec; };
  auto on_write = [&](beast::error_code ec, size_t) {
    if ((error = ec)) return;
    step = Step::kRead;
    stream.expires_at(deadline);
    bhttp::async_read(stream, buffer, parser, on_read);
  };
  auto on_connect = [&](beast::error_code ec, const tcp::endpoint&) {
    if ((error = ec)) return;
    step = Step::kWrite;
    stream.expires_at(deadline);
    bhttp::async_write(stream, request, on_write);
  };
  auto connect = [&] {
    step = Step::kConnect;
    stream.expires_at(deadline);
    stream.async_connect(endpoints, on_connect);
  };

  beast::error_code address_error;
  const auto address = asio::ip::make_address(host_, address_error);
  // Name resolution is bounded by the system resolver's own timeouts, not by options_.timeout.
  tcp::resolver resolver(io_context);
  if (!address_error) {
    endpoints.emplace_back(address, port_);
    connect();
  } else {
    resolver.async_resolve(host_, std::to_string(port_),
                           [&](beast::error_code ec, const tcp::resolver::results_type& results) {
                             if ((error = ec)) return;
                             for (const auto& entry : results)
                               endpoints.push_back(entry.endpoint());
                             connect();
                           });
  }
  io_context.run();
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  if (error) {
    switch (step) {
      case Step::kResolve:
        return Unavailable("cannot reach " + base + ": cannot resolve host: " + error.message());
      case Step::kConnect:
        if (error == beast::error::timeout) {
          return Unavailable("cannot reach " + base + ": no connection within " + timeout_text);
        }
        return Unavailable("cannot reach " + base + ": " + error.message());
      case Step::kWrite:
      case Step::kRead:
        break;
    }
    const std::string what = std::string(method) + " " + base + path;
    if (error == beast::error::timeout) {
      return Unavailable(what + ": no response within " + timeout_text);
    }
    if (error == bhttp::error::body_limit) {
      return Status(StatusCode::kPayloadTooLarge, what + ": response body exceeds " +
                                                      std::to_string(options_.max_response_bytes) +
                                                      " bytes");
    }
    if (error == bhttp::error::end_of_stream || error == bhttp::error::partial_message) {
      return Unavailable(what + ": connection closed before a complete response");
    }
    return Unavailable(what + ": " + error.message());
  }

  auto& message = parser.get();
  Response response;
  response.status = static_cast<int>(message.result_int());
  response.content_type = std::string(message[bhttp::field::content_type]);
  for (const auto& field : message) {
    response.headers.emplace_back(ToLower(field.name_string()), std::string(field.value()));
  }
  response.body = std::move(message.body());
  return response;
}

}  // namespace fleetwatch::http
