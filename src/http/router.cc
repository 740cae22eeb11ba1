#include "http/router.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <utility>

namespace fleetwatch::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; a '%' not followed by two hex digits stays as it is ('+' is not a space
// in a path).
std::string PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int hi = HexValue(text[i + 1]);
      const int lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// Splits "/a/b/" into {"a", "b"}: the leading slash is skipped and one trailing slash ignored,
// so "/api/runs/" and "/api/runs" are the same path. Empty segments inside are kept.
std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return segments;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      segments.push_back(path.substr(start));
      break;
    }
    segments.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return segments;
}

bool IsParam(std::string_view segment) {
  return segment.size() >= 3 && segment.front() == '{' && segment.back() == '}';
}

// The request's path split into decoded segments. Splitting happens on the encoded path, so an
// encoded "%2F" stays inside its segment. A Request built without a target (as tests and
// in-process callers may do) falls back to the already decoded `path`.
std::vector<std::string> RequestSegments(const Request& request) {
  std::vector<std::string> out;
  if (request.target.empty()) {
    for (std::string_view s : SplitPath(request.path)) out.emplace_back(s);
    return out;
  }
  std::string_view encoded = request.target;
  encoded = encoded.substr(0, encoded.find_first_of("?#"));
  for (std::string_view s : SplitPath(encoded)) out.push_back(PercentDecode(s));
  return out;
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler) {
  Route route;
  route.method = std::move(method);
  std::string_view view = pattern;
  if (view == "*" || view == "/*") {
    route.prefix = true;
    view = "/";
  } else if (view.size() >= 2 && view.substr(view.size() - 2) == "/*") {
    route.prefix = true;
    view.remove_suffix(2);
  }
  for (std::string_view s : SplitPath(view)) route.segments.emplace_back(s);
  route.handler = std::move(handler);
  routes_.push_back(std::move(route));
}

Response Router::Dispatch(Request& request) const {
  const std::vector<std::string> segments = RequestSegments(request);
  std::vector<std::string> allowed;
  for (const Route& route : routes_) {
    if (route.prefix ? segments.size() < route.segments.size()
                     : segments.size() != route.segments.size()) {
      continue;
    }
    std::map<std::string, std::string> params;
    bool match = true;
    for (size_t i = 0; i < route.segments.size() && match; ++i) {
      const std::string& want = route.segments[i];
      if (IsParam(want)) {
        if (segments[i].empty()) {
          match = false;
        } else {
          params[want.substr(1, want.size() - 2)] = segments[i];
        }
      } else {
        match = want == segments[i];
      }
    }
    if (!match) continue;
    if (route.method != request.method) {
      if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
        allowed.push_back(route.method);
      }
      continue;
    }
    if (route.prefix) {
      std::string rest;
      for (size_t i = route.segments.size(); i < segments.size(); ++i) {
        if (i > route.segments.size()) rest += '/';
        rest += segments[i];
      }
      params["*"] = std::move(rest);
    }
    request.path_params = std::move(params);
    return route.handler(request);
  }
  if (!allowed.empty()) {
    std::string allow;
    for (const std::string& method : allowed) {
      if (!allow.empty()) allow += ", ";
      allow += method;
    }
    Response response =
        JsonError(405, "method_not_allowed",
                  "method " + request.method + " is not allowed here; use " + allow);
    response.headers.emplace_back("Allow", std::move(allow));
    return response;
  }
  return JsonError(404, "not_found", "no route for " + request.method + " " + request.path);
}

}  // namespace fleetwatch::http
