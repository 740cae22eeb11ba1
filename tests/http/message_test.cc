#include "http/message.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

namespace fleetwatch::http {
namespace {

namespace json = boost::json;
using namespace std::string_literals;

// Parses `text` strictly (Boost.JSON validates UTF-8); fails the test when it is not JSON.
json::value ParseJson(const std::string& text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not valid JSON: " << text << " (" << ec.message() << ")";
  return value;
}

TEST(RequestHeader, LookupIgnoresCase) {
  Request request;
  request.headers = {{"content-type", "application/yaml"}, {"x-a", "1"}, {"x-a", "2"}};
  EXPECT_EQ(request.Header("Content-Type"), "application/yaml");
  EXPECT_EQ(request.Header("CONTENT-TYPE"), "application/yaml");
  EXPECT_EQ(request.Header("X-A"), "1");
  EXPECT_EQ(request.Header("authorization"), "");
}

TEST(JsonError, BodyHasTheDocumentedShape) {
  Response response = JsonError(404, "not_found", "run r1 not found");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(response.body, R"({"error":{"code":"not_found","message":"run r1 not found"}})");
}

TEST(JsonEscape, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonEscape("say \"hi\""), R"(say \"hi\")");
  EXPECT_EQ(JsonEscape("C:\\dir"), R"(C:\\dir)");
  EXPECT_EQ(JsonEscape("a\nb\r\tc"), R"(a\nb\r\tc)");
  EXPECT_EQ(JsonEscape("\x01\x1f\b\f"s), R"(\u0001\u001f\b\f)");
  EXPECT_EQ(JsonEscape("nul\0end"s), R"(nul\u0000end)");
  EXPECT_EQ(JsonEscape("plain text/ok"), "plain text/ok");
}

TEST(JsonEscape, PassesValidUtf8Through) {
  const std::string text = "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x9A\x80";  // café 日本 🚀
  EXPECT_EQ(JsonEscape(text), text);
}

TEST(JsonEscape, ReplacesEachInvalidUtf8ByteWithReplacementCharacter) {
  const std::string replacement = "\xEF\xBF\xBD";
  EXPECT_EQ(JsonEscape("a\xFF"
                       "b"),
            "a" + replacement + "b");
  EXPECT_EQ(JsonEscape("\xC3"), replacement);                    // truncated sequence
  EXPECT_EQ(JsonEscape("\xC0\xAF"), replacement + replacement);  // overlong '/'
  EXPECT_EQ(JsonEscape("\xED\xA0\x80"), replacement + replacement + replacement);  // surrogate
  EXPECT_EQ(JsonEscape("\xF4\x90\x80\x80").substr(0, 3), replacement);             // above U+10FFFF
}

TEST(JsonError, HostileTextStillYieldsValidJsonThatRoundTrips) {
  const std::string cases[] = {
      "quote \" and backslash \\",
      "line\nbreak\r\n",
      "controls \x01\x02\x1f\x7f and nul \0."s,
      "</script><script>alert(\"x\")</script>",
      "caf\xC3\xA9 \xF0\x9F\x9A\x80",
      "{\"error\": {\"code\": \"fake\"}}",
  };
  for (const std::string& text : cases) {
    Response response = JsonError(400, "bad_request", text);
    json::value value = ParseJson(response.body);
    ASSERT_TRUE(value.is_object()) << response.body;
    EXPECT_EQ(value.at("error").at("code").as_string(), "bad_request");
    EXPECT_EQ(std::string(value.at("error").at("message").as_string()), text);
  }
}

TEST(JsonError, InvalidUtf8StillYieldsValidJson) {
  const std::string cases[] = {
      "\xFF\xFE",
      "truncated \xE6\x97",
      "overlong \xC0\xAF \xE0\x80\xAF",
      "surrogate \xED\xA0\x80",
      "lone continuation \x80\xBF",
      "mixed \"\xFF\"\n\xC3",
  };
  for (const std::string& text : cases) {
    Response response = JsonError(500, "internal", text);
    json::value value = ParseJson(response.body);
    ASSERT_TRUE(value.is_object()) << response.body;
    EXPECT_EQ(value.at("error").at("code").as_string(), "internal");
  }
  // The code is escaped as well.
  json::value value = ParseJson(JsonError(400, "we\"ird\xFF", "m").body);
  ASSERT_TRUE(value.is_object());
}

TEST(UrlEncode, KeepsUnreservedAndEncodesEverythingElse) {
  EXPECT_EQ(UrlEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(UrlEncode("a b/c?d=e&f#g+h%"), "a%20b%2Fc%3Fd%3De%26f%23g%2Bh%25");
  EXPECT_EQ(UrlEncode("caf\xC3\xA9"), "caf%C3%A9");
  EXPECT_EQ(UrlEncode(""), "");
}

}  // namespace
}  // namespace fleetwatch::http
