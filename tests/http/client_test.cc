#include "http/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "http/server.h"
#include "test_support.h"

namespace fleetwatch::http {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Answers with the target and the headers it received, as JSON.
Response EchoHeaders(Request& request) {
  json::object headers;
  for (const auto& [name, value] : request.headers) headers[name] = value;
  json::object object{
      {"target", request.target}, {"headers", std::move(headers)}, {"body", request.body}};
  Response response;
  response.body = json::serialize(object);
  return response;
}

class ClientTest : public ::testing::Test {
 protected:
  void StartServer(Handler handler = EchoHeaders) {
    server_ = std::make_unique<Server>(ServerOptions{}, std::move(handler));
    Result<uint16_t> port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    base_ = "http://127.0.0.1:" + std::to_string(*port);
  }

  std::unique_ptr<Server> server_;
  std::string base_;
};

TEST(ClientCreate, ParsesHostPortAndPrefix) {
  Result<Client> client = Client::Create("http://127.0.0.1:3000/base/");
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ(client->host(), "127.0.0.1");
  EXPECT_EQ(client->port(), 3000);

  Result<Client> plain = Client::Create("http://agent-7.example.com");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->host(), "agent-7.example.com");
  EXPECT_EQ(plain->port(), 80);

  Result<Client> ipv6 = Client::Create("http://[::1]:10998");
  ASSERT_TRUE(ipv6.ok()) << ipv6.status().ToString();
  EXPECT_EQ(ipv6->host(), "::1");
  EXPECT_EQ(ipv6->port(), 10998);
}

TEST(ClientCreate, TakesHttpsWithPort443ByDefault) {
  Result<Client> client = Client::Create("https://fleet.example.com");
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE(client->https());
  EXPECT_EQ(client->port(), 443);
  Result<Client> plain = Client::Create("http://fleet.example.com");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->https());
  EXPECT_EQ(plain->port(), 80);
}

TEST(ClientCreate, RefusesWhatIsNotHttpHostPortPrefix) {
  for (const char* url : {"", "not a url", "127.0.0.1:3000", "ftp://host", "http://",
                          "http://host:99999", "http://host:0", "http://host:abc",
                          "http://user:pw@host", "http://host/?q=1", "http://host/#frag"}) {
    Result<Client> client = Client::Create(url);
    EXPECT_FALSE(client.ok()) << url;
    if (!client.ok()) {
      EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument) << url;
    }
  }
}

TEST_F(ClientTest, SetsHostUserAgentAndContentLengthButNoContentType) {
  StartServer();
  Result<Client> client = Client::Create(base_);
  ASSERT_TRUE(client.ok());
  Result<Response> response = client->Send("POST", "/x?y=1", "abc", {{"X-Token", "t"}});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  json::value echo = json::parse(response->body);
  const json::object& headers = echo.at("headers").as_object();
  EXPECT_EQ(headers.at("host").as_string(), base_.substr(7));
  EXPECT_EQ(headers.at("user-agent").as_string(), "fleetwatch");
  EXPECT_EQ(headers.at("content-length").as_string(), "3");
  EXPECT_EQ(headers.at("x-token").as_string(), "t");
  EXPECT_FALSE(headers.contains("content-type"));
  EXPECT_EQ(echo.at("target").as_string(), "/x?y=1");
  EXPECT_EQ(echo.at("body").as_string(), "abc");

  Result<Response> typed = client->Send("POST", "/x", "{}", {{"Content-Type", "application/json"}});
  ASSERT_TRUE(typed.ok());
  EXPECT_EQ(json::parse(typed->body).at("headers").at("content-type").as_string(),
            "application/json");
}

TEST_F(ClientTest, PrependsTheBasePathPrefix) {
  StartServer();
  Result<Client> client = Client::Create(base_ + "/fleetwatch/");
  ASSERT_TRUE(client.ok());
  Result<Response> response = client->Send("GET", "/api/runs?limit=2");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(json::parse(response->body).at("target").as_string(), "/fleetwatch/api/runs?limit=2");
}

TEST_F(ClientTest, AnyHttpStatusIsASuccessfulResponse) {
  StartServer([](Request&) { return JsonError(503, "unavailable", "database down"); });
  Result<Client> client = Client::Create(base_);
  ASSERT_TRUE(client.ok());
  Result<Response> response = client->Send("GET", "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->content_type, "application/json");
}

TEST_F(ClientTest, ResponseLargerThanTheLimitIsAnError) {
  StartServer([](Request&) {
    Response response;
    response.body = std::string(10'000, 'x');
    return response;
  });
  ClientOptions options;
  options.max_response_bytes = 1024;
  Result<Client> client = Client::Create(base_, options);
  ASSERT_TRUE(client.ok());
  Result<Response> response = client->Send("GET", "/big");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kPayloadTooLarge);
  EXPECT_THAT(response.status().message(), HasSubstr("1024"));

  options.max_response_bytes = 10'000;
  Result<Client> roomy = Client::Create(base_, options);
  ASSERT_TRUE(roomy.ok());
  Result<Response> fits = roomy->Send("GET", "/big");
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  EXPECT_EQ(fits->body.size(), 10'000u);
}

TEST(ClientErrors, ClosedPortIsUnavailableQuickly) {
  const uint16_t port = test_support::ClosedPort();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  Result<Client> client = Client::Create(base);  // default timeout: 30 s
  ASSERT_TRUE(client.ok());
  const auto start = std::chrono::steady_clock::now();
  Result<Response> response = client->Send("GET", "/");
  ASSERT_FALSE(response.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("cannot reach " + base));
  EXPECT_THAT(response.status().message(), HasSubstr("refused"));
}

TEST(ClientErrors, SilentServerIsUnavailableAfterTheTimeout) {
  test_support::SilentListener listener;
  ClientOptions options;
  options.timeout = 200ms;
  Result<Client> client =
      Client::Create("http://127.0.0.1:" + std::to_string(listener.port()), options);
  ASSERT_TRUE(client.ok());
  Result<Response> response = client->Send("GET", "/poll");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("200 ms"));
}

TEST(ClientErrors, RefusesTargetsThatAreNotPaths) {
  Result<Client> client = Client::Create("http://127.0.0.1:1");
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->Send("GET", "api/runs").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Send("GET", "/a b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Send("GET", "/x", {}, {{"X-Evil", "a\r\nInjected: 1"}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Send("GE T", "/x").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fleetwatch::http
