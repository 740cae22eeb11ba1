#include "http/async_client.h"
#include "http/header_rules.h"
#include "http/tls_context.h"
#include "util/mutex.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cerrno>
#include <deque>
#include <exception>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <variant>

#include <sys/socket.h>

namespace fleetwatch::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using Callback = std::function<void(Result<Response>)>;

constexpr uint32_t kResponseHeaderLimitBytes = 64 * 1024;
// A connection's receive buffer starts at this size, so a small response (a status poll's
// JSON, a few KB) arrives in one read rather than several of 512 bytes; a connection keeps a
// buffer of this size between requests and gives back a larger one (AsyncRequest::
// read_buffer_bytes) when it goes idle.
constexpr size_t kReadBufferBytes = 4096;

// ASCII case-insensitive equality of header names.
bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
         });
}

// "[::1]" → "::1"; anything else unchanged.
std::string_view StripBrackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

// "host:port", IPv6 literals in brackets: for messages and the Host header.
std::string HostPort(std::string_view host, uint16_t port) {
  const std::string_view bare = StripBrackets(host);
  const bool ipv6 = bare.find(':') != std::string_view::npos;
  return (ipv6 ? "[" + std::string(bare) + "]" : std::string(bare)) + ":" + std::to_string(port);
}

// "http://host:port" or "https://host:port": how messages name the peer.
std::string Origin(const AsyncRequest& request) {
  return (request.tls ? "https://" : "http://") + HostPort(request.host, request.port);
}

Status Validate(const AsyncRequest& request) {
  if (request.host.empty()) return InvalidArgument("request has no host");
  if (!IsHeaderSafe(request.host) || request.host.find_first_of(" \t/") != std::string::npos) {
    return InvalidArgument("invalid host \"" + request.host + "\"");
  }
  if (request.port == 0) return InvalidArgument("request to " + request.host + " has no port");
  if (!IsToken(request.method)) {
    return InvalidArgument("invalid HTTP method \"" + request.method + "\"");
  }
  if (request.target.empty() || request.target.front() != '/') {
    return InvalidArgument("request target must start with '/': \"" + request.target + "\"");
  }
  if (!IsHeaderSafe(request.target) || request.target.find_first_of(" \t") != std::string::npos) {
    return InvalidArgument("request target is not encoded: \"" + request.target + "\"");
  }
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name) || !IsHeaderSafe(value)) {
      return InvalidArgument("invalid HTTP header \"" + name + "\"");
    }
  }
  return Status::Ok();
}

// Callbacks belong to the caller; one that throws must not take an I/O thread down.
void Deliver(const Callback& done, Result<Response> result) {
  try {
    done(std::move(result));
  } catch (const std::exception& e) {
    spdlog::error("AsyncClient callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("AsyncClient callback threw a non-standard exception");
  }
}

Status Cancelled(const std::string& origin) {
  return Unavailable("request to " + origin + " cancelled: the client is shutting down");
}

constexpr size_t kMaxIdlePerEndpoint = 2;

// Which requests may share a connection: scheme, host, port and, for HTTPS, every setting that
// decides how the server was checked (the full CA text, not a hash of it). The host has no line
// breaks (Validate); the fingerprint's length keeps it apart from the CA text whatever it holds.
std::string EndpointKey(const AsyncRequest& request) {
  std::string key = request.tls ? "https\n" : "http\n";
  key += StripBrackets(request.host);
  key += '\n';
  key += std::to_string(request.port);
  if (request.tls) {
    key += '\n';
    key += std::to_string(request.tls->fingerprint.size());
    key += ':';
    key += request.tls->fingerprint;
    key += '\n';
    key += request.tls->ca_certificates_pem;
  }
  return key;
}

bool IdempotentMethod(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

using Strand = asio::strand<asio::io_context::executor_type>;

// One connection to one endpoint, plain or TLS. Used by one operation at a time, or idle in the
// client's pool; its members are touched on `strand` only, except `idle_id` (the client's mutex).
// Its idle timer is armed when it first goes idle and not moved by each reuse: when it fires,
// the connection is closed if it is still idle past `idle_deadline`, the timer armed again for
// the deadline if it went idle again since, and left alone while a request uses it (the next
// release arms it again); one timer wait per idle period, not one per request.
struct Connection {
  Connection(Strand s, std::string k)
      : strand(std::move(s)),
        stream(std::in_place_index<0>, strand),
        idle_timer(strand),
        key(std::move(k)) {}

  beast::tcp_stream& Tcp() {
    return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); },
                      stream);
  }

  // True when the server has neither closed the connection nor sent anything unasked since the
  // last response (a non-blocking peek), so a request may go on it.
  bool LooksReusable() {
    auto& socket = Tcp().socket();
    if (!socket.is_open()) return false;
    char byte;
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // No TLS close_notify: the connection is given up on or idle, and the server expects neither.
  void Close() {
    idle_timer.cancel();
    idle_timer_armed = false;
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().close();
  }

  Strand strand;
  std::shared_ptr<asio::ssl::context> tls_context;  // https only; outlives the stream
  std::variant<beast::tcp_stream, TlsStream> stream;
  asio::steady_timer idle_timer;
  bool idle_timer_armed = false;                        // a wait on idle_timer is pending
  std::chrono::steady_clock::time_point idle_deadline;  // when it may close if still idle
  beast::flat_buffer buffer;                            // receives responses; empty between them
  const std::string key;
  uint64_t idle_id = 0;  // guarded by the client's mutex: its place in the idle pool, 0 if none
};

}  // namespace

class AsyncClient::Impl {
 public:
  Impl(int threads, size_t max_in_flight, std::chrono::milliseconds idle_timeout,
       std::string user_agent);
  ~Impl();

  void Send(AsyncRequest request, Callback done) FW_EXCLUDES(mutex_);

 private:
  class Operation;
  struct Pending {
    AsyncRequest request;
    std::string key;
    Callback done;
  };

  // Creates, registers and starts an operation on an idle connection to its endpoint, or on a
  // fresh one (closing the oldest idle connection when `max_in_flight_` are open); requires a
  // slot counted in `in_flight_`.
  void StartLocked(AsyncRequest request, std::string key, Callback done) FW_REQUIRES(mutex_);
  // Called once by every started operation, on its strand, before its callback: keeps
  // `connection` (may be null) idle for reuse when `reusable`, closes it otherwise.
  void ReleaseConnection(std::shared_ptr<Connection> connection, bool reusable) FW_EXCLUDES(mutex_);
  // Removes an idle connection from the pool (false when it is no longer there).
  bool TakeIdleLocked(Connection& connection) FW_REQUIRES(mutex_);
  // Waits on the idle timer of `connection` (on its strand) until its idle_deadline.
  void ArmIdleTimer(const std::shared_ptr<Connection>& connection);
  // The idle timer of `connection` fired (on its strand): closes it when it is idle and past its
  // idle deadline, waits again when it is idle and not yet past it.
  void ExpireIdle(const std::shared_ptr<Connection>& connection) FW_EXCLUDES(mutex_);
  // Called once by every started operation, after its callback: frees its slot or hands it to
  // the next queued request.
  void OnFinished(Operation* operation) FW_EXCLUDES(mutex_);

  const size_t max_in_flight_;
  const std::chrono::milliseconds idle_timeout_;
  const std::string user_agent_;
  asio::io_context io_context_;  // declared first: outlives everything that uses it
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;

  Mutex mutex_;
  bool shutting_down_ FW_GUARDED_BY(mutex_) = false;
  size_t in_flight_ FW_GUARDED_BY(mutex_) = 0;  // started and not finished
  std::deque<Pending> queue_ FW_GUARDED_BY(mutex_);
  std::unordered_map<Operation*, std::shared_ptr<Operation>> active_ FW_GUARDED_BY(mutex_);
  // Connections held by operations (one each until ReleaseConnection) plus idle ones; at most
  // max_in_flight_.
  size_t connections_ FW_GUARDED_BY(mutex_) = 0;
  // Idle connections by idle id (increasing: the first is the oldest), and their ids by
  // endpoint (at most kMaxIdlePerEndpoint each, the newest last).
  uint64_t next_idle_id_ FW_GUARDED_BY(mutex_) = 0;
  std::map<uint64_t, std::shared_ptr<Connection>> idle_ FW_GUARDED_BY(mutex_);
  std::unordered_map<std::string, std::vector<uint64_t>> idle_by_endpoint_ FW_GUARDED_BY(mutex_);
  internal::ClientContextCache tls_contexts_;
};

// One request: an idle connection to reuse or resolve (names only), connect and TLS handshake
// (https); then write, read, on the strand of its connection. Every step checks `finished_`
// first, so a late completion after a timeout or cancellation does nothing, and Finish() runs
// the callback exactly once. One timer bounds the whole request: armed once when it begins, for
// its deadline, and cancelled when it ends; when it fires first the request ends with the
// timeout of the step it was at, and the connection (closed) aborts what was pending on it. The
// streams carry no expiry of their own (each read or write would arm and cancel one).
class AsyncClient::Impl::Operation : public std::enable_shared_from_this<Operation> {
 public:
  Operation(Impl& client, AsyncRequest request, std::string key, std::shared_ptr<Connection> idle,
            Callback done)
      : client_(client),
        strand_(idle ? idle->strand : asio::make_strand(client.io_context_)),
        deadline_timer_(strand_),
        connection_(std::move(idle)),
        request_(std::move(request)),
        key_(std::move(key)),
        done_(std::move(done)),
        may_retry_(IdempotentMethod(request_.method) || request_.retry_on_stale_connection) {}

  // Starts the request on its strand; never runs it inline.
  void Run() {
    asio::post(strand_, [self = shared_from_this()] { self->Begin(); });
  }

  // Ends the request with Unavailable (unless it has ended already).
  void Cancel() {
    asio::post(strand_, [self = shared_from_this()] { self->Finish(Cancelled(self->origin())); });
  }

 private:
  void Begin() {
    if (finished_) return;
    deadline_ = std::chrono::steady_clock::now() + request_.timeout;
    deadline_timer_.expires_at(deadline_);
    deadline_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->OnDeadline();
    });
    BuildMessage();
    if (connection_) {
      if (connection_->LooksReusable()) {
        reused_ = true;
        Write();
        return;
      }
      connection_->Close();  // closed by the server while idle: its slot goes to a fresh one
      connection_.reset();
    }
    Open();
  }

  // The deadline passed before the request ended: it fails with the timeout of the step it is at.
  void OnDeadline() {
    if (finished_) return;
    switch (step_) {
      case Step::kResolve:
        return Finish(Unavailable("cannot reach " + origin() + ": cannot resolve host within " +
                                  timeout_text()));
      case Step::kConnect:
        return Finish(
            Unavailable("cannot reach " + origin() + ": no connection within " + timeout_text()));
      case Step::kHandshake:
        return Finish(
            Unavailable("no TLS handshake with " + origin() + " within " + timeout_text()));
      case Step::kExchange:
        return Finish(Unavailable("no response from " + origin() + " within " + timeout_text()));
    }
  }

  // A fresh connection (this operation's slot is counted already).
  void Open() {
    step_ = Step::kConnect;
    connection_ = std::make_shared<Connection>(strand_, key_);
    const std::string host(StripBrackets(request_.host));
    if (request_.tls) {
      Result<std::shared_ptr<asio::ssl::context>> context =
          client_.tls_contexts_.Get(*request_.tls);
      if (!context.ok()) return Finish(context.status());
      connection_->tls_context = std::move(context).value();
      TlsStream& tls = connection_->stream.emplace<TlsStream>(strand_, *connection_->tls_context);
      Status prepared = internal::PrepareClient(tls.native_handle(), *request_.tls, host);
      if (!prepared.ok()) return Finish(prepared);
    }
    if (!endpoints_.empty()) {  // resolved for a connection before
      Connect();
      return;
    }
    beast::error_code address_error;
    const auto address = asio::ip::make_address(host, address_error);
    if (!address_error) {
      endpoints_.emplace_back(address, request_.port);
      Connect();
      return;
    }
    step_ = Step::kResolve;
    resolving_ = std::make_unique<tcp::resolver>(strand_);
    resolving_->async_resolve(host, std::to_string(request_.port),
                              [self = shared_from_this()](
                                  beast::error_code ec, const tcp::resolver::results_type& found) {
                                self->OnResolve(ec, found);
                              });
  }

  // The request's bytes: its line, the caller's headers (but Transfer-Encoding, Content-Length
  // and Connection), Host and User-Agent unless given, Content-Length, Connection; then the
  // body. Validate checked every part, so none can break the framing.
  void BuildMessage() {
    head_ = request_.method == "HEAD";
    wire_.clear();
    wire_.reserve(256 + request_.target.size() + request_.body.size());
    wire_ += request_.method;
    wire_ += ' ';
    wire_ += request_.target;
    wire_ += " HTTP/1.1\r\n";
    bool has_host = false, has_user_agent = false;
    for (const auto& [name, value] : request_.headers) {
      if (SameName(name, "Transfer-Encoding") || SameName(name, "Content-Length") ||
          SameName(name, "Connection")) {
        continue;
      }
      has_host |= SameName(name, "Host");
      has_user_agent |= SameName(name, "User-Agent");
      AppendHeader(name, value);
    }
    if (!has_host) AppendHeader("Host", HostPort(request_.host, request_.port));
    if (!has_user_agent) AppendHeader("User-Agent", client_.user_agent_);
    AppendHeader("Content-Length", std::to_string(request_.body.size()));
    AppendHeader("Connection", client_.idle_timeout_.count() > 0 ? "keep-alive" : "close");
    wire_ += "\r\n";
    wire_ += request_.body;
    NewParser();
  }

  void AppendHeader(std::string_view name, std::string_view value) {
    wire_ += name;
    wire_ += ": ";
    wire_ += value;
    wire_ += "\r\n";
  }

  void NewParser() {
    parser_.emplace();
    parser_->header_limit(kResponseHeaderLimitBytes);
    parser_->body_limit(request_.max_response_bytes);
    if (head_) parser_->skip(true);
  }

  // The connection's receive buffer, empty and as large as this request asks for.
  beast::flat_buffer& ReadBuffer() {
    beast::flat_buffer& buffer = connection_->buffer;
    buffer.clear();
    buffer.reserve(std::max(kReadBufferBytes,
                            std::min(request_.read_buffer_bytes,
                                     request_.max_response_bytes + kResponseHeaderLimitBytes)));
    return buffer;
  }

  void OnResolve(beast::error_code ec, const tcp::resolver::results_type& found) {
    if (finished_) return;
    if (ec) {
      return Finish(
          Unavailable("cannot reach " + origin() + ": cannot resolve host: " + ec.message()));
    }
    for (const auto& entry : found) endpoints_.push_back(entry.endpoint());
    Connect();
  }

  beast::tcp_stream& Tcp() { return connection_->Tcp(); }

  void Connect() {
    step_ = Step::kConnect;
    Tcp().async_connect(endpoints_, [self = shared_from_this(), connection = connection_](
                                        beast::error_code ec, const tcp::endpoint&) {
      (void)connection;  // the stream lives until its handler ran, even if Finish let it go
      self->OnConnect(ec);
    });
  }

  void OnConnect(beast::error_code ec) {
    if (finished_) return;
    if (ec) return Finish(Unavailable("cannot reach " + origin() + ": " + ec.message()));
    if (auto* tls = std::get_if<TlsStream>(&connection_->stream)) {
      step_ = Step::kHandshake;
      tls->async_handshake(
          asio::ssl::stream_base::client,
          [self = shared_from_this(), connection = connection_](beast::error_code error) {
            (void)connection;  // as in Connect
            self->OnHandshake(error);
          });
      return;
    }
    Write();
  }

  void OnHandshake(beast::error_code ec) {
    if (finished_) return;
    TlsStream& tls = std::get<TlsStream>(connection_->stream);
    if (ec) {
      return Finish(Unavailable(
          origin() + ": " + internal::HandshakeFailure(tls.native_handle(), ec, *request_.tls)));
    }
    Status checked = internal::CheckPeer(tls.native_handle(), *request_.tls);
    if (!checked.ok()) return Finish(Unavailable(origin() + ": " + checked.message()));
    Write();
  }

  void Write() {
    step_ = Step::kExchange;
    std::visit(
        [this](auto& stream) {
          asio::async_write(stream, asio::buffer(wire_),
                            [self = shared_from_this(), connection = connection_](
                                beast::error_code error, size_t) {
                              (void)connection;  // as in Connect
                              self->OnWrite(error);
                            });
        },
        connection_->stream);
  }

  void OnWrite(beast::error_code ec) {
    if (finished_) return;
    if (ec) return RetryOrFinish(ec);
    std::visit(
        [this](auto& stream) {
          bhttp::async_read(stream, ReadBuffer(), *parser_,
                            [self = shared_from_this(), connection = connection_](
                                beast::error_code error, size_t) {
                              (void)connection;  // as in Connect
                              self->OnRead(error);
                            });
        },
        connection_->stream);
  }

  void OnRead(beast::error_code ec) {
    if (finished_) return;
    if (ec) return RetryOrFinish(ec);
    auto& message = parser_->get();
    Response response;
    response.status = static_cast<int>(message.result_int());
    response.content_type = std::string(message[bhttp::field::content_type]);
    for (const auto& field : message) {
      response.headers.emplace_back(ToLower(field.name_string()), std::string(field.value()));
    }
    response.body = std::move(message.body());
    // Reusable when the server keeps it open, the body had a length and nothing else arrived.
    reusable_ = message.keep_alive() && !parser_->need_eof() && connection_->buffer.size() == 0;
    Finish(std::move(response));
  }

  // A reused connection that ends before any byte of the response was most likely closed by the
  // server while idle: the request goes once more on a fresh connection when that is safe.
  void RetryOrFinish(beast::error_code ec) {
    const bool nothing_received = !parser_->got_some() && connection_->buffer.size() == 0;
    if (reused_ && may_retry_ && nothing_received) {
      reused_ = false;
      connection_->Close();
      connection_.reset();
      NewParser();
      Open();
      return;
    }
    Finish(IoError(ec));
  }

  // A failure while writing the request or reading the response.
  Status IoError(beast::error_code ec) const {
    if (ec == bhttp::error::body_limit) {
      return Status(StatusCode::kPayloadTooLarge, "response from " + origin() + " exceeds " +
                                                      std::to_string(request_.max_response_bytes) +
                                                      " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return Status(StatusCode::kPayloadTooLarge, "response headers from " + origin() + " exceed " +
                                                      std::to_string(kResponseHeaderLimitBytes) +
                                                      " bytes");
    }
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
        ec == asio::ssl::error::stream_truncated) {
      return Unavailable("connection to " + origin() + " closed before a complete response");
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
      return Unavailable("malformed response from " + origin() + ": " + ec.message());
    }
    return Unavailable("connection to " + origin() + " failed: " + ec.message());
  }

  void Finish(Result<Response> result) {
    if (finished_) return;
    finished_ = true;
    deadline_timer_.cancel();
    if (resolving_) resolving_->cancel();
    // Back to the pool before the callback, so that a request the callback sends can reuse it.
    client_.ReleaseConnection(std::move(connection_), reusable_ && result.ok());
    Callback done = std::move(done_);
    Deliver(done, std::move(result));
    client_.OnFinished(this);
  }

  // For messages only: built when one is.
  std::string origin() const { return Origin(request_); }
  std::string timeout_text() const { return std::to_string(request_.timeout.count()) + " ms"; }

  // Where the request is, for the message of a timeout.
  enum class Step { kResolve, kConnect, kHandshake, kExchange };

  Impl& client_;
  Strand strand_;
  asio::steady_timer deadline_timer_;  // waits for deadline_ from Begin until Finish
  Step step_ = Step::kConnect;
  std::shared_ptr<Connection> connection_;  // null before Begin unless reused, and after Finish
  // Name resolution, made only for a host that is not an IP literal: the operation stays small
  // (one is allocated per request).
  std::unique_ptr<tcp::resolver> resolving_;
  AsyncRequest request_;
  const std::string key_;
  Callback done_;
  const bool may_retry_;

  std::chrono::steady_clock::time_point deadline_;
  std::vector<tcp::endpoint> endpoints_;
  std::string wire_;  // the request as sent (BuildMessage)
  bool head_ = false;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  bool reused_ = false;    // on an idle connection and not retried yet
  bool reusable_ = false;  // the response leaves the connection fit for another request
  bool finished_ = false;
};

AsyncClient::Impl::Impl(int threads, size_t max_in_flight, std::chrono::milliseconds idle_timeout,
                        std::string user_agent)
    : max_in_flight_(std::max<size_t>(max_in_flight, 1)),
      idle_timeout_(std::max(idle_timeout, std::chrono::milliseconds(0))),
      user_agent_(std::move(user_agent)),
      io_context_(std::max(threads, 1)),
      work_(io_context_.get_executor()) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    threads_.emplace_back([this] { io_context_.run(); });
  }
}

AsyncClient::Impl::~Impl() {
  std::deque<Pending> queued;
  std::vector<std::shared_ptr<Operation>> active;
  std::vector<std::shared_ptr<Connection>> idle;
  {
    MutexLock lock(mutex_);
    shutting_down_ = true;
    queued.swap(queue_);
    for (const auto& [key, operation] : active_) active.push_back(operation);
    for (auto& [id, connection] : idle_) {
      connection->idle_id = 0;
      idle.push_back(std::move(connection));
    }
    connections_ -= idle_.size();
    idle_.clear();
    idle_by_endpoint_.clear();
  }
  for (const auto& operation : active) operation->Cancel();
  active.clear();
  for (std::shared_ptr<Connection>& connection : idle) {
    Strand strand = connection->strand;
    asio::post(strand, [connection = std::move(connection)] { connection->Close(); });
  }
  for (Pending& pending : queued) {
    asio::post(io_context_, [done = std::move(pending.done), origin = Origin(pending.request)] {
      Deliver(done, Cancelled(origin));
    });
  }
  // Posted work above keeps the threads running until every callback has been delivered.
  work_.reset();
  for (std::thread& thread : threads_) thread.join();
}

void AsyncClient::Impl::Send(AsyncRequest request, Callback done) {
  Status invalid = Validate(request);
  std::string key = invalid.ok() ? EndpointKey(request) : std::string();
  MutexLock lock(mutex_);
  if (shutting_down_) {
    // Only a callback racing the destructor gets here; it runs on an I/O thread already.
    lock.Unlock();
    Deliver(done, invalid.ok() ? Cancelled(Origin(request)) : invalid);
    return;
  }
  if (!invalid.ok()) {
    asio::post(io_context_,
               [done = std::move(done), invalid = std::move(invalid)] { Deliver(done, invalid); });
    return;
  }
  if (in_flight_ >= max_in_flight_) {
    queue_.push_back({std::move(request), std::move(key), std::move(done)});
    return;
  }
  ++in_flight_;
  StartLocked(std::move(request), std::move(key), std::move(done));
}

void AsyncClient::Impl::StartLocked(AsyncRequest request, std::string key, Callback done) {
  std::shared_ptr<Connection> idle;
  if (auto found = idle_by_endpoint_.find(key); found != idle_by_endpoint_.end()) {
    idle = idle_.at(found->second.back());
    TakeIdleLocked(*idle);  // its slot passes to this operation
  } else {
    if (connections_ >= max_in_flight_ && !idle_.empty()) {
      std::shared_ptr<Connection> oldest = idle_.begin()->second;
      TakeIdleLocked(*oldest);
      --connections_;
      Strand strand = oldest->strand;
      asio::post(strand, [oldest = std::move(oldest)] { oldest->Close(); });
    }
    ++connections_;
  }
  auto operation = std::make_shared<Operation>(*this, std::move(request), std::move(key),
                                               std::move(idle), std::move(done));
  active_.emplace(operation.get(), operation);
  // Posted while the lock is held, so the destructor cannot release the threads before this
  // operation is both visible to it and queued on the context.
  operation->Run();
}

bool AsyncClient::Impl::TakeIdleLocked(Connection& connection) {
  if (connection.idle_id == 0) return false;
  auto ids = idle_by_endpoint_.find(connection.key);
  FW_CHECK(ids != idle_by_endpoint_.end(), "an idle connection missing from its endpoint");
  std::erase(ids->second, connection.idle_id);
  if (ids->second.empty()) idle_by_endpoint_.erase(ids);
  idle_.erase(connection.idle_id);
  connection.idle_id = 0;
  return true;
}

void AsyncClient::Impl::ReleaseConnection(std::shared_ptr<Connection> connection, bool reusable) {
  uint64_t idle_id = 0;
  {
    MutexLock lock(mutex_);
    if (connection && reusable && !shutting_down_ && idle_timeout_.count() > 0) {
      std::vector<uint64_t>& ids = idle_by_endpoint_[connection->key];
      if (ids.size() < kMaxIdlePerEndpoint) {
        idle_id = ++next_idle_id_;
        ids.push_back(idle_id);
        idle_.emplace(idle_id, connection);
        connection->idle_id = idle_id;
      }
    }
    if (idle_id == 0) --connections_;
  }
  if (!connection) return;
  if (idle_id == 0) {
    connection->Close();
    return;
  }
  // On the connection's strand (the caller's): nothing else touches it before this returns.
  if (connection->buffer.capacity() > kReadBufferBytes) connection->buffer = beast::flat_buffer();
  connection->idle_deadline = std::chrono::steady_clock::now() + idle_timeout_;
  if (!connection->idle_timer_armed) ArmIdleTimer(connection);
}

void AsyncClient::Impl::ArmIdleTimer(const std::shared_ptr<Connection>& connection) {
  connection->idle_timer_armed = true;
  connection->idle_timer.expires_at(connection->idle_deadline);
  connection->idle_timer.async_wait([this, connection](beast::error_code ec) {
    if (!ec) ExpireIdle(connection);
  });
}

void AsyncClient::Impl::ExpireIdle(const std::shared_ptr<Connection>& connection) {
  connection->idle_timer_armed = false;
  {
    MutexLock lock(mutex_);
    if (connection->idle_id == 0) return;  // taken for a request (its release arms the timer)
    if (std::chrono::steady_clock::now() < connection->idle_deadline) {
      ArmIdleTimer(connection);  // idle again since the timer was armed
      return;
    }
    TakeIdleLocked(*connection);
    --connections_;
  }
  connection->Close();
}

void AsyncClient::Impl::OnFinished(Operation* operation) {
  MutexLock lock(mutex_);
  active_.erase(operation);
  if (shutting_down_ || queue_.empty()) {
    --in_flight_;
    return;
  }
  Pending next = std::move(queue_.front());
  queue_.pop_front();
  StartLocked(std::move(next.request), std::move(next.key), std::move(next.done));
}

AsyncClient::AsyncClient(int threads, size_t max_in_flight, std::chrono::milliseconds idle_timeout,
                         std::string user_agent)
    : impl_(std::make_unique<Impl>(threads, max_in_flight, idle_timeout, std::move(user_agent))) {}

AsyncClient::~AsyncClient() = default;

void AsyncClient::Send(AsyncRequest request, std::function<void(Result<Response>)> done) {
  impl_->Send(std::move(request), std::move(done));
}

std::vector<Result<Response>> AsyncClient::SendAll(std::vector<AsyncRequest> requests) {
  struct Collected {
    Mutex mutex;
    CondVar all_done;
    size_t remaining FW_GUARDED_BY(mutex) = 0;
    std::vector<std::optional<Result<Response>>> results FW_GUARDED_BY(mutex);
  };
  auto collected = std::make_shared<Collected>();
  {
    MutexLock lock(collected->mutex);
    collected->remaining = requests.size();
    collected->results.resize(requests.size());
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    impl_->Send(std::move(requests[i]), [collected, i](Result<Response> result) {
      MutexLock lock(collected->mutex);
      collected->results[i].emplace(std::move(result));
      if (--collected->remaining == 0) collected->all_done.NotifyAll();
    });
  }
  MutexLock lock(collected->mutex);
  while (collected->remaining != 0) collected->all_done.Wait(collected->mutex);
  std::vector<Result<Response>> results;
  results.reserve(collected->results.size());
  for (auto& result : collected->results) results.push_back(std::move(*result));
  return results;
}

}  // namespace fleetwatch::http
