#include "http/async_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"
#include "test_support.h"

namespace fleetwatch::http {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Far above anything these tests need on a quiet machine, far below the timeouts they compare
// against: the machines running them are shared and noisy.
constexpr auto kGenerous = 10s;

// --- Misbehaving servers, built from raw sockets ---------------------------------------------

bool SendBytes(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until the end of the request's headers; false when the peer closes first.
bool ReadRequestHead(int fd) {
  std::string received;
  char chunk[4096];
  while (received.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    received.append(chunk, static_cast<size_t>(n));
  }
  return true;
}

// Reads and drops everything until the peer closes (or the server shuts the socket down).
void DrainUntilClosed(int fd) {
  char chunk[4096];
  while (true) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
  }
}

// Reads the request, sends `bytes` and half-closes; waits for the client to close so that the
// kernel does not reset the connection under unread data.
void AnswerWith(int fd, std::string_view bytes) {
  if (!ReadRequestHead(fd)) return;
  SendBytes(fd, bytes);
  ::shutdown(fd, SHUT_WR);
  DrainUntilClosed(fd);
}

// A loopback listener running `script` on a thread of its own for each connection it accepts,
// for the replies http::Server would never send. Connections still open at destruction are
// shut down, which ends any script blocked on them.
class ScriptedServer {
 public:
  using Script = std::function<void(int fd)>;

  explicit ScriptedServer(Script script) : script_(std::move(script)) {
    port_ = test_support::ListenOnLoopback(listen_fd_);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~ScriptedServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& connection : connections_) connection.join();
    ::close(listen_fd_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  uint16_t port() const { return port_; }

  // Waits until `count` connections have been accepted; false after kGenerous.
  bool WaitForConnections(int count) {
    std::unique_lock lock(mutex_);
    return accepted_changed_.wait_for(lock, kGenerous, [&] { return accepted_ >= count; });
  }

  // Waits until the scripts of `count` connections have returned; false after kGenerous.
  bool WaitForFinished(int count) {
    std::unique_lock lock(mutex_);
    return accepted_changed_.wait_for(lock, kGenerous, [&] { return finished_ >= count; });
  }

  int accepted() {
    std::lock_guard lock(mutex_);
    return accepted_;
  }

 private:
  void AcceptLoop() {
    while (true) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0 && errno == EINTR) continue;
      if (fd < 0) return;  // shut down
      {
        std::lock_guard lock(mutex_);
        open_.insert(fd);
        ++accepted_;
      }
      accepted_changed_.notify_all();
      connections_.emplace_back([this, fd] {
        script_(fd);
        {
          std::lock_guard lock(mutex_);
          open_.erase(fd);
          ::close(fd);
          ++finished_;
        }
        accepted_changed_.notify_all();
      });
    }
  }

  const Script script_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::vector<std::thread> connections_;  // touched by the accept thread only, until it is joined
  std::mutex mutex_;
  std::condition_variable accepted_changed_;
  std::set<int> open_;  // guarded by mutex_
  int accepted_ = 0;    // guarded by mutex_
  int finished_ = 0;    // guarded by mutex_
};

// --- Helpers ---------------------------------------------------------------------------------

AsyncRequest Get(uint16_t port, std::string target = "/",
                 std::chrono::milliseconds timeout = 10'000ms) {
  AsyncRequest request;
  request.host = "127.0.0.1";
  request.port = port;
  request.target = std::move(target);
  request.timeout = timeout;
  return request;
}

Response EchoRequest(Request& request) {
  json::object headers;
  for (const auto& [name, value] : request.headers) headers[name] = value;
  json::object object{{"method", request.method},
                      {"target", request.target},
                      {"headers", std::move(headers)},
                      {"body", request.body}};
  Response response;
  response.body = json::serialize(object);
  return response;
}

class AsyncClientTest : public ::testing::Test {
 protected:
  // Starts an http::Server on 127.0.0.1 and returns its port.
  uint16_t StartServer(Handler handler = EchoRequest, std::string host = "127.0.0.1") {
    ServerOptions options;
    options.host = std::move(host);
    options.shutdown_grace = 1s;
    server_ = std::make_unique<Server>(options, std::move(handler));
    Result<uint16_t> port = server_->Start();
    if (!port.ok()) {
      ADD_FAILURE() << port.status().ToString();
      return 0;
    }
    return *port;
  }

  std::unique_ptr<Server> server_;
};

// --- Tests -----------------------------------------------------------------------------------

TEST_F(AsyncClientTest, ReturnsStatusHeadersAndBody) {
  const uint16_t port = StartServer([](Request&) {
    Response response;
    response.content_type = "text/plain";
    response.body = "hello";
    response.headers.emplace_back("X-Log-Size", "5");
    return response;
  });
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({Get(port, "/logs?offset=0")});
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  EXPECT_EQ(results[0]->status, 200);
  EXPECT_EQ(results[0]->content_type, "text/plain");
  EXPECT_EQ(results[0]->body, "hello");
  EXPECT_THAT(results[0]->headers,
              ::testing::Contains(std::pair<std::string, std::string>("x-log-size", "5")));
}

TEST_F(AsyncClientTest, SendsMethodBodyAndHeaders) {
  const uint16_t port = StartServer();
  AsyncRequest request = Get(port, "/poll?x=1");
  request.method = "POST";
  request.body = "{\"a\":1}";
  request.headers = {{"Authorization", "Bearer t"}, {"Content-Type", "application/json"}};
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({request});
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  json::value echo = json::parse(results[0]->body);
  EXPECT_EQ(echo.at("method").as_string(), "POST");
  EXPECT_EQ(echo.at("target").as_string(), "/poll?x=1");
  EXPECT_EQ(echo.at("body").as_string(), "{\"a\":1}");
  const json::object& headers = echo.at("headers").as_object();
  EXPECT_EQ(headers.at("host").as_string(), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(headers.at("user-agent").as_string(), "fleetwatch");
  EXPECT_EQ(headers.at("content-length").as_string(), "7");
  EXPECT_EQ(headers.at("authorization").as_string(), "Bearer t");
  EXPECT_EQ(headers.at("content-type").as_string(), "application/json");
}

TEST_F(AsyncClientTest, FramingHeadersAreTheClientsAndTheCallersHostAndUserAgentStand) {
  const uint16_t port = StartServer();
  AsyncRequest request = Get(port, "/framing");
  request.method = "PUT";
  request.body = "payload";
  request.headers = {{"content-length", "99"},
                     {"Transfer-Encoding", "chunked"},
                     {"CONNECTION", "close"},
                     {"host", "agent.example:10998"},
                     {"User-Agent", "probe"}};
  AsyncClient client;
  for (int i = 0; i < 2; ++i) {  // the second on the kept connection
    std::vector<Result<Response>> results = client.SendAll({request});
    ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
    json::value echo = json::parse(results[0]->body);
    EXPECT_EQ(echo.at("method").as_string(), "PUT");
    EXPECT_EQ(echo.at("body").as_string(), "payload");
    const json::object& headers = echo.at("headers").as_object();
    EXPECT_EQ(headers.at("content-length").as_string(), "7");
    EXPECT_FALSE(headers.contains("transfer-encoding"));
    EXPECT_EQ(headers.at("connection").as_string(), "keep-alive");
    EXPECT_EQ(headers.at("host").as_string(), "agent.example:10998");
    EXPECT_EQ(headers.at("user-agent").as_string(), "probe");
  }
}

TEST_F(AsyncClientTest, ServerErrorIsASuccessfulResponse) {
  const uint16_t port =
      StartServer([](Request&) { return JsonError(500, "internal", "agent broke"); });
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({Get(port)});
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  EXPECT_EQ(results[0]->status, 500);
  EXPECT_THAT(results[0]->body, HasSubstr("agent broke"));
}

TEST_F(AsyncClientTest, ResolvesNames) {
  const uint16_t port = StartServer();
  AsyncRequest request = Get(port);
  request.host = "localhost";
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({request});
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  EXPECT_EQ(results[0]->status, 200);
}

TEST_F(AsyncClientTest, UnresolvableNameIsUnavailable) {
  AsyncRequest request = Get(1, "/", 2000ms);
  request.host = "no-such-host.invalid";
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({request});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(),
              HasSubstr("cannot reach http://no-such-host.invalid:1"));
}

TEST_F(AsyncClientTest, TalksToIpv6Literals) {
  ServerOptions options;
  options.host = "::1";
  server_ = std::make_unique<Server>(options, EchoRequest);
  Result<uint16_t> port = server_->Start();
  if (!port.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << port.status().ToString();
  AsyncRequest bare = Get(*port);
  bare.host = "::1";
  AsyncRequest bracketed = Get(*port);
  bracketed.host = "[::1]";
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({bare, bracketed});
  for (const Result<Response>& result : results) {
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(json::parse(result->body).at("headers").at("host").as_string(),
              "[::1]:" + std::to_string(*port));
  }
}

TEST_F(AsyncClientTest, RefusesInvalidRequests) {
  AsyncRequest no_host = Get(80);
  no_host.host = "";
  AsyncRequest no_port = Get(0);
  AsyncRequest bad_method = Get(80);
  bad_method.method = "GE T";
  AsyncRequest bad_target = Get(80, "poll");
  AsyncRequest unencoded_target = Get(80, "/a b");
  AsyncRequest bad_header = Get(80);
  bad_header.headers = {{"X-Evil", "a\r\nInjected: yes"}};
  AsyncClient client;
  std::vector<Result<Response>> results =
      client.SendAll({no_host, no_port, bad_method, bad_target, unencoded_target, bad_header});
  ASSERT_EQ(results.size(), 6u);
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_FALSE(results[i].ok()) << i;
    EXPECT_EQ(results[i].status().code(), StatusCode::kInvalidArgument) << i;
  }
}

TEST_F(AsyncClientTest, RefusedConnectionFailsFastAndNamesTheHost) {
  const uint16_t port = test_support::ClosedPort();
  AsyncClient client;
  const auto start = Clock::now();
  std::vector<Result<Response>> results = client.SendAll({Get(port, "/", 60'000ms)});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(),
              HasSubstr("cannot reach http://127.0.0.1:" + std::to_string(port)));
  EXPECT_LT(Clock::now() - start, kGenerous);  // not the 60 s timeout
}

TEST_F(AsyncClientTest, SilentHostTimesOutWithoutDelayingAGoodOne) {
  const uint16_t good = StartServer();
  ScriptedServer silent([](int fd) { DrainUntilClosed(fd); });
  AsyncClient client;

  // Completion order, by request name.
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> order;
  std::vector<Status> statuses(2);
  auto record = [&](size_t index, std::string name) {
    return [&, index, name](Result<Response> result) {
      std::lock_guard lock(mutex);
      order.push_back(name);
      statuses[index] = result.status();
      changed.notify_all();
    };
  };
  client.Send(Get(silent.port(), "/", 1500ms), record(0, "silent"));
  client.Send(Get(good, "/", 1500ms), record(1, "good"));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, kGenerous, [&] { return order.size() == 2; }));
  }
  EXPECT_THAT(order, ::testing::ElementsAre("good", "silent"));
  EXPECT_TRUE(statuses[1].ok()) << statuses[1].ToString();
  EXPECT_EQ(statuses[0].code(), StatusCode::kUnavailable);
  EXPECT_THAT(statuses[0].message(), HasSubstr("no response from http://127.0.0.1:" +
                                               std::to_string(silent.port()) + " within 1500 ms"));

  // SendAll keeps request order whatever the completion order.
  std::vector<Result<Response>> results =
      client.SendAll({Get(silent.port(), "/", 500ms), Get(good, "/", 500ms)});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(results[1].ok()) << results[1].status().ToString();
}

// The request's one deadline covers the TLS handshake too, and names that step.
TEST_F(AsyncClientTest, AHostThatNeverAnswersTheTlsHandshakeTimesOutInIt) {
  ScriptedServer silent([](int fd) { DrainUntilClosed(fd); });
  AsyncClient client;
  AsyncRequest request = Get(silent.port(), "/", 500ms);
  request.tls = TlsClientOptions{"sha256:" + std::string(64, 'a'), ""};
  std::vector<Result<Response>> results = client.SendAll({request});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(),
              HasSubstr("no TLS handshake with https://127.0.0.1:" + std::to_string(silent.port()) +
                        " within 500 ms"));
  // The connection it gave up on is not kept: the next request starts afresh and times out too.
  results = client.SendAll({request});
  ASSERT_FALSE(results[0].ok());
  EXPECT_THAT(results[0].status().message(), HasSubstr("no TLS handshake"));
}

TEST_F(AsyncClientTest, GarbageIsAMalformedResponse) {
  ScriptedServer garbage([](int fd) { AnswerWith(fd, "SSH-2.0-OpenSSH_9.2\r\n\x01\x02\r\n\r\n"); });
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({Get(garbage.port())});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(), HasSubstr("malformed response from http://127.0.0.1:" +
                                                       std::to_string(garbage.port())));
}

TEST_F(AsyncClientTest, TruncatedResponseIsAnError) {
  ScriptedServer truncated(
      [](int fd) { AnswerWith(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"); });
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({Get(truncated.port())});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(), HasSubstr("closed before a complete response"));
}

TEST_F(AsyncClientTest, ResetConnectionIsUnavailable) {
  ScriptedServer resetting([](int fd) {
    if (!ReadRequestHead(fd)) return;
    linger abort{1, 0};  // close() now sends RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  });
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({Get(resetting.port())});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
}

TEST_F(AsyncClientTest, BodyOverTheCapIsPayloadTooLarge) {
  const uint16_t port = StartServer([](Request&) {
    Response response;
    response.body = std::string(2 << 20, 'x');
    return response;
  });
  AsyncRequest capped = Get(port);
  capped.max_response_bytes = 1 << 20;
  AsyncRequest roomy = Get(port);
  roomy.max_response_bytes = 4 << 20;
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({capped, roomy});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kPayloadTooLarge);
  EXPECT_THAT(results[0].status().message(), HasSubstr("exceeds 1048576 bytes"));
  ASSERT_TRUE(results[1].ok()) << results[1].status().ToString();
  EXPECT_EQ(results[1]->body.size(), size_t{2} << 20);
}

// A reserved receive buffer changes how a response is read, never what is received: every byte
// of a body larger than the buffer arrives, the cap still holds, and the connection is reused.
TEST_F(AsyncClientTest, AReservedReadBufferReceivesTheSameBodyAndKeepsTheCap) {
  std::string big;
  for (int i = 0; big.size() < (300 << 10); ++i) big += std::to_string(i) + ",";
  test_support::CountingProxy proxy(StartServer([&big](Request&) {
    Response response;
    response.body = big;
    return response;
  }));
  AsyncClient client;
  for (size_t reserve : {size_t{0}, size_t{1}, size_t{32} << 10, size_t{1} << 30}) {
    AsyncRequest request = Get(proxy.port());
    request.read_buffer_bytes = reserve;
    std::vector<Result<Response>> results = client.SendAll({request});
    ASSERT_TRUE(results[0].ok()) << reserve << ": " << results[0].status().ToString();
    EXPECT_EQ(results[0]->body, big) << reserve;
  }
  EXPECT_EQ(proxy.accepted(), 1);
  AsyncRequest capped = Get(proxy.port());
  capped.read_buffer_bytes = size_t{1} << 20;
  capped.max_response_bytes = 100 << 10;
  std::vector<Result<Response>> results = client.SendAll({capped});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kPayloadTooLarge);
}

TEST_F(AsyncClientTest, EndlessHeadersArePayloadTooLarge) {
  ScriptedServer endless([](int fd) {
    if (!ReadRequestHead(fd)) return;
    SendBytes(fd, "HTTP/1.1 200 OK\r\n");
    const std::string header = "X-Filler: " + std::string(1000, 'a') + "\r\n";
    for (int i = 0; i < 1000 && SendBytes(fd, header); ++i) {
    }
  });
  AsyncClient client;
  std::vector<Result<Response>> results = client.SendAll({Get(endless.port())});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kPayloadTooLarge);
}

TEST_F(AsyncClientTest, SlowDripIsCutAtTheTimeout) {
  ScriptedServer drip([](int fd) {
    if (!ReadRequestHead(fd)) return;
    if (!SendBytes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")) return;
    // One byte every 100 ms: 100 s for the whole body, until the client gives up.
    for (int i = 0; i < 1000 && SendBytes(fd, "x"); ++i) std::this_thread::sleep_for(100ms);
  });
  AsyncClient client;
  const auto start = Clock::now();
  std::vector<Result<Response>> results = client.SendAll({Get(drip.port(), "/", 1000ms)});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(), HasSubstr("within 1000 ms"));
  EXPECT_LT(Clock::now() - start, kGenerous);
}

TEST_F(AsyncClientTest, FiveHundredConcurrentRequestsAllSucceed) {
  const uint16_t port = StartServer([](Request& request) {
    Response response;
    response.content_type = "text/plain";
    response.body = request.target;
    return response;
  });
  std::vector<AsyncRequest> requests;
  for (int i = 0; i < 500; ++i) requests.push_back(Get(port, "/host/" + std::to_string(i), 60s));
  AsyncClient client(4);
  std::vector<Result<Response>> results = client.SendAll(requests);
  ASSERT_EQ(results.size(), 500u);
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status().ToString();
    EXPECT_EQ(results[i]->body, "/host/" + std::to_string(i));
  }
}

TEST_F(AsyncClientTest, QueuesBeyondMaxInFlight) {
  const uint16_t port = StartServer([](Request& request) {
    Response response;
    response.body = request.target;
    return response;
  });
  std::vector<AsyncRequest> requests;
  for (int i = 0; i < 50; ++i) requests.push_back(Get(port, "/" + std::to_string(i)));
  AsyncClient client(2, /*max_in_flight=*/3);
  std::vector<Result<Response>> results = client.SendAll(requests);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status().ToString();
    EXPECT_EQ(results[i]->body, "/" + std::to_string(i));
  }
}

TEST_F(AsyncClientTest, CallbackMaySendAgain) {
  const uint16_t port = StartServer();
  AsyncClient client;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<int> statuses;
  client.Send(Get(port, "/first"), [&](Result<Response> first) {
    {
      std::lock_guard lock(mutex);
      statuses.push_back(first.ok() ? first->status : -1);
    }
    client.Send(Get(port, "/second"), [&](Result<Response> second) {
      std::lock_guard lock(mutex);
      statuses.push_back(second.ok() ? second->status : -1);
      changed.notify_all();
    });
  });
  std::unique_lock lock(mutex);
  ASSERT_TRUE(changed.wait_for(lock, kGenerous, [&] { return statuses.size() == 2; }));
  EXPECT_THAT(statuses, ::testing::ElementsAre(200, 200));
}

TEST_F(AsyncClientTest, DestructorCancelsInFlightAndQueuedRequestsPromptly) {
  ScriptedServer silent([](int fd) { DrainUntilClosed(fd); });
  constexpr int kRequests = 10;
  constexpr int kMaxInFlight = 4;
  std::array<std::atomic<int>, kRequests> calls{};
  std::array<Status, kRequests> statuses;
  auto client = std::make_unique<AsyncClient>(2, kMaxInFlight);
  for (int i = 0; i < kRequests; ++i) {
    client->Send(Get(silent.port(), "/", 600s), [&, i](Result<Response> result) {
      statuses[i] = result.status();
      calls[i].fetch_add(1);
    });
  }
  ASSERT_TRUE(silent.WaitForConnections(kMaxInFlight));
  const auto start = Clock::now();
  client.reset();
  EXPECT_LT(Clock::now() - start, kGenerous);
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(calls[i].load(), 1) << i;
    EXPECT_EQ(statuses[i].code(), StatusCode::kUnavailable) << i;
    EXPECT_THAT(statuses[i].message(), HasSubstr("cancelled")) << i;
  }
}

// --- Connection reuse --------------------------------------------------------------------------

constexpr std::string_view kKeptOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

// Answers every request on the connection with kKeptOk until the client closes it.
void AnswerEveryRequest(int fd) {
  while (ReadRequestHead(fd) && SendBytes(fd, kKeptOk)) {
  }
}

// Answers the connection's first request and keeps it open; closes it when the next request
// arrives, without a byte of response, as a server does that closed an idle connection just as
// the client reused it.
void AnswerOnceThenCloseOnTheNext(int fd) {
  if (!ReadRequestHead(fd) || !SendBytes(fd, kKeptOk)) return;
  ReadRequestHead(fd);
}

// Like AnswerEveryRequest, but holds the first answer on each connection until `count` first
// requests have arrived, so that a test's requests are in flight at once on that many
// connections.
ScriptedServer::Script AnswerOnceAllHaveArrived(int count) {
  auto arrived = std::make_shared<std::atomic<int>>(0);
  return [arrived, count](int fd) {
    if (!ReadRequestHead(fd)) return;
    arrived->fetch_add(1);
    const auto give_up = Clock::now() + kGenerous;
    while (arrived->load() < count && Clock::now() < give_up) std::this_thread::sleep_for(1ms);
    if (SendBytes(fd, kKeptOk)) AnswerEveryRequest(fd);
  };
}

TEST_F(AsyncClientTest, SequentialRequestsShareOneConnection) {
  test_support::CountingProxy proxy(StartServer());
  AsyncClient client;
  for (int i = 0; i < 5; ++i) {
    std::vector<Result<Response>> results =
        client.SendAll({Get(proxy.port(), "/" + std::to_string(i))});
    ASSERT_TRUE(results[0].ok()) << i << ": " << results[0].status().ToString();
    json::value echo = json::parse(results[0]->body);
    EXPECT_EQ(echo.at("target").as_string(), "/" + std::to_string(i));
    EXPECT_EQ(echo.at("headers").at("connection").as_string(), "keep-alive");
  }
  EXPECT_EQ(proxy.accepted(), 1);
}

TEST_F(AsyncClientTest, ARequestSentFromTheCallbackReusesTheConnection) {
  test_support::CountingProxy proxy(StartServer());
  AsyncClient client;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<int> statuses;
  client.Send(Get(proxy.port(), "/first"), [&](Result<Response> first) {
    {
      std::lock_guard lock(mutex);
      statuses.push_back(first.ok() ? first->status : -1);
    }
    client.Send(Get(proxy.port(), "/second"), [&](Result<Response> second) {
      std::lock_guard lock(mutex);
      statuses.push_back(second.ok() ? second->status : -1);
      changed.notify_all();
    });
  });
  std::unique_lock lock(mutex);
  ASSERT_TRUE(changed.wait_for(lock, kGenerous, [&] { return statuses.size() == 2; }));
  EXPECT_THAT(statuses, ::testing::ElementsAre(200, 200));
  EXPECT_EQ(proxy.accepted(), 1);
}

TEST_F(AsyncClientTest, NoReuseWhenTheIdleTimeoutIsZero) {
  test_support::CountingProxy proxy(StartServer());
  AsyncClient client(2, 4096, 0ms);
  for (int i = 0; i < 3; ++i) {
    std::vector<Result<Response>> results = client.SendAll({Get(proxy.port())});
    ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
    EXPECT_EQ(json::parse(results[0]->body).at("headers").at("connection").as_string(), "close");
  }
  EXPECT_EQ(proxy.accepted(), 3);
}

TEST_F(AsyncClientTest, ConnectionClosedByTheServerWhileIdleIsReplaced) {
  test_support::CountingProxy proxy(StartServer());
  AsyncClient client;
  ASSERT_TRUE(client.SendAll({Get(proxy.port())})[0].ok());
  proxy.CloseAll();
  ASSERT_TRUE(proxy.WaitForClosed(1));
  std::vector<Result<Response>> results = client.SendAll({Get(proxy.port())});
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  EXPECT_EQ(proxy.accepted(), 2);
}

TEST_F(AsyncClientTest, StaleConnectionIsRetriedOnceForIdempotentRequestsOnly) {
  ScriptedServer server(AnswerOnceThenCloseOnTheNext);
  AsyncClient client;
  auto post = [&](bool retry) {
    AsyncRequest request = Get(server.port(), "/api/jobs");
    request.method = "POST";
    request.retry_on_stale_connection = retry;
    return request;
  };

  // A POST is not sent twice unless the request says it may be.
  ASSERT_TRUE(client.SendAll({Get(server.port())})[0].ok());
  std::vector<Result<Response>> results = client.SendAll({post(false)});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(), HasSubstr("connection to http://127.0.0.1:"));
  EXPECT_EQ(server.accepted(), 1);

  // A GET on a fresh connection, then one that finds it closed: retried on a third.
  ASSERT_TRUE(client.SendAll({Get(server.port())})[0].ok());
  EXPECT_EQ(server.accepted(), 2);
  results = client.SendAll({Get(server.port())});
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  EXPECT_EQ(results[0]->body, "ok");
  EXPECT_EQ(server.accepted(), 3);

  // A POST that says it may be sent twice is retried too.
  results = client.SendAll({post(true)});
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  EXPECT_EQ(server.accepted(), 4);
}

TEST_F(AsyncClientTest, ResponsesThatEndTheConnectionAreNotReused) {
  ScriptedServer closing([](int fd) {
    AnswerWith(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
  });
  ScriptedServer unframed([](int fd) { AnswerWith(fd, "HTTP/1.1 200 OK\r\n\r\nuntil close"); });
  AsyncClient client;
  for (int i = 0; i < 2; ++i) {
    std::vector<Result<Response>> results =
        client.SendAll({Get(closing.port()), Get(unframed.port())});
    ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
    EXPECT_EQ(results[0]->body, "ok");
    ASSERT_TRUE(results[1].ok()) << results[1].status().ToString();
    EXPECT_EQ(results[1]->body, "until close");
  }
  EXPECT_EQ(closing.accepted(), 2);
  EXPECT_EQ(unframed.accepted(), 2);
}

TEST_F(AsyncClientTest, ReusedConnectionKeepsTheDeadlineAndIsNotRetriedAfterIt) {
  ScriptedServer server([](int fd) {
    if (!ReadRequestHead(fd) || !SendBytes(fd, kKeptOk)) return;
    DrainUntilClosed(fd);  // the second request gets no answer
  });
  AsyncClient client;
  ASSERT_TRUE(client.SendAll({Get(server.port())})[0].ok());
  const auto start = Clock::now();
  std::vector<Result<Response>> results = client.SendAll({Get(server.port(), "/", 500ms)});
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(results[0].status().message(),
              HasSubstr("no response from http://127.0.0.1:" + std::to_string(server.port()) +
                        " within 500 ms"));
  EXPECT_LT(Clock::now() - start, kGenerous);
  EXPECT_EQ(server.accepted(), 1);
}

TEST_F(AsyncClientTest, IdleConnectionsCloseAfterTheIdleTimeoutAndWithTheClient) {
  ScriptedServer quick(AnswerEveryRequest);
  {
    AsyncClient client(2, 4096, 50ms);
    ASSERT_TRUE(client.SendAll({Get(quick.port())})[0].ok());
    EXPECT_TRUE(quick.WaitForFinished(1));  // closed by the client once idle for 50 ms
  }

  ScriptedServer pair(AnswerOnceAllHaveArrived(2));
  auto client = std::make_unique<AsyncClient>();  // the default idle timeout: 20 s
  std::vector<Result<Response>> results = client->SendAll({Get(pair.port()), Get(pair.port())});
  for (const Result<Response>& result : results) ASSERT_TRUE(result.ok());
  ASSERT_TRUE(client->SendAll({Get(pair.port())})[0].ok());
  EXPECT_EQ(pair.accepted(), 2);  // two at once, then one of them again
  client.reset();
  EXPECT_TRUE(pair.WaitForFinished(2));
}

TEST_F(AsyncClientTest, IdleConnectionsPerEndpointAndInAllAreBounded) {
  ScriptedServer first(AnswerOnceAllHaveArrived(3));
  ScriptedServer second(AnswerOnceAllHaveArrived(2));
  AsyncClient client(2, /*max_in_flight=*/3);
  // Three at once to one endpoint: two stay idle, the third is closed.
  std::vector<Result<Response>> results =
      client.SendAll({Get(first.port()), Get(first.port()), Get(first.port())});
  for (const Result<Response>& result : results) ASSERT_TRUE(result.ok());
  ASSERT_EQ(first.accepted(), 3);
  EXPECT_TRUE(first.WaitForFinished(1));
  // Two at once to another endpoint: with three connections at most, the older idle one to the
  // first goes to make room for the second.
  results = client.SendAll({Get(second.port()), Get(second.port())});
  for (const Result<Response>& result : results) ASSERT_TRUE(result.ok());
  EXPECT_EQ(second.accepted(), 2);
  EXPECT_TRUE(first.WaitForFinished(2));
  ASSERT_TRUE(client.SendAll({Get(first.port())})[0].ok());
  EXPECT_EQ(first.accepted(), 3);  // the one left is reused
}

}  // namespace
}  // namespace fleetwatch::http
