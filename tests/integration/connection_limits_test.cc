// The real server under a flood of connections that never authenticate: its memory stays bounded
// by the connection caps, and a user with a token keeps being served meanwhile.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr int kFloodConnections = 2000;
constexpr int kConnectionsPerAddress = 50;  // under the default cap of 64 unauthenticated
constexpr int64_t kMaxGrowthBytes = int64_t{64} << 20;

// The resident set of `pid` in bytes (VmRSS), or -1 when it cannot be read.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

// A client socket connected from `source` (a loopback address) to 127.0.0.1:port; closed when
// destroyed. Send and receive wait at most 20 s.
class Connection {
 public:
  Connection(const std::string& source, uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval timeout{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return;
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&remote), sizeof remote) == 0;
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // The status code of the response's first line, once "HTTP/1.1 NNN" has arrived; 0 when the
  // connection closes or goes quiet first.
  int ReadStatus() {
    std::string head;
    char chunk[512];
    while (head.size() < 12) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;
      head.append(chunk, static_cast<size_t>(n));
    }
    return head.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(head.substr(9, 3)) : 0;
  }

  // True when response bytes are waiting, without blocking.
  bool Readable() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Samples a process's resident set on its own thread and keeps the largest value seen.
class ResidentPeak {
 public:
  explicit ResidentPeak(pid_t pid)
      : thread_([this, pid] {
          while (!done_) {
            int64_t now = ResidentBytes(pid);
            if (now > peak_) peak_ = now;
            std::this_thread::sleep_for(2ms);
          }
        }) {}
  ~ResidentPeak() {
    done_ = true;
    thread_.join();
  }
  int64_t peak() const { return peak_; }

 private:
  std::atomic<bool> done_{false};
  std::atomic<int64_t> peak_{0};
  std::thread thread_;
};

class ConnectionLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One descriptor per connection here, and as many in the server (which raises its own).
    rlimit limit{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
    limit.rlim_cur = limit.rlim_max;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
    if (limit.rlim_cur < 2 * kFloodConnections + 100) {
      GTEST_SKIP() << "the descriptor limit (" << limit.rlim_cur << ") is too low for this test";
    }
    server_ = std::make_unique<ServerProcess>(data_.str(), home_.str(), kAdminToken,
                                              std::vector<std::string>{"--no-local-fleet"});
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
  }

  TempDir data_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

TEST_F(ConnectionLimitsTest, AFloodOfUnauthenticatedBodiesKeepsMemoryBoundedAndUsersServed) {
  ASSERT_EQ(admin_->Get("/api/server/info").status, 200);
  const int64_t before = ResidentBytes(server_->pid());
  ASSERT_GT(before, 0);

  // Each connection announces a 1 MiB run configuration and sends its first 16 KiB, without a
  // token; its address (127.0.0.2 and up) stays under the per-address cap, so all are admitted.
  const std::string head =
      "POST /api/project/main/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/yaml\r\nContent-Length: 1048576\r\n\r\n";
  const std::string part(16 << 10, '#');
  std::vector<std::unique_ptr<Connection>> flood;
  flood.reserve(kFloodConnections);
  {
    ResidentPeak peak(server_->pid());
    for (int i = 0; i < kFloodConnections; ++i) {
      const std::string source = "127.0.0." + std::to_string(2 + i / kConnectionsPerAddress);
      auto connection = std::make_unique<Connection>(source, server_->port());
      ASSERT_TRUE(connection->connected()) << "connection " << i;
      ASSERT_TRUE(connection->Send(head)) << "connection " << i;
      connection->Send(part);  // the server may have answered 401 and stopped reading already
      flood.push_back(std::move(connection));
      if (i == kFloodConnections / 2) {
        EXPECT_EQ(admin_->Get("/api/server/info").status, 200) << "in the middle of the flood";
      }
    }
    EXPECT_EQ(admin_->Get("/api/server/info").status, 200) << "with the flood held";
    // Every one of them was refused on its header alone.
    int unauthorized = 0;
    for (auto& connection : flood) unauthorized += connection->ReadStatus() == 401 ? 1 : 0;
    EXPECT_EQ(unauthorized, kFloodConnections);
    const int64_t growth = peak.peak() - before;
    std::cout << "server RSS: " << (before >> 20) << " MiB before, peak growth " << (growth >> 20)
              << " MiB for " << kFloodConnections << " connections\n";
    EXPECT_LT(growth, kMaxGrowthBytes);
  }
  flood.clear();

  // Connections that never finish their header are held until the read deadline: one address
  // gets 64 of them, the next are closed at accept with a 503.
  constexpr int kSlowConnections = 100;
  constexpr int kUnauthenticatedCap = 64;
  std::vector<std::unique_ptr<Connection>> slow;
  for (int i = 0; i < kSlowConnections; ++i) {
    auto connection = std::make_unique<Connection>("127.0.0.250", server_->port());
    ASSERT_TRUE(connection->connected());
    connection->Send("POST /api/project/main/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    slow.push_back(std::move(connection));
  }
  int refused = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::vector<bool> answered(slow.size(), false);
  while (refused < kSlowConnections - kUnauthenticatedCap &&
         std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < slow.size(); ++i) {
      if (answered[i] || !slow[i]->Readable()) continue;
      answered[i] = true;
      if (slow[i]->ReadStatus() == 503) ++refused;
    }
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(refused, kSlowConnections - kUnauthenticatedCap);
  EXPECT_EQ(admin_->Get("/api/server/info").status, 200) << "with slow connections held";
}

}  // namespace
}  // namespace fleetwatch::testing
