#include "http/bearer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fleetwatch::http {
namespace {

TEST(ParseBearer, TheSchemeIsCaseInsensitiveAndTheTokenExact) {
  for (const char* header : {"Bearer tok-123", "bearer tok-123", "BEARER tok-123", "bEaReR tok-123",
                             "Bearer   tok-123", "  Bearer tok-123  "}) {
    std::optional<std::string_view> token = ParseBearer(header);
    ASSERT_TRUE(token.has_value()) << header;
    EXPECT_EQ(*token, "tok-123") << header;
  }
  EXPECT_EQ(ParseBearer("Bearer *&!'\"#:x").value(), "*&!'\"#:x");  // printable ASCII
}

TEST(ParseBearer, RefusesEverythingElse) {
  for (const std::string& header : std::vector<std::string>{
           "", "Bearer", "Bearer ", "Bearer    ", "Bearertok", "Bearer\ttok", "Basic dXNlcjpwYXNz",
           "Token tok", "Bearer tok junk", "Bearer tok\tjunk", "Bearer tok\x01", "Bearer t\xc3\xa9",
           "Bear tok", " Bearer", std::string("Bearer to\0k", 11)}) {
    EXPECT_FALSE(ParseBearer(header).has_value()) << "[" << header << "]";
  }
}

}  // namespace
}  // namespace fleetwatch::http
