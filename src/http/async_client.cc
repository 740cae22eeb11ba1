#include "http/async_client.h"
#include "http/header_rules.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace fleetwatch::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Callback = std::function<void(Result<Response>)>;

constexpr uint32_t kResponseHeaderLimitBytes = 64 * 1024;

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

Status Cancelled(const std::string& host_port) {
  return Unavailable("request to " + host_port + " cancelled: the client is shutting down");
}

}  // namespace

class AsyncClient::Impl {
 public:
  Impl(int threads, size_t max_in_flight);
  ~Impl();

  void Send(AsyncRequest request, Callback done);

 private:
  class Operation;
  struct Pending {
    AsyncRequest request;
    Callback done;
  };

  // Creates, registers and starts an operation; requires mutex_ held and a slot counted.
  void StartLocked(AsyncRequest request, Callback done);
  // Called once by every started operation, after its callback: frees its slot or hands it to
  // the next queued request.
  void OnFinished(Operation* operation);

  const size_t max_in_flight_;
  asio::io_context io_context_;  // declared first: outlives everything that uses it
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;

  std::mutex mutex_;
  bool shutting_down_ = false;  // guarded by mutex_
  size_t in_flight_ = 0;        // started and not finished; guarded by mutex_
  std::deque<Pending> queue_;   // guarded by mutex_
  std::unordered_map<Operation*, std::shared_ptr<Operation>> active_;  // guarded by mutex_
};

// One request: resolve (names only), connect, write, read, on a strand of its own. Every step
// checks `finished_` first, so a late completion after a timeout or cancellation does nothing,
// and Finish() runs the callback exactly once.
class AsyncClient::Impl::Operation : public std::enable_shared_from_this<Operation> {
 public:
  Operation(Impl& client, AsyncRequest request, Callback done)
      : client_(client),
        strand_(asio::make_strand(client.io_context_)),
        stream_(strand_),
        resolver_(strand_),
        resolve_timer_(strand_),
        request_(std::move(request)),
        done_(std::move(done)),
        host_port_(HostPort(request_.host, request_.port)),
        timeout_text_(std::to_string(request_.timeout.count()) + " ms") {}

  // Starts the request on its strand; never runs it inline.
  void Run() {
    asio::post(strand_, [self = shared_from_this()] { self->Begin(); });
  }

  // Ends the request with Unavailable (unless it has ended already).
  void Cancel() {
    asio::post(strand_, [self = shared_from_this()] { self->Finish(Cancelled(self->host_port_)); });
  }

 private:
  void Begin() {
    if (finished_) return;
    deadline_ = std::chrono::steady_clock::now() + request_.timeout;
    BuildMessage();
    const std::string host(StripBrackets(request_.host));
    beast::error_code address_error;
    const auto address = asio::ip::make_address(host, address_error);
    if (!address_error) {
      endpoints_.emplace_back(address, request_.port);
      Connect();
      return;
    }
    // The resolver is not bound by the stream's deadline, so a timer of its own ends the wait.
    resolve_timer_.expires_at(deadline_);
    resolve_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      self->Finish(Unavailable("cannot reach " + self->host_port_ +
                               ": cannot resolve host within " + self->timeout_text_));
    });
    resolver_.async_resolve(host, std::to_string(request_.port),
                            [self = shared_from_this()](beast::error_code ec,
                                                        const tcp::resolver::results_type& found) {
                              self->OnResolve(ec, found);
                            });
  }

  void BuildMessage() {
    const bhttp::verb verb = bhttp::string_to_verb(request_.method);
    if (verb == bhttp::verb::unknown) {
      message_.method_string(request_.method);
    } else {
      message_.method(verb);
    }
    message_.target(request_.target);
    message_.version(11);
    for (const auto& [name, value] : request_.headers) message_.insert(name, value);
    if (message_.find(bhttp::field::host) == message_.end()) {
      message_.set(bhttp::field::host, host_port_);
    }
    if (message_.find(bhttp::field::user_agent) == message_.end()) {
      message_.set(bhttp::field::user_agent, "fleetwatch");
    }
    message_.erase(bhttp::field::transfer_encoding);
    message_.body() = std::move(request_.body);
    message_.content_length(message_.body().size());
    message_.keep_alive(false);

    parser_.header_limit(kResponseHeaderLimitBytes);
    parser_.body_limit(request_.max_response_bytes);
    if (verb == bhttp::verb::head) parser_.skip(true);
  }

  void OnResolve(beast::error_code ec, const tcp::resolver::results_type& found) {
    if (finished_) return;
    resolve_timer_.cancel();
    if (ec) {
      return Finish(
          Unavailable("cannot reach " + host_port_ + ": cannot resolve host: " + ec.message()));
    }
    for (const auto& entry : found) endpoints_.push_back(entry.endpoint());
    Connect();
  }

  void Connect() {
    stream_.expires_at(deadline_);
    stream_.async_connect(endpoints_,
                          [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                            self->OnConnect(ec);
                          });
  }

  void OnConnect(beast::error_code ec) {
    if (finished_) return;
    if (ec == beast::error::timeout) {
      return Finish(
          Unavailable("cannot reach " + host_port_ + ": no connection within " + timeout_text_));
    }
    if (ec) return Finish(Unavailable("cannot reach " + host_port_ + ": " + ec.message()));
    stream_.expires_at(deadline_);
    bhttp::async_write(
        stream_, message_,
        [self = shared_from_this()](beast::error_code error, size_t) { self->OnWrite(error); });
  }

  void OnWrite(beast::error_code ec) {
    if (finished_) return;
    if (ec) return Finish(IoError(ec));
    stream_.expires_at(deadline_);
    bhttp::async_read(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code error, size_t) { self->OnRead(error); });
  }

  void OnRead(beast::error_code ec) {
    if (finished_) return;
    if (ec) return Finish(IoError(ec));
    auto& message = parser_.get();
    Response response;
    response.status = static_cast<int>(message.result_int());
    response.content_type = std::string(message[bhttp::field::content_type]);
    for (const auto& field : message) {
      response.headers.emplace_back(ToLower(field.name_string()), std::string(field.value()));
    }
    response.body = std::move(message.body());
    Finish(std::move(response));
  }

  // A failure while writing the request or reading the response.
  Status IoError(beast::error_code ec) const {
    if (ec == beast::error::timeout) {
      return Unavailable("no response from " + host_port_ + " within " + timeout_text_);
    }
    if (ec == bhttp::error::body_limit) {
      return Status(StatusCode::kPayloadTooLarge, "response from " + host_port_ + " exceeds " +
                                                      std::to_string(request_.max_response_bytes) +
                                                      " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return Status(StatusCode::kPayloadTooLarge,
                    "response headers from " + host_port_ + " exceed " +
                        std::to_string(kResponseHeaderLimitBytes) + " bytes");
    }
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
      return Unavailable("connection to " + host_port_ + " closed before a complete response");
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
      return Unavailable("malformed response from " + host_port_ + ": " + ec.message());
    }
    return Unavailable("connection to " + host_port_ + " failed: " + ec.message());
  }

  void Finish(Result<Response> result) {
    if (finished_) return;
    finished_ = true;
    resolve_timer_.cancel();
    resolver_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    Callback done = std::move(done_);
    Deliver(done, std::move(result));
    client_.OnFinished(this);
  }

  Impl& client_;
  asio::strand<asio::io_context::executor_type> strand_;
  beast::tcp_stream stream_;
  tcp::resolver resolver_;
  asio::steady_timer resolve_timer_;
  AsyncRequest request_;
  Callback done_;
  const std::string host_port_;
  const std::string timeout_text_;

  std::chrono::steady_clock::time_point deadline_;
  std::vector<tcp::endpoint> endpoints_;
  bhttp::request<bhttp::string_body> message_;
  bhttp::response_parser<bhttp::string_body> parser_;
  beast::flat_buffer buffer_;
  bool finished_ = false;
};

AsyncClient::Impl::Impl(int threads, size_t max_in_flight)
    : max_in_flight_(std::max<size_t>(max_in_flight, 1)),
      io_context_(std::max(threads, 1)),
      work_(io_context_.get_executor()) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    threads_.emplace_back([this] { io_context_.run(); });
  }
}

AsyncClient::Impl::~Impl() {
  std::deque<Pending> queued;
  std::vector<std::shared_ptr<Operation>> active;
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
    queued.swap(queue_);
    for (const auto& [key, operation] : active_) active.push_back(operation);
  }
  for (const auto& operation : active) operation->Cancel();
  active.clear();
  for (Pending& pending : queued) {
    asio::post(io_context_, [done = std::move(pending.done),
                             host_port = HostPort(pending.request.host, pending.request.port)] {
      Deliver(done, Cancelled(host_port));
    });
  }
  // Posted work above keeps the threads running until every callback has been delivered.
  work_.reset();
  for (std::thread& thread : threads_) thread.join();
}

void AsyncClient::Impl::Send(AsyncRequest request, Callback done) {
  Status invalid = Validate(request);
  std::unique_lock lock(mutex_);
  if (shutting_down_) {
    // Only a callback racing the destructor gets here; it runs on an I/O thread already.
    lock.unlock();
    Deliver(done, invalid.ok() ? Cancelled(HostPort(request.host, request.port)) : invalid);
    return;
  }
  if (!invalid.ok()) {
    asio::post(io_context_,
               [done = std::move(done), invalid = std::move(invalid)] { Deliver(done, invalid); });
    return;
  }
  if (in_flight_ >= max_in_flight_) {
    queue_.push_back({std::move(request), std::move(done)});
    return;
  }
  ++in_flight_;
  StartLocked(std::move(request), std::move(done));
}

void AsyncClient::Impl::StartLocked(AsyncRequest request, Callback done) {
  auto operation = std::make_shared<Operation>(*this, std::move(request), std::move(done));
  active_.emplace(operation.get(), operation);
  // Posted while the lock is held, so the destructor cannot release the threads before this
  // operation is both visible to it and queued on the context.
  operation->Run();
}

void AsyncClient::Impl::OnFinished(Operation* operation) {
  std::lock_guard lock(mutex_);
  active_.erase(operation);
  if (shutting_down_ || queue_.empty()) {
    --in_flight_;
    return;
  }
  Pending next = std::move(queue_.front());
  queue_.pop_front();
  StartLocked(std::move(next.request), std::move(next.done));
}

AsyncClient::AsyncClient(int threads, size_t max_in_flight)
    : impl_(std::make_unique<Impl>(threads, max_in_flight)) {}

AsyncClient::~AsyncClient() = default;

void AsyncClient::Send(AsyncRequest request, std::function<void(Result<Response>)> done) {
  impl_->Send(std::move(request), std::move(done));
}

std::vector<Result<Response>> AsyncClient::SendAll(std::vector<AsyncRequest> requests) {
  struct Collected {
    std::mutex mutex;
    std::condition_variable all_done;
    size_t remaining;
    std::vector<std::optional<Result<Response>>> results;
  };
  auto collected = std::make_shared<Collected>();
  collected->remaining = requests.size();
  collected->results.resize(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    impl_->Send(std::move(requests[i]), [collected, i](Result<Response> result) {
      std::lock_guard lock(collected->mutex);
      collected->results[i].emplace(std::move(result));
      if (--collected->remaining == 0) collected->all_done.notify_all();
    });
  }
  std::unique_lock lock(collected->mutex);
  collected->all_done.wait(lock, [&] { return collected->remaining == 0; });
  std::vector<Result<Response>> results;
  results.reserve(collected->results.size());
  for (auto& result : collected->results) results.push_back(std::move(*result));
  return results;
}

}  // namespace fleetwatch::http
