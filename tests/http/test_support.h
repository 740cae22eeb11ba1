#pragma once

// Helpers for http tests: a raw blocking TCP connection (to send exactly the bytes a test wants)
// and a minimal HTTP/1.1 response reader (not thread-safe; one per test thread), and a TCP proxy
// that counts the connections a client opens.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace fleetwatch::http::test_support {

// Generous: machines running the tests are shared and noisy.
inline constexpr int kSocketTimeoutSeconds = 20;

struct RawResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;

  // Case-insensitive header lookup in `head`; "" when absent.
  std::string HeaderValue(std::string_view name) const {
    std::string lower_head = Lower(head);
    std::string needle = "\r\n" + Lower(std::string(name)) + ":";
    size_t at = lower_head.find(needle);
    if (at == std::string::npos) return "";
    size_t start = at + needle.size();
    size_t end = head.find("\r\n", start);
    std::string value = head.substr(start, end - start);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    while (!value.empty() && value.back() == ' ') value.pop_back();
    return value;
  }

  static std::string Lower(std::string text) {
    for (char& c : text) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return text;
  }
};

class RawConnection {
 public:
  // Connects to 127.0.0.1:port, from `source` (another loopback address, e.g. "127.0.0.2") when
  // given, so that a test can speak as several clients.
  explicit RawConnection(uint16_t port, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval timeout{kSocketTimeoutSeconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (source != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      if (::inet_pton(AF_INET, source, &local.sin_addr) != 1 ||
          ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        return;
      }
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }

  // Sends all bytes; false when the peer closed or reset the connection.
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response framed by Content-Length (or until close when there is none);
  // nullopt when the connection closes or times out first.
  std::optional<RawResponse> ReadResponse() {
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    RawResponse response;
    response.head = buffer_.substr(0, header_end + 2);
    buffer_.erase(0, header_end + 4);
    if (response.head.size() < 12) return std::nullopt;
    response.status = std::stoi(response.head.substr(9, 3));
    std::string length = response.HeaderValue("content-length");
    if (length.empty()) {
      if (response.status / 100 == 1 || response.status == 204 || response.status == 304) {
        return response;
      }
      while (Fill()) {
      }
      response.body = std::move(buffer_);
      buffer_.clear();
      return response;
    }
    size_t size = std::stoul(length);
    while (buffer_.size() < size) {
      if (!Fill()) return std::nullopt;
    }
    response.body = buffer_.substr(0, size);
    buffer_.erase(0, size);
    return response;
  }

  // True when response bytes are waiting (or the peer closed), without blocking.
  bool Readable() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }

  // True when the peer closes the connection (EOF or reset) before the socket timeout; any bytes
  // still arriving are discarded.
  bool WaitForClose() {
    while (true) {
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  bool Fill() {
    char chunk[16384];
    while (true) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buffer_.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// A loopback listener that accepts connections into its backlog and never answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = 0;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::listen(fd_, 16);
    socklen_t size = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;

  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A listening socket on 127.0.0.1 with a port the kernel picks: sets `fd`, returns the port.
// For the test servers that accept by hand.
inline uint16_t ListenOnLoopback(int& fd) {
  fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::listen(fd, 128);
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  return ntohs(address.sin_port);
}

// A loopback port that nothing listens on (bound once, then released).
inline uint16_t ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A loopback TCP proxy to 127.0.0.1:`upstream` that counts the connections it accepts, so that
// a test sees how many connections a client opened (plain or TLS alike: bytes pass unchanged).
// Each accepted connection gets one upstream connection and a thread copying both ways until
// either side closes; CloseAll() and the destructor close the open ones. Thread-safe.
class CountingProxy {
 public:
  explicit CountingProxy(uint16_t upstream) : upstream_(upstream) {
    port_ = ListenOnLoopback(listen_fd_);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~CountingProxy() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    CloseAll();
    for (std::thread& pump : pumps_) pump.join();
    ::close(listen_fd_);
  }
  CountingProxy(const CountingProxy&) = delete;
  CountingProxy& operator=(const CountingProxy&) = delete;

  uint16_t port() const { return port_; }

  int accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
  }

  // Shuts down every open connection on both sides (as a server closing idle ones would).
  void CloseAll() {
    std::lock_guard lock(mutex_);
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
  }

  // Waits until `count` proxied connections have ended; false after kSocketTimeoutSeconds.
  bool WaitForClosed(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(kSocketTimeoutSeconds),
                             [&] { return closed_ >= count; });
  }

 private:
  void AcceptLoop() {
    while (true) {
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0 && errno == EINTR) continue;
      if (client < 0) return;  // shut down
      int server = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(upstream_);
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(server);
        ::close(client);
        continue;
      }
      {
        std::lock_guard lock(mutex_);
        ++accepted_;
        open_.push_back(client);
        open_.push_back(server);
      }
      pumps_.emplace_back([this, client, server] { Pump(client, server); });
    }
  }

  void Pump(int client, int server) {
    char chunk[16384];
    bool open = true;
    while (open) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2 && open; ++i) {
        if (fds[i].revents == 0) continue;
        const int from = fds[i].fd;
        const int to = from == client ? server : client;
        ssize_t n = ::recv(from, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        open = n > 0 && ::send(to, chunk, static_cast<size_t>(n), MSG_NOSIGNAL) == n;
      }
    }
    {
      std::lock_guard lock(mutex_);
      std::erase(open_, client);
      std::erase(open_, server);
      ++closed_;
    }
    changed_.notify_all();
    ::close(client);
    ::close(server);
  }

  const uint16_t upstream_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::vector<std::thread> pumps_;  // touched by the accept thread only, until it is joined
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int> open_;  // guarded by mutex_
  int accepted_ = 0;       // guarded by mutex_
  int closed_ = 0;         // guarded by mutex_
};

}  // namespace fleetwatch::http::test_support
