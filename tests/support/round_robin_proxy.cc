#include "support/round_robin_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace fleetwatch::testing {
namespace {

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

int ConnectLoopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

RoundRobinProxy::RoundRobinProxy(std::vector<uint16_t> backends)
    : backends_(std::move(backends)), counts_(backends_.size(), 0) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (backends_.empty() || listen_fd_ < 0 || ::pipe2(wake_, O_CLOEXEC) != 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "round-robin proxy: cannot listen\n");
    std::abort();
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { Accept(); });
}

RoundRobinProxy::~RoundRobinProxy() {
  stopping_ = true;
  const char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_[1], &byte, 1);
  acceptor_.join();
  std::vector<std::thread> pumps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pumps.swap(pumps_);
  }
  for (std::thread& t : pumps) t.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::vector<uint64_t> RoundRobinProxy::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

void RoundRobinProxy::Accept() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 || fds[1].revents != 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    const size_t backend = next_;
    next_ = (next_ + 1) % backends_.size();
    ++counts_[backend];
    pumps_.emplace_back([this, client, backend] { Pump(client, backend); });
  }
}

void RoundRobinProxy::Pump(int client, size_t backend) {
  const int upstream = ConnectLoopback(backends_[backend]);
  if (upstream < 0) {
    ::close(client);
    return;
  }
  // The request's first line, then "Connection: close", then the rest as it comes.
  std::string head;
  bool marked = false;
  bool client_open = true;
  char buffer[65536];
  while (!stopping_) {
    pollfd fds[3] = {{client, static_cast<short>(client_open ? POLLIN : 0), 0},
                     {upstream, POLLIN, 0},
                     {wake_[0], POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) break;
    if (client_open && fds[0].revents != 0) {
      const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
      if (n <= 0) {
        client_open = false;
        ::shutdown(upstream, SHUT_WR);
      } else if (marked) {
        if (!WriteAll(upstream, buffer, static_cast<size_t>(n))) break;
      } else {
        head.append(buffer, static_cast<size_t>(n));
        const size_t eol = head.find("\r\n");
        if (eol != std::string::npos) {
          head.insert(eol + 2, "Connection: close\r\n");
          marked = true;
          if (!WriteAll(upstream, head.data(), head.size())) break;
          head.clear();
        }
      }
    }
    if (fds[1].revents != 0) {
      const ssize_t n = ::recv(upstream, buffer, sizeof buffer, 0);
      if (n <= 0) break;  // the backend answered and closed: so does the client's connection
      if (!WriteAll(client, buffer, static_cast<size_t>(n))) break;
    }
  }
  ::shutdown(client, SHUT_RDWR);
  ::close(client);
  ::close(upstream);
}

}  // namespace fleetwatch::testing
