#include "http/server.h"
#include "http/deferred.h"
#include "http/header_rules.h"
#include "http/request_reader.h"
#include "http/tls_context.h"
#include "util/mutex.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fleetwatch::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using namespace std::chrono_literals;

// After an error response the connection is closed, but first what the client is still sending
// is read and dropped for a while: closing a socket with unread input makes the kernel send a
// reset, which can destroy the response before the client reads it.
constexpr auto kLingerTime = 2s;
constexpr size_t kLingerBytes = 16 << 20;
// Written to a connection refused at accept (plain HTTP only), from this constant.
constexpr std::string_view kRefusedResponse =
    "HTTP/1.1 503 Service Unavailable\r\nServer: fleetwatch\r\nContent-Type: text/plain\r\n"
    "Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";
// Pause before accepting again after an accept error (e.g. out of file descriptors).
constexpr auto kAcceptRetryDelay = 50ms;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ToLower(a) == ToLower(b);
}

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        limits_(options_.max_connections,
                authenticates() ? options_.max_unauthenticated_per_address : 0) {}
  ~Impl() { Stop(); }

  Result<uint16_t> Start() FW_EXCLUDES(lifecycle_mutex_, requests_mutex_);
  void Stop() FW_EXCLUDES(lifecycle_mutex_, requests_mutex_);
  ConnectionStats connection_stats() const { return limits_.stats(); }

 private:
  template <typename Stream>
  class Session;

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // Closes a connection over a cap at once, without a session or buffers.
  void Refuse(tcp::socket& socket);
  void RunWorker();

  // Request accounting for a graceful Stop(). BeginRequest() is false once Stop() has given up
  // waiting; the caller then drops the connection without running the handler.
  bool BeginRequest() FW_EXCLUDES(requests_mutex_);
  void EndRequest() FW_EXCLUDES(requests_mutex_);
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  bool authenticates() const {
    return options_.authenticate != nullptr && options_.needs_authentication != nullptr;
  }

  // Runs the handler, turning an exception into a 500 JSON error.
  Response Invoke(Request& request);

  // Deferred answers still awaited, so that Stop() can let go of their sessions before the
  // context goes (a late answer then finds nobody waiting).
  void TrackDeferred(std::shared_ptr<internal::DeferredState> state);
  void UntrackDeferred(const internal::DeferredState* state);

  const ServerOptions options_;
  const Handler handler_;
  ConnectionLimits limits_;  // outlives the sessions, which Stop() destroys

  Mutex lifecycle_mutex_;  // serialises Start() and Stop()
  bool running_ FW_GUARDED_BY(lifecycle_mutex_) = false;
  // Created by Start(), destroyed by Stop(); the acceptor and timer before the context. Written
  // with lifecycle_mutex_ held but only while no worker thread runs, so the workers read them
  // without it (thread start and join order those accesses).
  std::unique_ptr<asio::io_context> io_context_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_
      FW_GUARDED_BY(lifecycle_mutex_);
  std::unique_ptr<tcp::acceptor> acceptor_;    // on its own strand
  std::unique_ptr<asio::steady_timer> retry_;  // on the acceptor's strand
  std::shared_ptr<asio::ssl::context> tls_;    // set by Start() for HTTPS
  std::vector<std::thread> threads_ FW_GUARDED_BY(lifecycle_mutex_);

  std::atomic<bool> stopping_{false};
  Mutex requests_mutex_;
  CondVar requests_done_;
  int in_flight_ FW_GUARDED_BY(requests_mutex_) = 0;
  bool closed_ FW_GUARDED_BY(requests_mutex_) = false;
  std::map<const internal::DeferredState*, std::shared_ptr<internal::DeferredState>> deferred_
      FW_GUARDED_BY(requests_mutex_);
};

// One connection: (TLS handshake,) read a request, run the handler, write the response, repeat
// while keep-alive. All of a session's work runs on its own strand, one step at a time. `Stream`
// is beast::tcp_stream (HTTP) or TlsStream (HTTPS); the steps are the same.
template <typename Stream>
class Server::Impl::Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Session(tcp::socket socket, Server::Impl& server, ConnectionLimits::Slot slot) requires(!kTls)
      : stream_(std::move(socket)), server_(server), slot_(std::move(slot)) {}
  Session(tcp::socket socket, Server::Impl& server, ConnectionLimits::Slot slot,
          asio::ssl::context& tls) requires kTls : stream_(std::move(socket), tls),
                                                   server_(server),
                                                   slot_(std::move(slot)) {}

  void Run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::Start, this->shared_from_this()));
  }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  void Start() {
    if constexpr (kTls) {
      // The handshake gets the same deadline as a request; garbage or plain HTTP fails it.
      Tcp().expires_after(server_.options_.read_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              beast::bind_front_handler(&Session::OnHandshake, shared_from_this()));
    } else {
      ReadRequest();
    }
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      spdlog::debug("http server: TLS handshake failed: {}", ec.message());
      return Close();
    }
    ReadRequest();
  }

  void ReadRequest() {
    parser_.emplace();
    ApplyRequestLimits(*parser_, server_.options_.body_limit_bytes);
    // One deadline covers the wait for the request and all of its bytes: an idle keep-alive
    // connection and a request arriving too slowly are both closed when it passes.
    Tcp().expires_after(server_.options_.read_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    const auto& message = parser_->get();
    auto url = boost::urls::parse_origin_form(message.target());
    if (!url) return RespondError(400, "bad_request", "invalid request target");
    // The body of a request that needs a token is read only once the token passed: an unknown
    // client cannot make the server hold a body. The path is the decoded one the router sees.
    if (server_.authenticates() && server_.options_.needs_authentication(url->path())) {
      Status allowed = server_.options_.authenticate(message[bhttp::field::authorization]);
      if (!allowed.ok()) return RespondClosing(ErrorResponseFor(allowed));
      slot_.MarkAuthenticated();
    }
    if (parser_->is_done()) return OnBody({}, 0);
    const auto expect = message[bhttp::field::expect];
    if (message.version() >= 11 && EqualsIgnoreCase(expect, "100-continue")) {
      continue_.emplace(bhttp::status::continue_, 11);
      bhttp::async_write(stream_, *continue_,
                         beast::bind_front_handler(&Session::OnContinue, shared_from_this()));
      return;
    }
    ReadBody();
  }

  void OnContinue(beast::error_code ec, size_t /*bytes*/) {
    continue_.reset();
    if (ec) return Close();
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return RespondError(
          413, "payload_too_large",
          "request body exceeds " + std::to_string(server_.options_.body_limit_bytes) + " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return RespondError(
          431, "headers_too_large",
          "request headers exceed " + std::to_string(kRequestHeaderLimitBytes) + " bytes");
    }
    // The peer closed, went quiet past the deadline (the stream is closed already), or the
    // connection broke: nothing to answer.
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
        ec == beast::error::timeout || ec == asio::ssl::error::stream_truncated ||
        ec.category() != bhttp::make_error_code(bhttp::error::bad_method).category()) {
      return Close();
    }
    RespondError(400, "bad_request", "malformed HTTP request: " + ec.message());
  }

  void OnBody(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    auto& message = parser_->get();
    Result<Request> request = ToRequest(message);
    if (!request.ok()) return RespondError(400, "bad_request", request.status().message());
    const bool keep_alive = message.keep_alive();
    const unsigned version = message.version();
    parser_.reset();

    if (!server_.BeginRequest()) return Close();
    Response response = server_.Invoke(*request);
    if (response.deferred) return Await(std::move(response.deferred), version, keep_alive);
    Respond(std::move(response), version, keep_alive);
  }

  // The handler answers later (DeferResponse): nothing runs for this connection until the
  // answer is posted to its strand. The request stays counted as in flight until written.
  void Await(std::shared_ptr<internal::DeferredState> state, unsigned version, bool keep_alive) {
    const internal::DeferredState* key = state.get();
    server_.TrackDeferred(state);
    state->OnComplete([self = this->shared_from_this(), key, version, keep_alive](Response r) {
      asio::post(self->stream_.get_executor(),
                 [self, key, version, keep_alive, response = std::move(r)]() mutable {
                   self->server_.UntrackDeferred(key);
                   self->Respond(std::move(response), version, keep_alive);
                 });
    });
  }

  void RespondError(int status, std::string_view code, std::string message) {
    RespondClosing(JsonError(status, code, message));
  }

  // Answers without reading (the rest of) the request, then closes the connection.
  void RespondClosing(Response response) {
    if (!server_.BeginRequest()) return Close();
    Respond(std::move(response), 11, /*keep_alive=*/false);
  }

  // Requires a successful BeginRequest(); OnWrite() ends it.
  void Respond(Response response, unsigned version, bool keep_alive) {
    if (response.deferred) {
      spdlog::error("http: a deferred response was answered with another deferred one");
      response = JsonError(500, "internal", "internal server error");
    } else if (response.status < 200 || response.status > 599) {
      spdlog::error("http handler returned invalid status {}", response.status);
      response = JsonError(500, "internal", "internal server error");
    }
    bhttp::response_header<> header;
    header.version(version);
    header.result(static_cast<unsigned>(response.status));
    header.set(bhttp::field::server, "fleetwatch");
    const bool bodiless = response.status == 204 || response.status == 304;
    if (!bodiless && !response.content_type.empty() && IsHeaderSafe(response.content_type)) {
      header.set(bhttp::field::content_type, response.content_type);
    }
    for (const auto& [name, value] : response.headers) {
      if (name.empty() || !IsHeaderSafe(name) || !IsHeaderSafe(value)) {
        spdlog::warn("http handler returned an invalid header; dropped");
        continue;
      }
      // Framing is the server's business; a handler may only ask to close the connection.
      if (EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "transfer-encoding")) {
        continue;
      }
      if (EqualsIgnoreCase(name, "connection")) {
        if (EqualsIgnoreCase(value, "close")) keep_alive = false;
        continue;
      }
      header.insert(name, value);
    }
    keep_alive_ = keep_alive && !server_.stopping();
    Tcp().expires_after(server_.options_.read_timeout);
    if (response.shared_body && !bodiless) {
      // Sent from the shared bytes themselves (a /metrics body can be hundreds of MB): no copy.
      shared_body_ = std::move(response.shared_body);
      shared_response_.emplace(std::move(header));
      shared_response_->body() =
          bhttp::span_body<const char>::value_type(shared_body_->data(), shared_body_->size());
      shared_response_->keep_alive(keep_alive_);
      shared_response_->prepare_payload();
      bhttp::async_write(stream_, *shared_response_,
                         beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
      return;
    }
    response_ = bhttp::response<bhttp::string_body>(std::move(header));
    if (!bodiless) response_.body() = std::move(response.body);
    response_.keep_alive(keep_alive_);
    response_.prepare_payload();
    bhttp::async_write(stream_, response_,
                       beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t /*bytes*/) {
    server_.EndRequest();
    response_ = {};
    shared_response_.reset();
    shared_body_.reset();
    if (ec) return Close();
    if (!keep_alive_ || server_.stopping()) return Linger();
    ReadRequest();
  }

  // Half-closes, then drops what the client still sends until it closes too (see kLingerTime).
  // Over TLS the half-close is a close_notify, after which OpenSSL reads and drops the rest.
  void Linger() {
    Tcp().expires_after(
        std::min<std::chrono::steady_clock::duration>(kLingerTime, server_.options_.read_timeout));
    if constexpr (kTls) {
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->Close(); });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      drain_buffer_ = std::make_unique<std::array<char, 8192>>();
      Drain({}, 0);
    }
  }

  void Drain(beast::error_code ec, size_t bytes) {
    drained_ += bytes;
    if (ec || drained_ > kLingerBytes) return Close();
    stream_.async_read_some(asio::buffer(*drain_buffer_),
                            beast::bind_front_handler(&Session::Drain, shared_from_this()));
  }

  void Close() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().close();
  }

  Stream stream_;
  Server::Impl& server_;
  ConnectionLimits::Slot slot_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  bhttp::response<bhttp::string_body> response_;  // alive until its write completes
  // Or, for a Response with a shared_body: the message over those bytes, and the bytes.
  std::optional<bhttp::response<bhttp::span_body<const char>>> shared_response_;
  std::shared_ptr<const std::string> shared_body_;
  bool keep_alive_ = false;
  size_t drained_ = 0;
  // Made by Linger() only: an idle or reading connection does not pay for it.
  std::unique_ptr<std::array<char, 8192>> drain_buffer_;
};

Result<uint16_t> Server::Impl::Start() {
  MutexLock lifecycle(lifecycle_mutex_);
  if (running_) return FailedPrecondition("http server already started");
  const std::string where = options_.host + ":" + std::to_string(options_.port);

  std::shared_ptr<asio::ssl::context> tls;
  if (options_.tls) {
    FW_ASSIGN_OR_RETURN(tls, internal::NewServerContext(*options_.tls));
  }
  auto io_context = std::make_unique<asio::io_context>(std::max(1, options_.threads));
  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, options_.port);
  } else {
    tcp::resolver resolver(*io_context);
    auto results =
        resolver.resolve(options_.host, std::to_string(options_.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Unavailable("cannot listen on " + where + ": cannot resolve host" +
                         (ec ? ": " + ec.message() : ""));
    }
    endpoint = results.begin()->endpoint();
  }

  auto acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(*io_context));
  auto fail = [&](const char* step) {
    return Unavailable("cannot listen on " + where + ": " + step + ": " + ec.message());
  };
  acceptor->open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  // Lets a restarted server bind while old connections sit in TIME_WAIT; Linux still refuses a
  // second listener on the same port.
  acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return fail("setsockopt");
  acceptor->bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  const uint16_t port = acceptor->local_endpoint(ec).port();
  if (ec) return fail("getsockname");

  {
    MutexLock lock(requests_mutex_);
    in_flight_ = 0;
    closed_ = false;
  }
  stopping_.store(false, std::memory_order_release);
  tls_ = std::move(tls);
  retry_ = std::make_unique<asio::steady_timer>(acceptor->get_executor());
  acceptor_ = std::move(acceptor);
  io_context_ = std::move(io_context);
  work_.emplace(io_context_->get_executor());
  asio::post(acceptor_->get_executor(), [this] { DoAccept(); });
  const int threads = std::max(1, options_.threads);
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { RunWorker(); });
  running_ = true;
  spdlog::info("http server listening on {}://{}:{}", tls_ ? "https" : "http", options_.host, port);
  return port;
}

void Server::Impl::RunWorker() {
  while (true) {
    try {
      io_context_->run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("http server worker: unexpected exception: {}", e.what());
    }
  }
}

void Server::Impl::Stop() {
  MutexLock lifecycle(lifecycle_mutex_);
  if (!running_) return;
  stopping_.store(true, std::memory_order_release);
  asio::post(acceptor_->get_executor(), [this] {
    beast::error_code ignored;
    acceptor_->close(ignored);
    retry_->cancel();
  });
  {
    MutexLock lock(requests_mutex_);
    const auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;
    while (in_flight_ != 0 && requests_done_.WaitUntil(requests_mutex_, deadline)) {
    }
    closed_ = true;
    if (in_flight_ > 0) {
      spdlog::warn("http server stopping with {} requests still in flight", in_flight_);
    }
  }
  work_.reset();
  io_context_->stop();
  // A handler still running past the grace period is waited for: a thread cannot be abandoned.
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  // Answers still awaited will find nobody: their sessions go now, with the context still there.
  std::map<const internal::DeferredState*, std::shared_ptr<internal::DeferredState>> awaited;
  {
    MutexLock lock(requests_mutex_);
    awaited.swap(deferred_);
  }
  for (auto& [key, state] : awaited) state->Abandon();
  awaited.clear();
  // Destroying the context destroys the pending operations and with them the sessions, which
  // closes the remaining (idle or lingering) connections.
  retry_.reset();
  acceptor_.reset();
  io_context_.reset();
  running_ = false;
  spdlog::info("http server stopped");
}

void Server::Impl::DoAccept() {
  acceptor_->async_accept(asio::make_strand(*io_context_),
                          beast::bind_front_handler(&Impl::OnAccept, this));
}

void Server::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping() || !acceptor_->is_open()) return;
  if (ec) {
    spdlog::warn("http server: accept failed: {}", ec.message());
    retry_->expires_after(kAcceptRetryDelay);
    retry_->async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping() && acceptor_->is_open()) DoAccept();
    });
    return;
  }
  beast::error_code address_ec;
  const tcp::endpoint peer = socket.remote_endpoint(address_ec);
  std::optional<ConnectionLimits::Slot> slot =
      limits_.Admit(address_ec ? std::string() : peer.address().to_string());
  if (!slot) {
    Refuse(socket);
  } else if (tls_) {
    std::make_shared<Session<TlsStream>>(std::move(socket), *this, std::move(*slot), *tls_)->Run();
  } else {
    std::make_shared<Session<beast::tcp_stream>>(std::move(socket), *this, std::move(*slot))->Run();
  }
  DoAccept();
}

void Server::Impl::Refuse(tcp::socket& socket) {
  beast::error_code ignored;
  if (!tls_) {
    // Never waits: what does not fit in the socket's send buffer now is not sent.
    socket.non_blocking(true, ignored);
    if (!ignored) socket.write_some(asio::buffer(kRefusedResponse), ignored);
  }
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

bool Server::Impl::BeginRequest() {
  MutexLock lock(requests_mutex_);
  if (closed_) return false;
  ++in_flight_;
  return true;
}

void Server::Impl::EndRequest() {
  MutexLock lock(requests_mutex_);
  if (--in_flight_ == 0) requests_done_.NotifyAll();
}

void Server::Impl::TrackDeferred(std::shared_ptr<internal::DeferredState> state) {
  MutexLock lock(requests_mutex_);
  const internal::DeferredState* key = state.get();
  deferred_.emplace(key, std::move(state));
}

void Server::Impl::UntrackDeferred(const internal::DeferredState* state) {
  MutexLock lock(requests_mutex_);
  deferred_.erase(state);
}

Response Server::Impl::Invoke(Request& request) {
  try {
    return handler_(request);
  } catch (const std::exception& e) {
    spdlog::error("http handler for {} {} threw: {}", request.method, request.path, e.what());
  } catch (...) {
    spdlog::error("http handler for {} {} threw a non-standard exception", request.method,
                  request.path);
  }
  return JsonError(500, "internal", "internal server error");
}

Server::Server(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Server::~Server() { Stop(); }

Result<uint16_t> Server::Start() { return impl_->Start(); }

void Server::Stop() { impl_->Stop(); }

ConnectionStats Server::connection_stats() const { return impl_->connection_stats(); }

}  // namespace fleetwatch::http
