// The routes that serve the embedded web UI, through a real Router, without sockets.
#include "ui/ui_route.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <string>

#include "http/router.h"
#include "ui/assets.h"

namespace fleetwatch::ui {
namespace {

std::string Header(const http::Response& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "";
}

http::Request Get(std::string target,
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::Request request;
  request.method = "GET";
  request.target = target;
  request.path = target.substr(0, target.find('?'));
  request.headers = std::move(headers);
  return request;
}

class UiRouteTest : public ::testing::Test {
 protected:
  void SetUp() override { AddUiRoutes(router_); }
  http::Response Dispatch(http::Request request) { return router_.Dispatch(request); }
  http::Router router_;
};

TEST_F(UiRouteTest, ServesThePageAtTheRootWithStrictSecurityHeaders) {
  http::Response r = Dispatch(Get("/"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(r.body.find(R"(<script type="module" src="/assets/js/main.js">)"), std::string::npos);
  const std::string csp = Header(r, "Content-Security-Policy");
  EXPECT_EQ(csp, kContentSecurityPolicy);
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos);
  EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(Header(r, "X-Frame-Options"), "DENY");
  EXPECT_EQ(Header(r, "Referrer-Policy"), "no-referrer");
  EXPECT_EQ(Header(r, "Cache-Control"), "no-cache");
  EXPECT_TRUE(std::regex_match(Header(r, "ETag"), std::regex(R"("[0-9a-f]{20}")")))
      << Header(r, "ETag");
}

TEST_F(UiRouteTest, ServesEveryEmbeddedAssetWithItsTypeAndSecurityHeaders) {
  ASSERT_GE(EmbeddedAssets().size(), 5u);
  for (const EmbeddedAsset& asset : EmbeddedAssets()) {
    SCOPED_TRACE(std::string(asset.path));
    http::Response r = Dispatch(Get(std::string(asset.path)));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, asset.body);
    EXPECT_FALSE(r.body.empty());
    EXPECT_EQ(Header(r, "ETag"), asset.etag);
    EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(Header(r, "Content-Security-Policy"), kContentSecurityPolicy);
    const std::string ext = std::filesystem::path(std::string(asset.path)).extension().string();
    const std::map<std::string, std::string> types = {{".js", "text/javascript; charset=utf-8"},
                                                      {".css", "text/css; charset=utf-8"},
                                                      {".svg", "image/svg+xml"}};
    const std::string want = asset.path == "/" ? "text/html; charset=utf-8" : types.at(ext);
    EXPECT_EQ(r.content_type, want);
  }
  EXPECT_NE(FindAsset("/assets/vendor/uPlot.esm.js"), nullptr);
  EXPECT_NE(FindAsset("/assets/vendor/uPlot.min.css"), nullptr);
}

TEST_F(UiRouteTest, AMatchingIfNoneMatchGets304WithoutABody) {
  const std::string etag(FindAsset("/assets/js/main.js")->etag);
  for (const std::string& header :
       {etag, "W/" + etag, "\"other\", " + etag, " ,, \t" + etag + " ", std::string("*")}) {
    SCOPED_TRACE(header);
    http::Response r = Dispatch(Get("/assets/js/main.js", {{"if-none-match", header}}));
    EXPECT_EQ(r.status, 304);
    EXPECT_EQ(r.body, "");
    EXPECT_EQ(Header(r, "ETag"), etag);
    EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
  }
  for (const char* header : {"\"old\"", " , ", "W/", ""}) {
    SCOPED_TRACE(header);
    http::Response stale = Dispatch(Get("/assets/js/main.js", {{"if-none-match", header}}));
    EXPECT_EQ(stale.status, 200);
    EXPECT_FALSE(stale.body.empty());
  }
}

TEST_F(UiRouteTest, UnknownAndTraversingPathsAreNotFound) {
  for (const char* target :
       {"/assets/nope.js", "/assets/", "/assets/%2e%2e/index.html", "/assets/../fleetwatch.db",
        "/assets/js/../../", "/index.html", "/assets/js%2Fmain.js%00"}) {
    SCOPED_TRACE(target);
    http::Response r = Dispatch(Get(target));
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.content_type, "application/json");
  }
}

TEST(UiRoutes, LeaveTheApiAndMetricsToTheirOwnRoutes) {
  http::Router router;
  AddUiRoutes(router);  // registered first on purpose: the order must not matter
  auto stub = [](std::string body) {
    return [body](http::Request&) {
      http::Response r;
      r.body = body;
      return r;
    };
  };
  router.Add("GET", "/api/users/me", stub("api"));
  router.Add("GET", "/metrics", stub("metrics"));
  http::Request me = Get("/api/users/me");
  EXPECT_EQ(router.Dispatch(me).body, "api");
  http::Request metrics = Get("/metrics");
  EXPECT_EQ(router.Dispatch(metrics).body, "metrics");
  http::Request unknown = Get("/api/no-such-route");
  http::Response r = router.Dispatch(unknown);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no route"), std::string::npos) << r.body;
  http::Request post = Get("/");
  post.method = "POST";
  EXPECT_EQ(router.Dispatch(post).status, 405);
}

// Every file the page and the modules load is embedded: a typo in an import would otherwise
// surface only in a browser.
TEST(UiAssets, ThePageAndItsModulesReferenceOnlyEmbeddedFiles) {
  const std::regex page_reference(R"re((?:src|href)="(/assets/[^"]+)")re");
  const std::string page(FindAsset("/")->body);
  int found = 0;
  for (std::sregex_iterator it(page.begin(), page.end(), page_reference), end; it != end; ++it) {
    EXPECT_NE(FindAsset((*it)[1].str()), nullptr) << (*it)[1].str();
    ++found;
  }
  EXPECT_GE(found, 4);
  const std::regex import(R"(from '(\.{1,2}/[^']+)')");
  for (const EmbeddedAsset& asset : EmbeddedAssets()) {
    if (!asset.path.starts_with("/assets/js/")) continue;
    const std::string body(asset.body);
    for (std::sregex_iterator it(body.begin(), body.end(), import), end; it != end; ++it) {
      std::filesystem::path target =
          (std::filesystem::path(std::string(asset.path)).parent_path() / (*it)[1].str())
              .lexically_normal();
      EXPECT_NE(FindAsset(target.string()), nullptr) << asset.path << " imports " << (*it)[1];
    }
  }
}

}  // namespace
}  // namespace fleetwatch::ui
