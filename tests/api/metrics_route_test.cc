// GET /metrics without sockets: switch and token order, negotiation, gzip.
#include "api/metrics_route.h"

#include <gtest/gtest.h>

#include "expose/gzip.h"
#include "http/router.h"

namespace fleetwatch::api {
namespace {

constexpr TimeMicros kNow = 1'700'000'000'000'000;

class ServeMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    expose::FamilyId id =
        *snapshot_.RegisterFamily(expose::Section::kRun, "dstack_run_count_total",
                                  expose::MetricType::kCounter, "Total runs count");
    snapshot_.SetFragment(id, "a", expose::Fragment{"dstack_run_count_total 1.0\n", {}});
  }

  http::Response Get(const MetricsEndpointOptions& options,
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request request;
    request.method = "GET";
    request.path = request.target = "/metrics";
    request.headers = std::move(headers);
    http::Response response = ServeMetrics(request, options, snapshot_, clock_);
    if (response.shared_body) {
      EXPECT_EQ(response.body, "");
      response.body = *response.shared_body;  // what the server sends
    }
    return response;
  }

  expose::ExpositionSnapshot snapshot_;
  FakeClock clock_{kNow};
};

TEST_F(ServeMetricsTest, DisabledIsNotFound) { EXPECT_EQ(Get({false, std::nullopt}).status, 404); }

TEST_F(ServeMetricsTest, TheTokenIsCheckedBeforeTheSwitch) {
  MetricsEndpointOptions disabled{false, "secret"};
  http::Response missing = Get(disabled);
  EXPECT_EQ(missing.status, 403);
  EXPECT_NE(missing.body.find("Access denied"), std::string::npos);
  http::Response wrong = Get(disabled, {{"authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 403);
  EXPECT_NE(wrong.body.find("Invalid token"), std::string::npos);
  EXPECT_EQ(Get(disabled, {{"authorization", "Bearer secret"}}).status, 404);
}

TEST_F(ServeMetricsTest, OtherSchemesAreDeniedAndTheRightTokenServes) {
  MetricsEndpointOptions enabled{true, "secret"};
  EXPECT_NE(Get(enabled, {{"authorization", "Basic secret"}}).body.find("Access denied"),
            std::string::npos);
  EXPECT_NE(Get(enabled, {{"authorization", "Bearer"}}).body.find("Access denied"),
            std::string::npos);
  EXPECT_NE(Get(enabled, {{"authorization", "Bearer secretX"}}).body.find("Invalid token"),
            std::string::npos);
  http::Response ok = Get(enabled, {{"authorization", "bearer secret"}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(ok.body,
            "# HELP dstack_run_count_total Total runs count\n"
            "# TYPE dstack_run_count_total counter\n"
            "dstack_run_count_total 1.0\n");
}

TEST_F(ServeMetricsTest, AnswersTheTextFormatUnlessOpenMetricsIsSwitchedOn) {
  MetricsEndpointOptions plain{true, std::nullopt};
  http::Response text = Get(plain, {{"accept", "application/openmetrics-text; version=1.0.0"}});
  EXPECT_EQ(text.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_FALSE(text.body.ends_with("# EOF\n")) << text.body;
}

TEST_F(ServeMetricsTest, NegotiatesOpenMetricsAndGzip) {
  MetricsEndpointOptions enabled{true, std::nullopt, /*openmetrics=*/true};
  http::Response om = Get(enabled, {{"accept", "application/openmetrics-text; version=1.0.0"}});
  EXPECT_EQ(om.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
  EXPECT_TRUE(om.body.ends_with("# EOF\n")) << om.body;
  http::Response gz = Get(enabled, {{"accept-encoding", "deflate, GZIP;q=0.5"}});
  EXPECT_EQ(gz.status, 200);
  bool encoded = false;
  for (const auto& [name, value] : gz.headers)
    encoded |= name == "Content-Encoding" && value == "gzip";
  EXPECT_TRUE(encoded);
  EXPECT_EQ(gz.body, *snapshot_.Body(expose::Format::kText004, true, kNow));
}

TEST_F(ServeMetricsTest, TheCachedBodyIsSharedNotCopied) {
  http::Request request;
  request.method = "GET";
  request.path = request.target = "/metrics";
  http::Response a = ServeMetrics(request, {true, std::nullopt}, snapshot_, clock_);
  http::Response b = ServeMetrics(request, {true, std::nullopt}, snapshot_, clock_);
  ASSERT_NE(a.shared_body, nullptr);
  EXPECT_EQ(a.shared_body.get(), b.shared_body.get());
}

// GET /metrics serves the fleet's snapshot, GET /metrics/replica the process' own, with the same
// token and switch.
TEST_F(ServeMetricsTest, TheReplicaRouteServesItsOwnSnapshotUnderTheSameRules) {
  expose::ExpositionSnapshot replica;
  const expose::FamilyId id =
      *replica.RegisterFamily(expose::Section::kServer, "fleetwatch_agent_poll_errors_total",
                              expose::MetricType::kCounter, "Errors");
  replica.SetFragment(id, "all", expose::Fragment{"fleetwatch_agent_poll_errors_total 2.0\n"});
  for (const bool enabled : {true, false}) {
    http::Router router;
    AddMetricsRoute(router, {enabled, "secret"}, snapshot_, replica, clock_);
    const auto get = [&router](const std::string& path, const std::string& authorization) {
      http::Request request;
      request.method = "GET";
      request.path = request.target = path;
      if (!authorization.empty()) request.headers.emplace_back("authorization", authorization);
      http::Response response = router.Dispatch(request);
      if (response.shared_body) response.body = *response.shared_body;
      return response;
    };
    for (const std::string path : {"/metrics", "/metrics/replica"}) {
      EXPECT_EQ(get(path, "").status, 403) << path;
      EXPECT_EQ(get(path, "Bearer wrong").status, 403) << path;
      EXPECT_EQ(get(path, "Bearer secret").status, enabled ? 200 : 404) << path;
    }
    if (!enabled) continue;
    const http::Response fleet = get("/metrics", "Bearer secret");
    const http::Response own = get("/metrics/replica", "Bearer secret");
    EXPECT_NE(fleet.body.find("dstack_run_count_total 1.0\n"), std::string::npos) << fleet.body;
    EXPECT_EQ(fleet.body.find("fleetwatch_agent_poll_errors_total"), std::string::npos);
    EXPECT_EQ(own.body,
              "# HELP fleetwatch_agent_poll_errors_total Errors\n"
              "# TYPE fleetwatch_agent_poll_errors_total counter\n"
              "fleetwatch_agent_poll_errors_total 2.0\n");
    EXPECT_EQ(own.content_type, "text/plain; version=0.0.4; charset=utf-8");
  }
}

TEST(AcceptsGzip, ReadsCodingsAndRefusals) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("br, gzip;q=0.8"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip; q=0.000"));
  EXPECT_FALSE(AcceptsGzip("x-gzip2"));
}

}  // namespace
}  // namespace fleetwatch::api
