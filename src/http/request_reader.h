#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>

#include "http/message.h"
#include "util/status.h"

namespace fleetwatch::http {

// How the server reads a request off a connection: Beast's parser with the server's limits, then
// the conversion of the parsed message into the Request handlers see. The request is untrusted
// input. Pure functions; thread-safe.

// Request line plus headers; larger ones get 431.
inline constexpr uint32_t kRequestHeaderLimitBytes = 64 * 1024;

using RequestMessage = boost::beast::http::request<boost::beast::http::string_body>;
using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// Sets the server's limits on a fresh parser: kRequestHeaderLimitBytes for the head,
// `body_limit_bytes` for the body (larger bodies get 413).
void ApplyRequestLimits(RequestParser& parser, size_t body_limit_bytes);

// The Request of a complete message: method, target, percent-decoded path and query (the last of
// a repeated parameter wins), headers with lowercased names, and the body, which is moved out of
// `message`. InvalidArgument "invalid request target" when the target is not in origin form
// (a path and an optional query).
Result<Request> ToRequest(RequestMessage& message);

}  // namespace fleetwatch::http
