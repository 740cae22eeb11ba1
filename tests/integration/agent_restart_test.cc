// Exactly-once starts across agent restarts: an agent SIGKILLed right after a start reached it,
// then started again, never runs the job a second time, and the server ends the run with a
// reason. The real server, real agents, real processes.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";

// Whether `pid` runs nothing any more (gone, or a zombie nobody reaped yet).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close == std::string::npos || (close + 2 < stat.size() && stat[close + 2] == 'Z');
}

class AgentRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent_ = std::make_unique<AgentProcess>(AgentProcessOptions::InDir(agent_dir_.path()));
    ASSERT_GT(agent_->port(), 0) << agent_->Output();
    server_ = std::make_unique<ServerProcess>(
        data_.str(), home_.str(), kAdminToken, std::vector<std::string>{"--no-local-fleet"},
        std::map<std::string, std::string>{
            {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
            {"FLEETWATCH_INSTANCE_UNREACHABLE_SECONDS", "60"},
            {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}});
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
    ASSERT_EQ(admin_->PostJson("/api/projects", {{"name", "ml"}}).status, 201);
    std::string fleet =
        "type: fleet\nname: one\nssh_config:\n  tls: false\n  token: " +
        std::string(kTestAgentToken) +
        "\n  hosts:\n    - hostname: 127.0.0.1\n      port: " + std::to_string(agent_->port()) +
        "\n";
    ApiReply r = admin_->Send("POST", "/api/project/ml/fleets", fleet, "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  // An empty file that every job can append to, whatever uid it runs under (a root agent gives
  // each job a uid of its own): made here, mode 0666, in a directory that is not sticky (there,
  // fs.protected_regular would refuse another uid's O_CREAT on it).
  fs::path Shared(const std::string& name) const {
    const fs::path dir = home_.path() / "shared";
    fs::create_directories(dir);
    ::chmod(home_.path().c_str(), 0711);
    ::chmod(dir.c_str(), 0755);
    const fs::path file = dir / name;
    WriteFile(file, "");
    ::chmod(file.c_str(), 0666);
    return file;
  }

  // Submits a task whose command appends "ran <pid>" to `marker` and then sleeps, and waits
  // until that line is there; returns the pid (that of the sleep, which replaced the shell).
  pid_t StartMarkedTask(const std::string& name, const fs::path& marker) {
    std::string yaml = "type: task\nname: " + name + "\ncommands:\n  - echo \"ran $$\" >> " +
                       marker.string() + "\n  - exec sleep 600\n";
    ApiReply r = admin_->Send("POST", "/api/project/ml/runs", yaml, "application/yaml");
    EXPECT_EQ(r.status, 201) << r.body;
    EXPECT_TRUE(WaitUntil([&] { return ReadFile(marker).find('\n') != std::string::npos; }))
        << server_->Output();
    std::string line = ReadFile(marker);
    return line.rfind("ran ", 0) == 0 ? static_cast<pid_t>(std::stol(line.substr(4))) : 0;
  }

  json::value WaitForRunStatus(const std::string& run, const std::string& status) {
    ApiReply last = ::fleetwatch::testing::WaitForRunStatus(*admin_, "ml", run, status);
    EXPECT_EQ(Str(last.json, "status"), status) << last.body << "\n" << server_->Output();
    return last.json;
  }

  // The jobs the agent holds (GET /api/poll), asked directly.
  json::array AgentJobs() const {
    ApiClient agent("http://127.0.0.1:" + std::to_string(agent_->port()), kTestAgentToken);
    ApiReply r = agent.Get("/api/poll");
    if (r.status != 200 || !r.json.is_object()) return {};
    return r.json.at("jobs").as_array();
  }

  TempDir data_;
  TempDir home_;
  TempDir agent_dir_;
  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

TEST_F(AgentRestartTest, AStartThatReachedAKilledAgentRunsOnceAndTheRunFailsWithAReason) {
  const fs::path marker = Shared("marker");
  pid_t job_pid = StartMarkedTask("once", marker);
  ASSERT_GT(job_pid, 0) << ReadFile(marker);

  const int port = agent_->port();
  agent_->Stop(SIGKILL);  // its job's process lives on
  agent_ = std::make_unique<AgentProcess>(AgentProcessOptions::InDir(agent_dir_.path(), port));
  ASSERT_EQ(agent_->port(), port) << agent_->Output();

  json::value run = WaitForRunStatus("once", "failed");
  EXPECT_EQ(Str(run.at("jobs").at(0), "termination_reason"), "executor_error") << run;
  // The server has handled the restart: the lost job was acknowledged and forgotten.
  EXPECT_TRUE(WaitUntil([&] { return AgentJobs().empty(); })) << agent_->Output();
  EXPECT_TRUE(fs::is_empty(agent_dir_.path() / "data" / "accepted"));
  EXPECT_EQ(ReadFile(marker), "ran " + std::to_string(job_pid) + "\n");
  if (::geteuid() == 0) {
    // The job ran under a uid (and a cgroup, where usable) of its own: the new agent killed it.
    EXPECT_TRUE(WaitUntil([&] { return ProcessGone(job_pid); })) << agent_->Output();
  } else {
    ::kill(job_pid, SIGKILL);
  }
  EXPECT_NE(agent_->Output().find("lost"), std::string::npos) << agent_->Output();
}

// A host whose agent comes back without its records (a new data dir) answers with a new agent
// id: the server ends the jobs the old agent had instead of starting them again.
TEST_F(AgentRestartTest, AnAgentThatComesBackWithoutItsRecordsNeverGetsTheStartAgain) {
  const fs::path marker = Shared("marker");
  pid_t job_pid = StartMarkedTask("again", marker);
  ASSERT_GT(job_pid, 0) << ReadFile(marker);

  const int port = agent_->port();
  agent_->Stop(SIGKILL);
  TempDir fresh;
  agent_ = std::make_unique<AgentProcess>(AgentProcessOptions::InDir(fresh.path(), port));
  ASSERT_EQ(agent_->port(), port) << agent_->Output();

  json::value run = WaitForRunStatus("again", "failed");
  EXPECT_EQ(Str(run.at("jobs").at(0), "termination_reason"), "executor_error") << run;
  EXPECT_TRUE(AgentJobs().empty());
  EXPECT_EQ(ReadFile(marker), "ran " + std::to_string(job_pid) + "\n");
  agent_.reset();  // before `fresh` goes
  // The old job still runs (nothing of the new agent's); an agent on the old data dir, which
  // still names it, removes what is left of it.
  AgentProcess cleanup(AgentProcessOptions::InDir(agent_dir_.path()));
  if (::geteuid() == 0) {
    EXPECT_TRUE(WaitUntil([&] { return ProcessGone(job_pid); })) << cleanup.Output();
  } else {
    ::kill(job_pid, SIGKILL);
  }
}

}  // namespace
}  // namespace fleetwatch::testing
