// The bytes a client sends the server, read as the server reads them (http/request_reader.h):
// Beast's request parser with the server's limits, the Authorization header through ParseBearer
// (http/bearer.h) once the head is in, then ToRequest; keep-alive requests one after another.
// The first byte splits the input into the chunks the bytes arrive in.
//
// Oracle: no crash or sanitizer report; what is accepted keeps the project's header rules
// (http/header_rules.h): the method and header names are tokens, header values are header-safe
// (a handler may echo them), names are lowercased; a bearer token is non-empty printable ASCII
// without blanks, taken from the header value; the body keeps the body limit.

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "http/bearer.h"
#include "http/header_rules.h"
#include "http/request_reader.h"
#include "http/server.h"

// Built with BOOST_ENABLE_ASSERT_HANDLER: Boost's assertions stay on and abort, except one.
// Boost 1.81's Beast asserts that a chunked body's final chunk is parsed again with at least 5
// bytes, while a client may send its trailer a byte at a time; the code after the assertion
// handles that case (need_more), builds with NDEBUG (make run) do not check it, and later Boost
// releases relax the assertion. Only that assertion is let through.
namespace boost {
void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  if (std::string_view(expr) == "n >= 5" &&
      std::string_view(function).find("parse_chunk_header") != std::string_view::npos) {
    return;
  }
  fprintf(stderr, "%s:%ld: %s: assertion failed: %s\n", file, line, function, expr);
  abort();
}
void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file,
                          long line) {
  fprintf(stderr, "%s:%ld: %s: assertion failed: %s (%s)\n", file, line, function, expr, msg);
  abort();
}
}  // namespace boost

namespace fleetwatch::http {
namespace {

void CheckBearer(std::string_view authorization) {
  const std::optional<std::string_view> token = ParseBearer(authorization);
  if (!token) return;
  FW_CHECK(!token->empty(), "an empty bearer token");
  FW_CHECK(token->data() >= authorization.data() &&
               token->data() + token->size() <= authorization.data() + authorization.size(),
           "a bearer token from outside the header value");
  for (char c : *token) FW_CHECK(c > ' ' && c <= '~', "a blank or non-printable token byte");
}

void CheckRequest(const Request& request, size_t body_limit) {
  FW_CHECK(IsToken(request.method), "a method that is not a token");
  FW_CHECK(request.body.size() <= body_limit, "a body over the limit");
  FW_CHECK(request.path.empty() || request.path.front() == '/', "a path not starting with /");
  for (const auto& [name, value] : request.headers) {
    FW_CHECK(IsToken(name), "a header name that is not a token");
    FW_CHECK(ToLower(name) == name, "a header name not lowercased");
    FW_CHECK(IsHeaderSafe(value), "a header value with CR, LF or NUL");
  }
  CheckBearer(request.Header("authorization"));
}

}  // namespace
}  // namespace fleetwatch::http

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetwatch::http;
  namespace bhttp = boost::beast::http;
  if (size == 0) return 0;
  const size_t chunk = data[0] == 0 ? size : data[0];
  std::string_view input = fleetwatch::fuzz::AsText(data + 1, size - 1);
  CheckBearer(input.substr(0, 256));
  const size_t body_limit = ServerOptions{}.body_limit_bytes;

  for (int requests = 0; requests < 16 && !input.empty(); ++requests) {
    RequestParser parser;
    ApplyRequestLimits(parser, body_limit);
    boost::beast::error_code ec;
    bool head_checked = false;
    // Bytes arrive `chunk` at a time; the parser holds back what it cannot use yet, as the
    // server's buffer does.
    size_t available = std::min(chunk, input.size());
    while (!parser.is_done()) {
      const size_t used = parser.put(boost::asio::buffer(input.data(), available), ec);
      input.remove_prefix(used);
      available -= used;
      if (ec == bhttp::error::need_more || (!ec && used == 0)) {
        ec = {};
        if (available == input.size()) {  // all bytes are in: the client closed
          parser.put_eof(ec);
          break;
        }
        available = std::min(available + chunk, input.size());
        continue;
      }
      if (ec) break;
      if (parser.is_header_done() && !head_checked) {
        head_checked = true;
        CheckBearer(parser.get()[bhttp::field::authorization]);
      }
    }
    if (ec || !parser.is_done()) return 0;  // the server answers 4xx or closes
    fleetwatch::Result<Request> request = ToRequest(parser.get());
    if (!request.ok()) {
      FW_CHECK(request.status().code() == fleetwatch::StatusCode::kInvalidArgument,
               "not InvalidArgument");
      return 0;
    }
    CheckRequest(*request, body_limit);
    if (!parser.get().keep_alive()) return 0;
  }
  return 0;
}
