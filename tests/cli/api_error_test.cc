#include "cli/api_error.h"

#include <gtest/gtest.h>

namespace fleetwatch::cli {
namespace {

TEST(ErrorFromReply, UsesTheServersMessage) {
  Status s =
      ErrorFromReply(404, R"({"error": {"code": "not_found", "message": "run x not found"}})");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "run x not found");
}

TEST(ErrorFromReply, TellsToConfigureATokenOn401) {
  Status s = ErrorFromReply(401, R"({"error": {"code": "unauthenticated", "message": "bad"}})");
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "the server rejected the token (run fleetwatch config --token ...)");
}

TEST(ErrorFromReply, DistinguishesTheTwoConflicts) {
  EXPECT_EQ(ErrorFromReply(409, R"({"error": {"code": "already_exists", "message": "m"}})").code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(
      ErrorFromReply(409, R"({"error": {"code": "failed_precondition", "message": "m"}})").code(),
      StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      ErrorFromReply(403, R"({"error": {"code": "permission_denied", "message": "m"}})").code(),
      StatusCode::kPermissionDenied);
}

TEST(ErrorFromReply, FallsBackToTheHttpStatusForOtherBodies) {
  EXPECT_EQ(ErrorFromReply(502, "<html>Bad Gateway</html>").message(),
            "the server answered HTTP 502");
  EXPECT_EQ(ErrorFromReply(500, R"({"error": "flat"})").message(), "the server answered HTTP 500");
  EXPECT_EQ(ErrorFromReply(400, "").code(), StatusCode::kInvalidArgument);
}

TEST(ConnectionError, NamesTheUrl) {
  EXPECT_EQ(ConnectionError("http://127.0.0.1:1", Unavailable("connection refused")).message(),
            "cannot reach the server at http://127.0.0.1:1: connection refused");
  EXPECT_EQ(ConnectionError("http://127.0.0.1:1",
                            Unavailable("cannot reach http://127.0.0.1:1: Connection refused"))
                .message(),
            "cannot reach the server at http://127.0.0.1:1: Connection refused");
}

}  // namespace
}  // namespace fleetwatch::cli
