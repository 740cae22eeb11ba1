#include "api/routes.h"

#include <gtest/gtest.h>

namespace fleetwatch::api {
namespace {

TEST(NeedsUserToken, EverythingUnderApiButPrometheusServiceDiscovery) {
  EXPECT_TRUE(NeedsUserToken("/api/server/info"));
  EXPECT_TRUE(NeedsUserToken("/api/project/main/runs"));
  EXPECT_TRUE(NeedsUserToken("/api/prometheus/sd/x"));
  EXPECT_FALSE(NeedsUserToken("/api/prometheus/sd"));
  EXPECT_FALSE(NeedsUserToken("/api/prometheus/sd/"));  // the same route for the router
  EXPECT_FALSE(NeedsUserToken("/metrics"));
  EXPECT_FALSE(NeedsUserToken("/"));
  EXPECT_FALSE(NeedsUserToken("/assets/app.js"));
}

}  // namespace
}  // namespace fleetwatch::api
