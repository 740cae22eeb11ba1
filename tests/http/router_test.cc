#include "http/router.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

namespace fleetwatch::http {
namespace {

namespace json = boost::json;

// A request as the server builds it: the raw target, the decoded path beside it.
Request MakeRequest(std::string method, std::string target) {
  Request request;
  request.method = std::move(method);
  request.target = target;
  request.path = target.substr(0, target.find('?'));
  return request;
}

// A handler answering with its own name, so tests see which route ran.
Handler Named(std::string name) {
  return [name](Request&) {
    Response response;
    response.content_type = "text/plain";
    response.body = name;
    return response;
  };
}

std::string ErrorCode(const Response& response) {
  json::value value = json::parse(response.body);
  return std::string(value.at("error").at("code").as_string());
}

TEST(Router, MatchesLiteralRoute) {
  Router router;
  router.Add("GET", "/api/server/info", Named("info"));
  Request request = MakeRequest("GET", "/api/server/info");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "info");
}

TEST(Router, CapturesNamedSegments) {
  Router router;
  router.Add("GET", "/api/project/{project}/runs/{run}", [](Request& request) {
    Response response;
    response.body = request.path_params.at("project") + "|" + request.path_params.at("run");
    return response;
  });
  Request request = MakeRequest("GET", "/api/project/main/runs/train-1");
  EXPECT_EQ(router.Dispatch(request).body, "main|train-1");
  EXPECT_EQ(request.path_params.size(), 2u);
}

TEST(Router, PercentDecodesParams) {
  Router router;
  router.Add("GET", "/api/project/{project}/runs/{run}", [](Request& request) {
    Response response;
    response.body = request.path_params.at("project") + "|" + request.path_params.at("run");
    return response;
  });
  Request request = MakeRequest("GET", "/api/project/my%20proj/runs/r%C3%A9%2Bx+y");
  EXPECT_EQ(router.Dispatch(request).body, "my proj|r\xC3\xA9+x+y");
}

TEST(Router, EncodedSlashStaysInsideOneParam) {
  Router router;
  router.Add("GET", "/files/{a}/{b}", Named("two"));
  router.Add("GET", "/files/{name}", [](Request& request) {
    Response response;
    response.body = "one:" + request.path_params.at("name");
    return response;
  });
  Request request = MakeRequest("GET", "/files/a%2Fb");
  EXPECT_EQ(router.Dispatch(request).body, "one:a/b");
  Request two = MakeRequest("GET", "/files/a/b");
  EXPECT_EQ(router.Dispatch(two).body, "two");
}

TEST(Router, ParamDoesNotMatchAnEmptySegment) {
  Router router;
  router.Add("GET", "/api/project/{project}/runs", Named("runs"));
  Request request = MakeRequest("GET", "/api/project//runs");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 404);
}

TEST(Router, UnknownPathIs404JsonNotFound) {
  Router router;
  router.Add("GET", "/api/runs", Named("runs"));
  Request request = MakeRequest("GET", "/api/nothing");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(ErrorCode(response), "not_found");
  Request longer = MakeRequest("GET", "/api/runs/extra");
  EXPECT_EQ(router.Dispatch(longer).status, 404);
}

TEST(Router, OtherMethodIs405WithAllowHeader) {
  Router router;
  router.Add("GET", "/api/runs", Named("list"));
  router.Add("POST", "/api/runs", Named("create"));
  router.Add("GET", "/api/runs", Named("duplicate"));
  Request request = MakeRequest("DELETE", "/api/runs");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(ErrorCode(response), "method_not_allowed");
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].first, "Allow");
  EXPECT_EQ(response.headers[0].second, "GET, POST");
}

TEST(Router, MethodMatchingIsExact) {
  Router router;
  router.Add("GET", "/x", Named("get"));
  Request request = MakeRequest("get", "/x");
  EXPECT_EQ(router.Dispatch(request).status, 405);
}

TEST(Router, PrefixRouteMatchesEverythingUnderIt) {
  Router router;
  router.Add("GET", "/static/*", [](Request& request) {
    Response response;
    response.body = "static:" + request.path_params.at("*");
    return response;
  });
  Request deep = MakeRequest("GET", "/static/js/app%20v2.js?v=3");
  EXPECT_EQ(router.Dispatch(deep).body, "static:js/app v2.js");
  Request bare = MakeRequest("GET", "/static");
  EXPECT_EQ(router.Dispatch(bare).body, "static:");
  Request other = MakeRequest("GET", "/staticx/a");
  EXPECT_EQ(router.Dispatch(other).status, 404);
}

TEST(Router, CatchAllPrefixRouteComesAfterSpecificRoutes) {
  Router router;
  router.Add("GET", "/api/runs", Named("runs"));
  router.Add("GET", "/*", Named("ui"));
  Request api = MakeRequest("GET", "/api/runs");
  EXPECT_EQ(router.Dispatch(api).body, "runs");
  Request root = MakeRequest("GET", "/");
  EXPECT_EQ(router.Dispatch(root).body, "ui");
  Request page = MakeRequest("GET", "/runs/abc");
  EXPECT_EQ(router.Dispatch(page).body, "ui");
}

TEST(Router, TrailingSlashMatchesTheSameRoute) {
  Router router;
  router.Add("GET", "/api/runs", Named("runs"));
  Request request = MakeRequest("GET", "/api/runs/");
  EXPECT_EQ(router.Dispatch(request).body, "runs");
  Request query = MakeRequest("GET", "/api/runs/?limit=5");
  EXPECT_EQ(router.Dispatch(query).body, "runs");
}

TEST(Router, FirstMatchingRouteWins) {
  Router router;
  router.Add("GET", "/api/runs/new", Named("literal"));
  router.Add("GET", "/api/runs/{run}", Named("param"));
  Request literal = MakeRequest("GET", "/api/runs/new");
  EXPECT_EQ(router.Dispatch(literal).body, "literal");
  Request param = MakeRequest("GET", "/api/runs/r1");
  EXPECT_EQ(router.Dispatch(param).body, "param");
}

TEST(Router, RootRouteMatchesOnlyRoot) {
  Router router;
  router.Add("GET", "/", Named("root"));
  Request root = MakeRequest("GET", "/");
  EXPECT_EQ(router.Dispatch(root).body, "root");
  Request other = MakeRequest("GET", "/a");
  EXPECT_EQ(router.Dispatch(other).status, 404);
}

TEST(Router, UsesDecodedPathWhenRequestHasNoTarget) {
  Router router;
  router.Add("GET", "/api/project/{project}", [](Request& request) {
    Response response;
    response.body = request.path_params.at("project");
    return response;
  });
  Request request;
  request.method = "GET";
  request.path = "/api/project/100%";
  EXPECT_EQ(router.Dispatch(request).body, "100%");
}

}  // namespace
}  // namespace fleetwatch::http
