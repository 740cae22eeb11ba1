#include "http/server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/deferred.h"
#include "http/router.h"
#include "support/process.h"
#include "test_support.h"

namespace fleetwatch::http {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::string_literals;
using test_support::RawConnection;
using test_support::RawResponse;

// Answers with everything the handler saw, as JSON.
Response Echo(Request& request) {
  json::object query;
  for (const auto& [key, value] : request.query) query[key] = value;
  json::array headers;
  for (const auto& [name, value] : request.headers) headers.push_back(json::array{name, value});
  json::object params;
  for (const auto& [key, value] : request.path_params) params[key] = value;
  json::object object{{"method", request.method},
                      {"target", request.target},
                      {"path", request.path},
                      {"query", std::move(query)},
                      {"headers", std::move(headers)},
                      {"params", std::move(params)},
                      {"body_size", request.body.size()},
                      {"body", request.body.size() <= 1024 ? request.body : std::string()}};
  Response response;
  response.body = json::serialize(object);
  return response;
}

std::string ErrorCode(const std::string& body) {
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec || !value.is_object() || !value.as_object().contains("error")) return "<not an error>";
  return std::string(value.at("error").at("code").as_string());
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() {
    router_.Add("GET", "/echo", Echo);
    router_.Add("POST", "/echo", Echo);
    router_.Add("GET", "/echo/*", Echo);
  }

  void StartServer(ServerOptions options = {}) {
    server_ = std::make_unique<Server>(
        options, [this](Request& request) { return router_.Dispatch(request); });
    Result<uint16_t> port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
  }

  Client MakeClient(ClientOptions options = {}) {
    Result<Client> client = Client::Create("http://127.0.0.1:" + std::to_string(port_), options);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return std::move(client).value();
  }

  // Sends `bytes` on a fresh connection and returns the one response.
  std::optional<RawResponse> RawExchange(std::string_view bytes) {
    RawConnection connection(port_);
    EXPECT_TRUE(connection.connected());
    connection.Send(bytes);
    return connection.ReadResponse();
  }

  Router router_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(ServerTest, GetWithQueryReachesHandlerDecoded) {
  StartServer();
  Client client = MakeClient();
  Result<Response> response =
      client.Send("GET", "/echo/caf%C3%A9/a%2Fb?name=a%20b&x=1&x=2&plus=a+b&flag");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->content_type, "application/json");
  json::value echo = json::parse(response->body);
  EXPECT_EQ(echo.at("method").as_string(), "GET");
  EXPECT_EQ(echo.at("target").as_string(),
            "/echo/caf%C3%A9/a%2Fb?name=a%20b&x=1&x=2&plus=a+b&flag");
  EXPECT_EQ(echo.at("path").as_string(), "/echo/caf\xC3\xA9/a/b");
  EXPECT_EQ(echo.at("params").at("*").as_string(), "caf\xC3\xA9/a/b");
  const json::object& query = echo.at("query").as_object();
  EXPECT_EQ(query.at("name").as_string(), "a b");
  EXPECT_EQ(query.at("x").as_string(), "2");  // the last one wins
  EXPECT_EQ(query.at("plus").as_string(), "a b");
  EXPECT_EQ(query.at("flag").as_string(), "");
}

TEST_F(ServerTest, ASharedBodyIsSentAsItIsAndStaysAliveForTheWrite) {
  auto bytes = std::make_shared<const std::string>(std::string(3 << 20, 'x') + "end");
  std::weak_ptr<const std::string> watch = bytes;
  router_.Add("GET", "/shared", [shared = std::move(bytes)](Request&) {
    Response response;
    response.content_type = "text/plain";
    response.body = "ignored when shared_body is set";
    response.shared_body = shared;
    response.headers.emplace_back("Content-Length", "1");  // framing stays the server's
    return response;
  });
  StartServer();
  Client client = MakeClient();
  for (int i = 0; i < 2; ++i) {  // the same connection, twice
    Result<Response> response = client.Send("GET", "/shared");
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->content_type, "text/plain");
    EXPECT_EQ(response->body.size(), (3u << 20) + 3);
    EXPECT_TRUE(response->body.ends_with("xend"));
  }
  EXPECT_FALSE(watch.expired());  // the route still holds it; the server only borrowed it
}

TEST_F(ServerTest, PostBodyReachesHandler) {
  StartServer();
  Client client = MakeClient();
  Result<Response> response =
      client.Send("POST", "/echo", "{\"name\": \"run-1\"}", {{"Content-Type", "application/json"}});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  json::value echo = json::parse(response->body);
  EXPECT_EQ(echo.at("method").as_string(), "POST");
  EXPECT_EQ(echo.at("body").as_string(), "{\"name\": \"run-1\"}");
}

TEST_F(ServerTest, HandlersSeeHeaderNamesLowercased) {
  std::string seen_value;
  std::vector<std::string> names;
  router_.Add("GET", "/headers", [&](Request& request) {
    seen_value = std::string(request.Header("X-CUSTOM-THING"));
    for (const auto& header : request.headers) names.push_back(header.first);
    return Response{};
  });
  StartServer();
  Client client = MakeClient();
  Result<Response> response = client.Send("GET", "/headers", {}, {{"X-Custom-Thing", "Value 1"}});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(seen_value, "Value 1");
  EXPECT_THAT(names, ::testing::Contains("x-custom-thing"));
  EXPECT_THAT(names, ::testing::Contains("user-agent"));
  for (const std::string& name : names) EXPECT_EQ(name, RawResponse::Lower(name));
}

TEST_F(ServerTest, ResponseCarriesStatusContentTypeAndExtraHeaders) {
  router_.Add("POST", "/runs", [](Request&) {
    Response response;
    response.status = 201;
    response.content_type = "text/plain; charset=utf-8";
    response.body = "created";
    response.headers = {{"X-Run-Id", "r1"}, {"Cache-Control", "no-store"}};
    return response;
  });
  router_.Add("GET", "/missing", [](Request&) { return JsonError(404, "not_found", "gone"); });
  router_.Add("DELETE", "/runs", [](Request&) {
    Response response;
    response.status = 204;
    response.body = "dropped: a 204 has no body";
    return response;
  });
  StartServer();
  Client client = MakeClient();

  Result<Response> created = client.Send("POST", "/runs", "x");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->status, 201);
  EXPECT_EQ(created->content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(created->body, "created");
  EXPECT_THAT(created->headers,
              ::testing::Contains(std::pair<std::string, std::string>("x-run-id", "r1")));
  EXPECT_THAT(created->headers, ::testing::Contains(std::pair<std::string, std::string>(
                                    "cache-control", "no-store")));
  EXPECT_THAT(created->headers,
              ::testing::Contains(std::pair<std::string, std::string>("server", "fleetwatch")));
  EXPECT_THAT(created->headers,
              ::testing::Contains(std::pair<std::string, std::string>("content-length", "7")));

  Result<Response> missing = client.Send("GET", "/missing");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(ErrorCode(missing->body), "not_found");

  Result<Response> no_content = client.Send("DELETE", "/runs");
  ASSERT_TRUE(no_content.ok());
  EXPECT_EQ(no_content->status, 204);
  EXPECT_EQ(no_content->body, "");

  Result<Response> wrong_method = client.Send("PUT", "/runs");
  ASSERT_TRUE(wrong_method.ok());
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(ErrorCode(wrong_method->body), "method_not_allowed");
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::atomic<int> calls{0};
  router_.Add("GET", "/count", [&](Request&) {
    Response response;
    response.body = std::to_string(++calls);
    return response;
  });
  StartServer();
  RawConnection connection(port_);
  ASSERT_TRUE(connection.connected());
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(connection.Send("GET /count HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto response = connection.ReadResponse();
    ASSERT_TRUE(response.has_value()) << "request " << i;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, std::to_string(i));
    EXPECT_EQ(RawResponse::Lower(response->HeaderValue("connection")), "");
  }
  // Two pipelined requests, the second asking to close.
  ASSERT_TRUE(connection.Send(
      "GET /count HTTP/1.1\r\nHost: t\r\n\r\nGET /count HTTP/1.1\r\nHost: t\r\nConnection: "
      "close\r\n\r\n"));
  auto fourth = connection.ReadResponse();
  ASSERT_TRUE(fourth.has_value());
  EXPECT_EQ(fourth->body, "4");
  auto fifth = connection.ReadResponse();
  ASSERT_TRUE(fifth.has_value());
  EXPECT_EQ(fifth->body, "5");
  EXPECT_EQ(RawResponse::Lower(fifth->HeaderValue("connection")), "close");
  EXPECT_TRUE(connection.WaitForClose());
}

TEST_F(ServerTest, HandlerMayCloseTheConnectionButNotChangeFraming) {
  router_.Add("GET", "/bye", [](Request&) {
    Response response;
    response.content_type = "text/plain";
    response.body = "bye";
    response.headers = {{"Connection", "close"}, {"Content-Length", "999"}};
    return response;
  });
  StartServer();
  RawConnection connection(port_);
  ASSERT_TRUE(connection.Send("GET /bye HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto response = connection.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->HeaderValue("content-length"), "3");
  EXPECT_EQ(response->body, "bye");
  EXPECT_EQ(RawResponse::Lower(response->HeaderValue("connection")), "close");
  EXPECT_TRUE(connection.WaitForClose());
}

TEST_F(ServerTest, Http10WithoutKeepAliveIsClosedAfterTheResponse) {
  StartServer();
  RawConnection connection(port_);
  ASSERT_TRUE(connection.Send("GET /echo HTTP/1.0\r\n\r\n"));
  auto response = connection.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->head.substr(0, 8), "HTTP/1.0");
  EXPECT_TRUE(connection.WaitForClose());
}

TEST_F(ServerTest, ExpectContinueGetsInterimResponse) {
  StartServer();
  RawConnection connection(port_);
  ASSERT_TRUE(connection.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = connection.ReadResponse();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(connection.Send("hello"));
  auto response = connection.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(json::parse(response->body).at("body").as_string(), "hello");
}

TEST_F(ServerTest, BodyOfExactlyTheLimitIsAccepted) {
  ServerOptions options;
  options.body_limit_bytes = 1 << 20;
  StartServer(options);
  Client client = MakeClient();
  Result<Response> response = client.Send("POST", "/echo", std::string(1 << 20, 'a'));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(json::parse(response->body).at("body_size").to_number<uint64_t>(), 1u << 20);
}

TEST_F(ServerTest, BodyOneByteOverTheLimitGets413) {
  ServerOptions options;
  options.body_limit_bytes = 1 << 20;
  StartServer(options);
  Client client = MakeClient();
  Result<Response> response = client.Send("POST", "/echo", std::string((1 << 20) + 1, 'a'));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->content_type, "application/json");
  EXPECT_EQ(ErrorCode(response->body), "payload_too_large");
}

TEST_F(ServerTest, DeclaredHugeContentLengthGets413WithoutSendingTheBody) {
  StartServer();
  RawConnection connection(port_);
  ASSERT_TRUE(
      connection.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1099511627776\r\n\r\n"));
  auto response = connection.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(ErrorCode(response->body), "payload_too_large");
  EXPECT_EQ(RawResponse::Lower(response->HeaderValue("connection")), "close");
  EXPECT_TRUE(connection.WaitForClose());
}

TEST_F(ServerTest, ChunkedBodyOverTheLimitGets413) {
  StartServer();
  RawConnection connection(port_);
  ASSERT_TRUE(
      connection.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk(64 * 1024, 'c');
  for (int i = 0; i < 17; ++i) {  // 17 × 64 KiB > 1 MiB
    if (!connection.Send("10000\r\n" + chunk + "\r\n")) break;
  }
  connection.Send("0\r\n\r\n");
  auto response = connection.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(ErrorCode(response->body), "payload_too_large");
}

TEST_F(ServerTest, ChunkedBodyWithinTheLimitIsDecoded) {
  StartServer();
  auto response = RawExchange(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(json::parse(response->body).at("body").as_string(), "hello world");
}

TEST_F(ServerTest, OversizedHeadersAreRefused) {
  StartServer();
  auto response = RawExchange(
      "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(70 * 1024, 'a') + "\r\n\r\n");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(ErrorCode(response->body), "headers_too_large");
}

TEST_F(ServerTest, MalformedRequestsGet400AndTheServerKeepsServing) {
  StartServer();
  const std::string garbage[] = {
      "GARBAGE\r\n\r\n",
      "\x00\x01\x02\xff\xfe junk\r\n\r\n"s,
      "GET /echo HTTP/9.9\r\nHost: t\r\n\r\n",
      "GET /echo HTTP/1.1\r\nBad Header Line\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
      "GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET http://example.com/echo HTTP/1.1\r\nHost: t\r\n\r\n",
  };
  for (const std::string& bytes : garbage) {
    RawConnection connection(port_);
    ASSERT_TRUE(connection.Send(bytes));
    auto response = connection.ReadResponse();
    ASSERT_TRUE(response.has_value()) << bytes;
    EXPECT_EQ(response->status, 400) << bytes;
    EXPECT_EQ(ErrorCode(response->body), "bad_request") << bytes;
    EXPECT_TRUE(connection.WaitForClose()) << bytes;
  }
  Client client = MakeClient();
  Result<Response> response = client.Send("GET", "/echo");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
}

TEST_F(ServerTest, HandlerExceptionBecomesGeneric500) {
  router_.Add("GET", "/boom", [](Request&) -> Response {
    throw std::runtime_error("secret connection string postgres://u:p@db");
  });
  router_.Add("GET", "/boom-int", [](Request&) -> Response { throw 42; });
  StartServer();
  Client client = MakeClient();
  for (const char* target : {"/boom", "/boom-int"}) {
    Result<Response> response = client.Send("GET", target);
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->status, 500);
    EXPECT_EQ(response->content_type, "application/json");
    EXPECT_EQ(ErrorCode(response->body), "internal");
    EXPECT_THAT(response->body, Not(HasSubstr("secret")));
  }
  Result<Response> after = client.Send("GET", "/echo");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, 200);
}

TEST_F(ServerTest, ManyConcurrentClientsAllSucceed) {
  StartServer();
  constexpr int kClients = 32;
  constexpr int kRequests = 20;
  std::atomic<int> successes{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      Result<Client> client = Client::Create("http://127.0.0.1:" + std::to_string(port_));
      if (!client.ok()) return;
      for (int r = 0; r < kRequests; ++r) {
        const std::string body = std::to_string(c) + ":" + std::to_string(r);
        Result<Response> response = client->Send("POST", "/echo", body);
        if (response.ok() && response->status == 200 &&
            json::parse(response->body).at("body").as_string() == body) {
          ++successes;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(successes.load(), kClients * kRequests);
}

TEST_F(ServerTest, StopWaitsForAnInFlightSlowHandler) {
  std::promise<void> entered;
  router_.Add("GET", "/slow", [&](Request&) {
    entered.set_value();
    std::this_thread::sleep_for(300ms);
    Response response;
    response.body = "done";
    return response;
  });
  StartServer();
  Client client = MakeClient();
  std::optional<Result<Response>> result;
  std::thread caller([&] { result.emplace(client.Send("GET", "/slow")); });
  entered.get_future().wait();
  server_->Stop();
  caller.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << result->status().ToString();
  EXPECT_EQ((*result)->status, 200);
  EXPECT_EQ((*result)->body, "done");
  // Nothing listens any more.
  Result<Response> after = MakeClient().Send("GET", "/echo");
  EXPECT_FALSE(after.ok());
}

// Responders kept by a deferring handler, for the test to answer.
class HeldAnswers {
 public:
  Handler MakeHandler() {
    return [this](Request& request) {
      auto [now, later] = DeferResponse();
      std::lock_guard lock(mu_);
      held_.push_back(later);
      paths_.push_back(request.path);
      return now;
    };
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  // Answers each held request with its own path, and lets go of them.
  void AnswerAll() {
    std::vector<Responder> held;
    std::vector<std::string> paths;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
      paths.swap(paths_);
    }
    for (size_t k = 0; k < held.size(); ++k) {
      Response response;
      response.content_type = "text/plain";
      response.body = "answered " + paths[k];
      response.headers.emplace_back("X-Later", "yes");
      held[k].Send(response);
      held[k].Send(JsonError(500, "internal", "a second answer is ignored"));
    }
  }
  void Drop() {
    std::lock_guard lock(mu_);
    held_.clear();
    paths_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<Responder> held_;
  std::vector<std::string> paths_;
};

TEST_F(ServerTest, ADeferredAnswerHoldsNoWorkerThread) {
  HeldAnswers answers;
  router_.Add("GET", "/later/*", answers.MakeHandler());
  ServerOptions options;
  options.threads = 1;
  StartServer(options);
  constexpr int kWaiting = 8;
  std::vector<std::future<Result<Response>>> waiting;
  for (int k = 0; k < kWaiting; ++k) {
    waiting.push_back(std::async(std::launch::async, [this, k] {
      return MakeClient().Send("GET", "/later/" + std::to_string(k));
    }));
  }
  ASSERT_TRUE(fleetwatch::testing::WaitUntil([&] { return answers.count() == kWaiting; }));
  // Eight requests wait for their answers, and the one worker thread still serves others.
  Result<Response> other = MakeClient().Send("GET", "/echo");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->status, 200);
  for (auto& w : waiting) EXPECT_EQ(w.wait_for(0s), std::future_status::timeout);

  answers.AnswerAll();
  for (int k = 0; k < kWaiting; ++k) {
    Result<Response> answer = waiting[static_cast<size_t>(k)].get();
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    EXPECT_EQ(answer->status, 200);
    EXPECT_EQ(answer->body, "answered /later/" + std::to_string(k));
    EXPECT_EQ(answer->content_type, "text/plain");
  }
}

TEST_F(ServerTest, ADeferredAnswerKeepsTheConnectionAliveAndMayComeBeforeTheHandlerReturns) {
  router_.Add("GET", "/at-once", [](Request&) {
    auto [now, later] = DeferResponse();
    Response response;
    response.body = "early";
    later.Send(response);
    return now;
  });
  StartServer();
  RawConnection connection(port_);
  for (int k = 0; k < 2; ++k) {
    ASSERT_TRUE(connection.Send("GET /at-once HTTP/1.1\r\nHost: t\r\n\r\n"));
    std::optional<RawResponse> response = connection.ReadResponse();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "early");
  }
}

TEST_F(ServerTest, ADeferredAnswerNobodySendsIs500) {
  HeldAnswers answers;
  router_.Add("GET", "/later/*", answers.MakeHandler());
  StartServer();
  auto waiting = std::async(std::launch::async,
                            [this] { return MakeClient().Send("GET", "/later/forgotten"); });
  ASSERT_TRUE(fleetwatch::testing::WaitUntil([&] { return answers.count() == 1; }));
  answers.Drop();
  Result<Response> answer = waiting.get();
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->status, 500);
  EXPECT_EQ(ErrorCode(answer->body), "internal");
}

TEST_F(ServerTest, StopWaitsForADeferredAnswerThenGivesUpOnIt) {
  HeldAnswers answers;
  router_.Add("GET", "/later/*", answers.MakeHandler());
  ServerOptions options;
  options.shutdown_grace = 200ms;
  StartServer(options);
  auto waiting =
      std::async(std::launch::async, [this] { return MakeClient().Send("GET", "/later/never"); });
  ASSERT_TRUE(fleetwatch::testing::WaitUntil([&] { return answers.count() == 1; }));
  server_->Stop();
  // The client was dropped without an answer; one given now goes nowhere.
  EXPECT_FALSE(waiting.get().ok());
  answers.AnswerAll();
}

TEST_F(ServerTest, StopClosesIdleKeepAliveConnectionsWithoutWaitingForGrace) {
  ServerOptions options;
  options.shutdown_grace = 60s;
  StartServer(options);
  RawConnection connection(port_);
  ASSERT_TRUE(connection.Send("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(connection.ReadResponse().has_value());
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  EXPECT_TRUE(connection.WaitForClose());
}

TEST_F(ServerTest, StopDoesNotWaitForAPartiallyReceivedRequest) {
  ServerOptions options;
  options.shutdown_grace = 60s;
  StartServer(options);
  RawConnection connection(port_);
  ASSERT_TRUE(connection.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab"));
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  EXPECT_TRUE(connection.WaitForClose());
}

TEST_F(ServerTest, ReadTimeoutClosesIdleAndPartialConnections) {
  ServerOptions options;
  options.read_timeout = 200ms;
  StartServer(options);
  RawConnection idle(port_);
  RawConnection partial(port_);
  ASSERT_TRUE(partial.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  EXPECT_TRUE(idle.WaitForClose());
  EXPECT_TRUE(partial.WaitForClose());
  // The server is still fine.
  Result<Response> response = MakeClient().Send("GET", "/echo");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
}

TEST(ServerLifecycle, StartStopAndDestroyTwiceIsClean) {
  for (int round = 0; round < 2; ++round) {
    Server server({}, [](Request&) {
      Response response;
      response.body = "ok";
      return response;
    });
    Result<uint16_t> port = server.Start();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    Result<Client> client = Client::Create("http://127.0.0.1:" + std::to_string(*port));
    ASSERT_TRUE(client.ok());
    Result<Response> response = client->Send("GET", "/");
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->body, "ok");
    server.Stop();
    server.Stop();
  }
}

TEST(ServerLifecycle, DestructorStopsARunningServer) {
  auto server = std::make_unique<Server>(ServerOptions{}, [](Request&) { return Response{}; });
  ASSERT_TRUE(server->Start().ok());
  server.reset();
}

TEST(ServerLifecycle, CanStartAgainAfterStop) {
  Server server({}, [](Request&) { return Response{}; });
  ASSERT_TRUE(server.Start().ok());
  Result<uint16_t> again = server.Start();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  server.Stop();
  Result<uint16_t> port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  Result<Client> client = Client::Create("http://127.0.0.1:" + std::to_string(*port));
  ASSERT_TRUE(client.ok());
  Result<Response> response = client->Send("GET", "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
}

TEST(ServerLifecycle, BindConflictIsUnavailable) {
  Server first({}, [](Request&) { return Response{}; });
  Result<uint16_t> port = first.Start();
  ASSERT_TRUE(port.ok());
  ServerOptions options;
  options.port = *port;
  Server second(options, [](Request&) { return Response{}; });
  Result<uint16_t> result = second.Start();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(result.status().message(), HasSubstr("127.0.0.1:" + std::to_string(*port)));
  EXPECT_THAT(result.status().message(), HasSubstr("in use"));
}

// A server whose /api/* requests need the header "Authorization: Bearer good".
class AuthenticatedServerTest : public ServerTest {
 protected:
  AuthenticatedServerTest() {
    router_.Add("GET", "/api/echo", Echo);
    router_.Add("POST", "/api/echo", [this](Request& request) {
      ++api_handler_calls_;
      return Echo(request);
    });
  }

  static ServerOptions Options() {
    ServerOptions options;
    options.authenticate = [](std::string_view authorization) {
      return authorization == "Bearer good" ? Status::Ok() : Unauthenticated("invalid token");
    };
    options.needs_authentication = [](std::string_view path) { return path.starts_with("/api/"); };
    return options;
  }

  // Polls until the server counts `open` connections; false when that does not happen in time.
  bool WaitForOpenConnections(int64_t open) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (server_->connection_stats().open != open) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  std::atomic<int> api_handler_calls_{0};
};

TEST_F(AuthenticatedServerTest, ABadTokenGets401BeforeTheBodyIsSent) {
  StartServer(Options());
  RawConnection connection(port_);
  // Only the header of a 1 MiB body: the answer can only come from the header.
  ASSERT_TRUE(
      connection.Send("POST /api/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer bad\r\n"
                      "Content-Length: 1048576\r\n\r\n"));
  std::optional<RawResponse> response = connection.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 401);
  EXPECT_EQ(ErrorCode(response->body), "unauthenticated");
  EXPECT_EQ(response->HeaderValue("www-authenticate"), "Bearer");
  EXPECT_TRUE(connection.WaitForClose());
  EXPECT_EQ(api_handler_calls_, 0);
}

TEST_F(AuthenticatedServerTest, NoTokenWithExpectContinueGets401InsteadOf100) {
  StartServer(Options());
  RawConnection connection(port_);
  ASSERT_TRUE(
      connection.Send("POST /api/echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                      "Content-Length: 1048576\r\n\r\n"));
  std::optional<RawResponse> response = connection.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 401);
  EXPECT_EQ(api_handler_calls_, 0);
}

TEST_F(AuthenticatedServerTest, AnEncodedApiPathIsCheckedToo) {
  StartServer(Options());
  std::optional<RawResponse> response =
      RawExchange("POST /%61pi/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 401);
  EXPECT_EQ(api_handler_calls_, 0);
}

TEST_F(AuthenticatedServerTest, AGoodTokenGetsTheBodyReadAndRoutesOutsideApiNeedNone) {
  StartServer(Options());
  Client client = MakeClient();
  Result<Response> api =
      client.Send("POST", "/api/echo", "hello", {{"Authorization", "Bearer good"}});
  ASSERT_TRUE(api.ok()) << api.status().ToString();
  EXPECT_EQ(api->status, 200);
  EXPECT_EQ(json::parse(api->body).at("body").as_string(), "hello");
  Result<Response> open = client.Send("POST", "/echo", "hello");
  ASSERT_TRUE(open.ok()) << open.status().ToString();
  EXPECT_EQ(open->status, 200);
}

TEST_F(AuthenticatedServerTest, ReadTimeoutCoversTheHeaderAndTheBodyAfterTheCheck) {
  ServerOptions options = Options();
  options.read_timeout = 200ms;
  StartServer(options);
  RawConnection partial_header(port_);
  RawConnection partial_body(port_);
  ASSERT_TRUE(partial_header.Send("POST /api/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bea"));
  ASSERT_TRUE(
      partial_body.Send("POST /api/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer good\r\n"
                        "Content-Length: 10\r\n\r\nabc"));
  EXPECT_TRUE(partial_header.WaitForClose());
  EXPECT_TRUE(partial_body.WaitForClose());
  EXPECT_EQ(api_handler_calls_, 0);
}

TEST_F(ServerTest, ConnectionsBeyondTheCapGet503AndAreCounted) {
  ServerOptions options;
  options.max_connections = 2;
  StartServer(options);
  auto first = std::make_unique<RawConnection>(port_);
  RawConnection second(port_);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (server_->connection_stats().open != 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(server_->connection_stats().open, 2);

  RawConnection third(port_);
  std::optional<RawResponse> refused = third.ReadResponse();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 503);
  EXPECT_TRUE(third.WaitForClose());
  EXPECT_EQ(server_->connection_stats().refused_total, 1u);

  // A place freed is a place taken.
  first.reset();
  while (server_->connection_stats().open != 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  std::optional<RawResponse> served = RawExchange("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(served.has_value());
  EXPECT_EQ(served->status, 200);
}

TEST_F(AuthenticatedServerTest, UnauthenticatedConnectionsPerAddressAreCapped) {
  ServerOptions options = Options();
  options.max_unauthenticated_per_address = 2;
  StartServer(options);
  RawConnection first(port_);
  RawConnection second(port_);
  ASSERT_TRUE(WaitForOpenConnections(2));
  {
    RawConnection third(port_);
    std::optional<RawResponse> refused = third.ReadResponse();
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->status, 503);
  }
  EXPECT_EQ(server_->connection_stats().refused_unauthenticated_total, 1u);
  EXPECT_EQ(server_->connection_stats().refused_total, 0u);
  ASSERT_TRUE(WaitForOpenConnections(2));

  // A request outside /api/ does not authenticate a connection; one with a good token does, and
  // the address may open another.
  ASSERT_TRUE(first.Send("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(first.ReadResponse().has_value());
  ASSERT_TRUE(
      first.Send("GET /api/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer good\r\n\r\n"));
  std::optional<RawResponse> authenticated = first.ReadResponse();
  ASSERT_TRUE(authenticated.has_value());
  EXPECT_EQ(authenticated->status, 200);
  std::optional<RawResponse> served = RawExchange("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(served.has_value());
  EXPECT_EQ(served->status, 200);
  EXPECT_EQ(server_->connection_stats().refused_unauthenticated_total, 1u);
}

}  // namespace
}  // namespace fleetwatch::http
