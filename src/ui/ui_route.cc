#include "ui/ui_route.h"

#include <algorithm>
#include <string>

#include "ui/assets.h"

namespace fleetwatch::ui {
namespace {

// If-None-Match is "*" or a list of entity tags, each possibly weak (W/"..."); GET compares
// weakly (RFC 9110 13.1.2).
bool MatchesIfNoneMatch(std::string_view header, std::string_view etag) {
  constexpr std::string_view kSpace = " \t";
  for (size_t pos = 0; pos < header.size();) {
    const size_t comma = std::min(header.find(',', pos), header.size());
    std::string_view tag = header.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t first = tag.find_first_not_of(kSpace);
    if (first == std::string_view::npos) continue;
    tag = tag.substr(first, tag.find_last_not_of(kSpace) - first + 1);
    if (tag == "*") return true;
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
  }
  return false;
}

void AddSecurityHeaders(http::Response& response) {
  response.headers.emplace_back("Content-Security-Policy", std::string(kContentSecurityPolicy));
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("Referrer-Policy", "no-referrer");
  response.headers.emplace_back("X-Frame-Options", "DENY");
}

}  // namespace

http::Response ServeAsset(const http::Request& request, std::string_view path) {
  const EmbeddedAsset* asset = FindAsset(path);
  if (asset == nullptr) {
    http::Response missing = http::JsonError(404, "not_found", "no such file: " + request.path);
    AddSecurityHeaders(missing);
    return missing;
  }
  http::Response response;
  response.headers.emplace_back("ETag", std::string(asset->etag));
  response.headers.emplace_back("Cache-Control", "no-cache");
  AddSecurityHeaders(response);
  if (MatchesIfNoneMatch(request.Header("if-none-match"), asset->etag)) {
    response.status = 304;
    return response;
  }
  response.content_type = std::string(asset->content_type);
  response.body = std::string(asset->body);
  return response;
}

void AddUiRoutes(http::Router& router) {
  router.Add("GET", "/", [](http::Request& request) { return ServeAsset(request, "/"); });
  router.Add("GET", "/assets/*", [](http::Request& request) {
    return ServeAsset(request, "/assets/" + request.path_params.at("*"));
  });
}

}  // namespace fleetwatch::ui
