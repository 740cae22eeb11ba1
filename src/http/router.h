#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/message.h"

namespace fleetwatch::http {

using Handler = std::function<Response(Request&)>;

// Maps method + path pattern to handlers. Patterns are literal segments and "{name}" segments,
// e.g. "/api/project/{project}/runs/{run}"; a "{name}" segment matches one non-empty segment
// and lands in Request::path_params. Not thread-safe while adding routes; Dispatch is.
class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler);
  // A pattern ending in "/*" matches any path under that prefix (for static files).
  // Calls the handler of the first matching route. No path match → 404 JSON error; a path match
  // with another method → 405 JSON error.
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
