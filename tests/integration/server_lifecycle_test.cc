// The server's life on one data dir, with real processes: one server per data dir (a second one
// refuses and touches nothing), the port bound before anything is made or adopted, the local
// agent started again when it dies, and the admin token made by the start that succeeds.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>

#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";

// A loopback port held by a listening socket for the test's life.
class BusyPort {
 public:
  BusyPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 && ::listen(fd_, 1) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~BusyPort() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// Every file under `dir` with its size and modification time: "nothing was touched".
std::map<std::string, std::string> Snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::error_code ec;
    auto size = entry.file_size(ec);
    auto time = entry.last_write_time(ec).time_since_epoch().count();
    files[entry.path().string()] = std::to_string(size) + "@" + std::to_string(time);
  }
  return files;
}

// The pid the server recorded for its local agent; 0 when none.
int LocalAgentPid(const fs::path& data_dir) {
  std::smatch m;
  static const std::regex kPid("\"pid\":(\\d+)");
  std::string text = ReadFile(data_dir / "local-agent.json");
  return std::regex_search(text, m, kPid) ? std::stoi(m[1]) : 0;
}

class ServerLifecycleTest : public ::testing::Test {
 protected:
  // The data dir a server uses by default under home_.
  fs::path DefaultDataDir() const { return home_.path() / ".fleetwatch" / "server"; }

  std::map<std::string, std::string> Env() const {
    return {{"HOME", home_.str()},
            {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
            {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}};
  }

  void StartServer() {
    server_ = std::make_unique<ServerProcess>(DefaultDataDir().string(), home_.str(), kAdminToken,
                                              std::vector<std::string>{}, Env());
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
  }

  void TearDown() override {
    if (server_) {
      server_->Stop(SIGTERM);
      server_->StopLeftoverLocalAgent();
    }
  }

  void Submit(const std::string& yaml) {
    ApiReply r = admin_->Send("POST", "/api/project/main/runs", yaml, "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  std::string Gate() const { return (home_.path() / "gate").string(); }

  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

TEST_F(ServerLifecycleTest, ASecondServerOnTheSameDataDirRefusesAndTouchesNothing) {
  StartServer();
  ::chmod(home_.path().c_str(), 0711);  // a root agent's job user reaches the gate
  Submit("type: task\nname: long\ncommands: ['while [ ! -e " + Gate() +
         " ]; do sleep 0.1; done', 'echo finished']\n");
  ASSERT_EQ(Str(WaitForRunStatus(*admin_, "main", "long", "running").json, "status"), "running");
  const int agent_pid = LocalAgentPid(DefaultDataDir());
  ASSERT_GT(agent_pid, 0);
  const auto before = Snapshot(DefaultDataDir());
  const std::string config_before = ReadFile(home_.path() / ".fleetwatch" / "config.yml");

  // Same HOME (so the same default data dir), and the first server's port.
  ProcessResult second = RunProcess(
      FLEETWATCH_BINARY,
      {"server", "--host", "127.0.0.1", "--port", std::to_string(server_->port())}, Env(), "", 60);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_EQ(second.err, "error: another fleetwatch server (pid " + std::to_string(server_->pid()) +
                            ") uses " + DefaultDataDir().string() + "\n");
  EXPECT_EQ(Snapshot(DefaultDataDir()), before);
  EXPECT_EQ(ReadFile(home_.path() / ".fleetwatch" / "config.yml"), config_before);
  EXPECT_EQ(::kill(agent_pid, 0), 0) << "the first server's agent was stopped";

  // The first server's job survived and finishes; new runs still run.
  std::ofstream(Gate()).put('x');
  EXPECT_EQ(Str(WaitForRunStatus(*admin_, "main", "long", "done").json, "status"), "done");
  Submit("type: task\nname: after\ncommands: ['echo after']\n");
  EXPECT_EQ(Str(WaitForRunStatus(*admin_, "main", "after", "done").json, "status"), "done");
  EXPECT_EQ(LocalAgentPid(DefaultDataDir()), agent_pid);
}

TEST_F(ServerLifecycleTest, AFailedFirstStartOnABusyPortLeavesNothingHalfMade) {
  BusyPort busy;
  ASSERT_GT(busy.port(), 0);
  std::map<std::string, std::string> env = Env();
  env["FLEETWATCH_SERVER_ADMIN_TOKEN"] = "\x01unset";
  ProcessResult failed = RunProcess(
      FLEETWATCH_BINARY, {"server", "--host", "127.0.0.1", "--port", std::to_string(busy.port())},
      env, "", 60);
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.err.find("error: "), std::string::npos) << failed.err;
  EXPECT_EQ(failed.out.find("admin token"), std::string::npos) << failed.out;
  EXPECT_FALSE(fs::exists(home_.path() / ".fleetwatch" / "config.yml"));
  EXPECT_FALSE(fs::exists(DefaultDataDir() / "local-agent.json")) << "an agent was started";

  // The next start that holds its port makes the admin, prints its token and configures the CLI.
  ChildProcess server(FLEETWATCH_BINARY, {"server", "--host", "127.0.0.1", "--port", "0"}, env);
  ASSERT_TRUE(server.WaitForOutput("fleetwatch server listening on", 60)) << server.Output();
  std::smatch m;
  const std::string out = server.Output();
  ASSERT_TRUE(std::regex_search(out, m, std::regex("The admin token is (\\S+) "))) << out;
  const std::string token = m[1];
  const std::string config = ReadFile(home_.path() / ".fleetwatch" / "config.yml");
  EXPECT_NE(config.find(token), std::string::npos) << config;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("listening on (http://127\\.0\\.0\\.1:\\d+)")));
  ApiClient admin(m[1], token);
  EXPECT_EQ(admin.Get("/api/users/me").status, 200);
  EXPECT_EQ(server.Stop(SIGTERM, 60), 0) << server.Output();
}

TEST_F(ServerLifecycleTest, ResetAdminTokenReplacesALostTokenWhileNoServerRuns) {
  StartServer();
  EXPECT_EQ(admin_->Get("/api/users/me").status, 200);
  const std::vector<std::string> reset = {"server", "--reset-admin-token"};
  // Not while a server uses the data dir.
  ProcessResult busy = RunProcess(FLEETWATCH_BINARY, reset, Env(), "", 60);
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("another fleetwatch server (pid " + std::to_string(server_->pid())),
            std::string::npos)
      << busy.err;
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();

  ProcessResult done = RunProcess(FLEETWATCH_BINARY, reset, Env(), "", 60);
  ASSERT_EQ(done.exit_code, 0) << done.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(done.out, m, std::regex("The new admin token is (\\S+) ")))
      << done.out;
  const std::string token = m[1];
  EXPECT_NE(token, kAdminToken);

  StartServer();
  EXPECT_EQ(admin_->Get("/api/users/me").status, 401);  // the old token
  ApiClient fresh(server_->url(), token);
  ApiReply me = fresh.Get("/api/users/me");
  EXPECT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(Str(me.json, "name"), "admin");

  // A data dir no server ever used has no admin to reset.
  TempDir empty;
  ProcessResult none =
      RunProcess(FLEETWATCH_BINARY, {"server", "--reset-admin-token", "--data-dir", empty.str()},
                 Env(), "", 60);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no fleetwatch server data in " + empty.str()), std::string::npos)
      << none.err;
  EXPECT_FALSE(fs::exists(empty.path() / "fleetwatch.db"));
}

TEST_F(ServerLifecycleTest, TheLocalAgentIsStartedAgainWhenItDies) {
  StartServer();
  const int first = LocalAgentPid(DefaultDataDir());
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] {
    int now = LocalAgentPid(DefaultDataDir());
    return now != 0 && now != first;
  })) << server_->Output();
  EXPECT_NE(server_->Output().find("the local agent (pid " + std::to_string(first) + ") is gone"),
            std::string::npos)
      << server_->Output();
  Submit("type: task\nname: again\ncommands: ['echo again']\n");
  EXPECT_EQ(Str(WaitForRunStatus(*admin_, "main", "again", "done").json, "status"), "done");
}

}  // namespace
}  // namespace fleetwatch::testing
