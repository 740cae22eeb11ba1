// A job on the server's own local agent, started the way the tests start servers (as root here,
// with --data-dir in a temp dir): it runs under an unprivileged uid of its own and sees nothing of
// the server: not its database, not the admin token in its HOME's config.yml, not its process
// environment, and not another job's directory.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-isolation-tests-0123";
constexpr char kConfigToken[] = "config-yml-token-never-seen-by-jobs";
constexpr char kServerMarker[] = "server-environment-marker-never-seen";

// The pid of the `fleetwatch server` serving `data_dir` (from /proc/*/cmdline); 0 when none.
pid_t ServerPid(const std::string& data_dir) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(" server ") != std::string::npos &&
        cmdline.find("--data-dir " + data_dir + " ") != std::string::npos) {
      return static_cast<pid_t>(std::stol(name));
    }
  }
  return 0;
}

class JobIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "jobs get uids of their own only under a root agent";
    // What a client wrote into the server user's HOME, and the server's data dir: both private
    // (as `fleetwatch config` and the server make them).
    fs::create_directories(home_.path() / ".fleetwatch");
    std::ofstream(home_.path() / ".fleetwatch" / "config.yml")
        << "url: http://127.0.0.1:3000\ntoken: " << kConfigToken << "\nproject: main\n";
    ::chmod(home_.path().c_str(), 0700);
    ::chmod(data_.path().c_str(), 0700);
    server_ = std::make_unique<ServerProcess>(
        data_.str(), home_.str(), kAdminToken, std::vector<std::string>{},
        std::map<std::string, std::string>{
            {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
            {"FLEETWATCH_STOP_GRACE_SECONDS", "2"},
            {"FLEETWATCH_TEST_SERVER_MARKER", kServerMarker},
            {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}});
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
  }

  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
      server_->StopLeftoverLocalAgent();
    }
  }

  void Submit(const std::string& yaml) {
    ApiReply r = admin_->Send("POST", "/api/project/main/runs", yaml, "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  std::string Logs(const std::string& run) {
    return admin_->Get("/api/project/main/runs/" + run + "/logs").body;
  }

  std::string RunStatus(const std::string& run) {
    return Str(admin_->Get("/api/project/main/runs/" + run).json, "status");
  }

  TempDir data_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

TEST_F(JobIsolationTest, AJobOnTheLocalAgentSeesNothingOfTheServerOrOfAnotherJob) {
  const pid_t server_pid = ServerPid(data_.str());
  ASSERT_GT(server_pid, 0);
  const fs::path db = data_.path() / "fleetwatch.db";
  ASSERT_TRUE(fs::exists(db));
  const fs::path config = home_.path() / ".fleetwatch" / "config.yml";

  // The other job: keeps a secret in its HOME and stays up.
  Submit(
      "type: task\nname: victim\ncommands:\n"
      "  - echo victim-secret > $HOME/secret\n"
      "  - echo \"victim uid=$(id -u) home=$HOME pid=$$\"\n"
      "  - sleep 600\n");
  std::smatch victim;
  const std::regex kVictim("victim uid=(\\d+) home=(\\S+) pid=(\\d+)");
  std::string victim_log;
  ASSERT_TRUE(WaitUntil([&] {
    victim_log = Logs("victim");
    return std::regex_search(victim_log, victim, kVictim);
  })) << victim_log
      << server_->Output();
  const std::string victim_uid = victim[1], victim_home = victim[2], victim_pid = victim[3];

  // Commands run joined with " && ": each probe that is refused must not end the job.
  Submit(
      "type: task\nname: prober\ncommands:\n"
      "  - echo \"prober uid=$(id -u) gid=$(id -g)\"\n"
      "  - id\n"
      "  - env\n"
      "  - cat " +
      db.string() +
      " && echo READ-DB || true\n"
      "  - cat " +
      config.string() +
      " && echo READ-CONFIG || true\n"
      "  - cat /proc/" +
      std::to_string(server_pid) +
      "/environ && echo READ-ENVIRON || true\n"
      "  - cat " +
      victim_home +
      "/secret && echo READ-VICTIM || true\n"
      "  - kill -0 " +
      victim_pid +
      " && echo SIGNALED-VICTIM || true\n"
      "  - echo probe-done\n");
  ASSERT_TRUE(WaitUntil([&] { return RunStatus("prober") == "done"; }))
      << Logs("prober") << server_->Output();
  // Both ran at the same time: the victim is still running.
  EXPECT_EQ(RunStatus("victim"), "running");
  std::string log = Logs("prober");
  ASSERT_NE(log.find("probe-done"), std::string::npos) << log;

  std::smatch prober;
  ASSERT_TRUE(std::regex_search(log, prober, std::regex("prober uid=(\\d+) gid=(\\d+)"))) << log;
  const int uid = std::stoi(prober[1]);
  EXPECT_GE(uid, 61000) << log;
  EXPECT_LE(uid, 61999) << log;
  EXPECT_EQ(prober[2], prober[1]);
  EXPECT_NE(prober[1], victim_uid) << "two concurrent jobs shared a uid";
  EXPECT_GE(std::stoi(victim_uid), 61000);

  for (const char* leak :
       {"READ-DB", "READ-CONFIG", "READ-ENVIRON", "READ-VICTIM", "SIGNALED-VICTIM", "victim-secret",
        kConfigToken, kServerMarker, kAdminToken, "FLEETWATCH_", "SQLite format"}) {
    EXPECT_EQ(log.find(leak), std::string::npos) << leak << " in:\n" << log;
  }
  EXPECT_NE(log.find("Permission denied"), std::string::npos) << log;
  EXPECT_NE(log.find("Operation not permitted"), std::string::npos) << log;
  // The job's HOME is its own directory, outside the server's data dir.
  std::smatch home;
  ASSERT_TRUE(std::regex_search(log, home, std::regex("\nHOME=(\\S+)\n"))) << log;
  EXPECT_EQ(std::string(home[1]).rfind(data_.str(), 0), std::string::npos) << home[1];
  EXPECT_NE(std::string(home[1]), victim_home);

  ApiReply stop = admin_->PostJson("/api/project/main/runs/victim/stop", json::object());
  EXPECT_EQ(stop.status, 200) << stop.body;
  EXPECT_TRUE(WaitUntil([&] { return RunStatus("victim") == "terminated"; }));
  // Acknowledged by the server: the agent removes the job's directory.
  EXPECT_TRUE(WaitUntil([&] { return !fs::exists(victim_home); })) << victim_home;
}

TEST_F(JobIsolationTest, TheLocalAgentInheritsNoneOfTheServersSecrets) {
  // The agent's environment is readable by root only, but a secret the agent never needed is not
  // kept there at all: only its own token, set anew.
  std::ifstream state(data_.path() / "local-agent.json");
  std::string text((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  json::error_code ec;
  json::value recorded = json::parse(text, ec);
  ASSERT_FALSE(ec) << text;
  const pid_t agent_pid = static_cast<pid_t>(recorded.at("pid").to_number<int64_t>());
  std::ifstream in("/proc/" + std::to_string(agent_pid) + "/environ");
  std::string environ_text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(environ_text.empty());
  EXPECT_EQ(environ_text.find(kAdminToken), std::string::npos);
  EXPECT_EQ(environ_text.find("FLEETWATCH_SERVER_ADMIN_TOKEN"), std::string::npos);
  EXPECT_NE(environ_text.find(kServerMarker), std::string::npos);  // the rest is inherited
  EXPECT_NE(environ_text.find("FLEETWATCH_AGENT_TOKEN=" + Str(recorded, "token")),
            std::string::npos);
}

}  // namespace
}  // namespace fleetwatch::testing
