#pragma once

#include <string_view>

#include "http/message.h"
#include "http/router.h"

namespace fleetwatch::ui {

// The Content-Security-Policy of every UI response: scripts, styles and API calls from this
// server only, no inline script or style, no framing.
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Answers a GET of the embedded asset at `path` ("/" is the page itself): the body with its
// content type, a strong ETag and Cache-Control "no-cache" (revalidate every time, which the
// ETag makes cheap: If-None-Match naming it gets 304 without a body), and the security headers
// (CSP above, X-Content-Type-Options nosniff, Referrer-Policy no-referrer, X-Frame-Options
// DENY). An unknown path is 404 JSON "not_found". Thread-safe.
http::Response ServeAsset(const http::Request& request, std::string_view path);

// Registers GET / and GET /assets/* for the web UI. Nothing else: /api/... and /metrics stay
// with their own routes whatever the order of registration.
void AddUiRoutes(http::Router& router);

}  // namespace fleetwatch::ui
