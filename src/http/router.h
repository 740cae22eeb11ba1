#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/message.h"

namespace fleetwatch::http {

using Handler = std::function<Response(Request&)>;

// Maps method + path pattern to handlers. Patterns are literal segments and "{name}" segments,
// e.g. "/api/project/{project}/runs/{run}"; a "{name}" segment matches one non-empty segment
// and lands in Request::path_params. Matching splits the still-encoded path (Request::target)
// on '/' and then percent-decodes each segment, so "a%2Fb" is one segment "a/b"; a Request
// without a target is matched on its decoded `path`. One trailing slash is ignored ("/api/runs/"
// matches "/api/runs"). Method names match exactly (case-sensitive).
// Not thread-safe while adding routes; Dispatch is (routes are added before serving).
class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler);
  // A pattern ending in "/*" matches that prefix and any path under it (for static files); the
  // decoded rest of the path ("" for the prefix itself) lands in path_params["*"]. "/*" matches
  // every path. Handlers must not trust "*" as a file name: it may contain "..".
  // Calls the handler of the first matching route (in the order added) and returns its response;
  // handler exceptions propagate. No path match → 404 JSON error "not_found"; a path match with
  // another method only → 405 JSON error "method_not_allowed" with an Allow header.
  Response Dispatch(Request& request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    bool prefix = false;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace fleetwatch::http
