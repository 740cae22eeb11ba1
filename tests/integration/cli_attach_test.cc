// `fleetwatch run` and `apply` follow their run like dstack's: the job's output streams until the
// run ends, the exit code is the run's, -d returns at once, and Ctrl-C in a real terminal (a pty)
// detaches while the run keeps running. Also `logs` waiting for a job that has not started, and
// `metrics -w` ending with its run. The real binary against a real server whose embedded local
// fleet runs the jobs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

extern char** environ;

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-cli-attach-tests-0123";
constexpr char kUnset[] = "\x01unset";

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// A child process on the slave side of a pseudo-terminal, as if typed into a terminal: it is the
// foreground process group, so a Ctrl-C written to the master reaches it as SIGINT.
class PtyProcess {
 public:
  PtyProcess(const std::string& binary, const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env) {
    std::map<std::string, std::string> merged;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      const size_t eq = kv.find('=');
      if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [key, value] : env) {
      if (value == kUnset) {
        merged.erase(key);
      } else {
        merged[key] = value;
      }
    }
    std::vector<std::string> env_strings;
    for (const auto& [key, value] : merged) env_strings.push_back(key + "=" + value);
    std::vector<std::string> argv_strings = {binary};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    // Everything the child needs is built before the fork.
    std::vector<char*> argv;
    for (std::string& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    struct winsize size {};
    size.ws_row = 24;
    size.ws_col = 120;
    pid_ = ::forkpty(&master_, nullptr, nullptr, &size);
    if (pid_ == 0) {
      ::execve(binary.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
  }
  ~PtyProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;

  bool started() const { return pid_ > 0 && master_ >= 0; }

  // Reads what the terminal shows until it contains `needle`; false after `timeout`.
  bool WaitForOutput(const std::string& needle, std::chrono::seconds timeout) {
    const auto deadline = steady_clock::now() + timeout;
    while (output_.find(needle) == std::string::npos) {
      if (steady_clock::now() >= deadline || !ReadSome()) return false;
    }
    return true;
  }

  void Type(const std::string& keys) {
    ssize_t written = ::write(master_, keys.data(), keys.size());
    EXPECT_EQ(written, static_cast<ssize_t>(keys.size()));
  }

  // Reads until the process exits: its exit code (128 + signal), or -1 after `timeout`.
  int Wait(std::chrono::seconds timeout) {
    const auto deadline = steady_clock::now() + timeout;
    while (steady_clock::now() < deadline) {
      const bool more = ReadSome();
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        while (ReadSome()) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (!more) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

  const std::string& output() const { return output_; }

 private:
  // One read of up to 100 ms; false when nothing more can come (the child closed the terminal).
  bool ReadSome() {
    pollfd fd{master_, POLLIN, 0};
    if (::poll(&fd, 1, 100) <= 0) return true;
    char buffer[4096];
    const ssize_t n = ::read(master_, buffer, sizeof buffer);
    if (n > 0) {
      output_.append(buffer, static_cast<size_t>(n));
      return true;
    }
    return n < 0 && errno == EINTR;
  }

  pid_t pid_ = -1;
  int master_ = -1;
  bool reaped_ = false;
  std::string output_;
};

class CliAttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        data_.str(), server_home_.str(), kAdminToken, std::vector<std::string>{},
        std::map<std::string, std::string>{{"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvml.so"},
                                           {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
                                           {"FLEETWATCH_STOP_GRACE_SECONDS", "2"}});
    ASSERT_TRUE(server_->started()) << server_->Output();
    ProcessResult r =
        Cli({"config", "--url", server_->url(), "--token", kAdminToken, "--project", "main"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  void TearDown() override {
    // SIGTERM, so that the server also stops its local agent and the jobs' processes.
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  std::map<std::string, std::string> ClientEnv() const {
    return {{"HOME", home_.str()},
            {"FLEETWATCH_URL", kUnset},
            {"FLEETWATCH_TOKEN", kUnset},
            {"FLEETWATCH_PROJECT", kUnset},
            {"COLUMNS", "200"}};
  }

  ProcessResult Cli(const std::vector<std::string>& args, int timeout_seconds = 120) {
    return RunProcess(FLEETWATCH_BINARY, args, ClientEnv(), {}, timeout_seconds);
  }

  // The newest run named `name` as `ps -a --json` lists it (null when there is none).
  json::value Run(const std::string& name) {
    ProcessResult r = Cli({"ps", "-a", "--json"});
    boost::system::error_code ec;
    json::value reply = json::parse(r.out, ec);
    if (ec || !reply.is_object() || !reply.as_object().contains("items")) return nullptr;
    for (const json::value& run : reply.at("items").as_array()) {
      if (run.at("run_name").as_string() == name) return run;
    }
    return nullptr;
  }

  std::string RunStatus(const std::string& name) {
    json::value run = Run(name);
    return run.is_object() ? std::string(run.at("status").as_string()) : "";
  }

  TempDir data_;
  TempDir server_home_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliAttachTest, RunStreamsTheOutputAndExitsWithTheRunsCode) {
  ProcessResult ok = Cli({"run", "--name", "ok", "--", "sh", "-c", "echo hello; echo world"});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_EQ(ok.out, "Submitted run ok (status submitted)\nhello\nworld\n") << Describe(ok);
  EXPECT_EQ(ok.err, "");
  EXPECT_EQ(RunStatus("ok"), "done");

  ProcessResult failed = Cli({"run", "--name", "bad", "--", "sh", "-c", "echo oops; exit 3"});
  EXPECT_EQ(failed.exit_code, 3) << Describe(failed);
  EXPECT_EQ(failed.out, "Submitted run bad (status submitted)\noops\n") << Describe(failed);
  EXPECT_EQ(failed.err.rfind("Run bad failed (exit 3)", 0), 0u) << Describe(failed);
  EXPECT_EQ(RunStatus("bad"), "failed");

  // apply follows a run the same way.
  const std::filesystem::path file = home_.path() / "run.yml";
  WriteFile(file, "type: task\nname: applied\ncommands: ['echo from a file', 'exit 4']\n");
  ProcessResult applied = Cli({"apply", "-f", file.string()});
  EXPECT_EQ(applied.exit_code, 4) << Describe(applied);
  EXPECT_NE(applied.out.find("from a file\n"), std::string::npos) << Describe(applied);
}

TEST_F(CliAttachTest, ARunEndedByItsLimitExitsNonZero) {
  ProcessResult limited =
      Cli({"run", "--name", "lim", "--max-duration", "2s", "--", "sleep", "60"});
  EXPECT_NE(limited.exit_code, 0) << Describe(limited);
  EXPECT_EQ(limited.err.rfind("Run lim terminated (max duration", 0), 0u) << Describe(limited);
  EXPECT_EQ(RunStatus("lim"), "terminated");
}

TEST_F(CliAttachTest, DetachReturnsAtOnceAndLogsWaitsForTheJob) {
  // The words after `--` are the command's, options or not.
  ProcessResult detached = Cli({"run", "-d", "--name", "later", "--env", "GREETING=hi", "--", "sh",
                                "-c", "echo \"$GREETING\" -x --help"});
  ASSERT_EQ(detached.exit_code, 0) << Describe(detached);
  EXPECT_EQ(detached.out, "Submitted run later (status submitted)\n");
  json::value run = Run("later");
  ASSERT_TRUE(run.is_object());

  // Without -f, logs also waits for the job to start: once it returns, the job has been placed
  // (the server may not have seen its agent report it running yet: statuses lag a poll).
  ProcessResult waited = Cli({"run", "-d", "--name", "waited", "--", "sh", "-c", "echo soon"});
  ASSERT_EQ(waited.exit_code, 0) << Describe(waited);
  ProcessResult once = Cli({"logs", "waited"});
  EXPECT_EQ(once.exit_code, 0) << Describe(once);
  json::value waited_run = Run("waited");
  ASSERT_TRUE(waited_run.is_object());
  const std::string job_status(waited_run.at("jobs").at(0).at("status").as_string());
  EXPECT_NE(job_status, "submitted");

  // Right after submitting, the job may not have started: logs -f waits for it.
  ProcessResult logs = Cli({"logs", "-f", "later"});
  EXPECT_EQ(logs.exit_code, 0) << Describe(logs);
  EXPECT_EQ(logs.out, "hi -x --help\n") << Describe(logs);
  EXPECT_EQ(logs.err, "");
}

TEST_F(CliAttachTest, CtrlCDetachesAndTheRunKeepsRunning) {
  PtyProcess run(FLEETWATCH_BINARY,
                 {"run", "--name", "long", "--", "sh", "-c", "echo started; sleep 600"},
                 ClientEnv());
  ASSERT_TRUE(run.started());
  ASSERT_TRUE(run.WaitForOutput("started", std::chrono::seconds(90))) << run.output();
  run.Type("\x03");
  EXPECT_EQ(run.Wait(std::chrono::seconds(30)), 0) << run.output();
  EXPECT_NE(run.output().find("Detached from run long: it keeps running"), std::string::npos)
      << run.output();
  EXPECT_NE(run.output().find("fleetwatch stop long"), std::string::npos) << run.output();
  EXPECT_EQ(RunStatus("long"), "running");

  ProcessResult stopped = Cli({"stop", "long", "--abort", "-y"});
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
}

TEST_F(CliAttachTest, MetricsWatchEndsWithItsRun) {
  // A run that has ended: one frame under the header line, then exit 0.
  ProcessResult done = Cli({"run", "--name", "quick", "--", "true"});
  ASSERT_EQ(done.exit_code, 0) << Describe(done);
  ProcessResult watched = Cli({"metrics", "quick", "-w"});
  EXPECT_EQ(watched.exit_code, 0) << Describe(watched);
  EXPECT_EQ(watched.out.rfind("quick: the last hour, ", 0), 0u) << watched.out;
  EXPECT_NE(watched.out.find(" UTC (the run ended: done)\n\nquick job=0 replica=0 (done)\n"),
            std::string::npos)
      << watched.out;

  // A running one: the watch ends by itself once the run is stopped.
  ProcessResult started = Cli({"run", "-d", "--name", "idle", "--", "sleep", "600"});
  ASSERT_EQ(started.exit_code, 0) << Describe(started);
  ASSERT_TRUE(WaitUntil([&] { return RunStatus("idle") == "running"; }));
  ProcessResult watching;
  std::thread watcher([&] { watching = Cli({"metrics", "idle", "-w"}, 90); });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  ProcessResult stopped = Cli({"stop", "idle", "--abort", "-y"});
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
  watcher.join();
  EXPECT_EQ(watching.exit_code, 0) << Describe(watching);
  EXPECT_NE(watching.out.find("(redrawn every 10s; Ctrl-C stops)"), std::string::npos)
      << watching.out;
  EXPECT_NE(watching.out.find("(the run ended: terminated"), std::string::npos) << watching.out;
}

}  // namespace
}  // namespace fleetwatch::testing
