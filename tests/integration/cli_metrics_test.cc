// `fleetwatch metrics` end to end: the real binary against a real server on 127.0.0.1, and `-w`
// in a real terminal (a detached tmux session 80 columns wide) while a job burns CPU on the
// server's embedded local fleet.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-cli-metrics-tests-0123";
constexpr char kUnset[] = "\x01unset";

// Burns one core for a minute (the test stops it sooner).
constexpr char kSpinYaml[] =
    "type: task\nname: spin\ncommands: ['timeout 60 sh -c \"while :; do :; done\"']\n";

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// The command failed the way every client command must: exit code 1 and exactly one line
// "error: ..." on stderr. Returns that line.
std::string ExpectOneErrorLine(const ProcessResult& r) {
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Describe(r);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << Describe(r);
  EXPECT_EQ(r.out, "") << Describe(r);
  return r.err;
}

// The absolute path of `name` on PATH, or "" when it is not there.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// Quotes `text` for sh: '...' with every ' written as '\''.
std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The lines of `text`.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A `cpu` row with its newest utilisation: "cpu" then, after a sparkline, "NN%".
bool HasCpuRowWithPercent(const std::string& screen) {
  for (const std::string& line : Lines(screen)) {
    if (line.rfind("cpu ", 0) != 0) continue;
    const size_t percent = line.find('%');
    if (percent != std::string::npos && percent > 0 &&
        std::isdigit(static_cast<unsigned char>(line[percent - 1]))) {
      return true;
    }
  }
  return false;
}

class CliMetricsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) {
      // SIGTERM, so that the server also stops its local agent and the job's processes.
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  void StartServer(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    env["FLEETWATCH_NVML_LIBRARY"] = "/nonexistent/libnvidia-ml.so.1";
    server_ = std::make_unique<ServerProcess>(data_.str(), server_home_.str(), kAdminToken,
                                              std::move(args), std::move(env));
    ASSERT_TRUE(server_->started()) << server_->Output();
    ProcessResult r =
        Cli({"config", "--url", server_->url(), "--token", kAdminToken, "--project", "main"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // The environment of a client process: its own HOME, nothing leaking in from the runner.
  std::map<std::string, std::string> ClientEnv() const {
    return {{"HOME", home_.str()},
            {"FLEETWATCH_URL", kUnset},
            {"FLEETWATCH_TOKEN", kUnset},
            {"FLEETWATCH_PROJECT", kUnset},
            {"COLUMNS", kUnset}};
  }

  ProcessResult Cli(const std::vector<std::string>& args, const std::string& input = {}) {
    return RunProcess(FLEETWATCH_BINARY, args, ClientEnv(), input, 60);
  }

  // `ps -a --json`'s status of the newest run named `name` ("" when there is none).
  std::string RunStatus(const std::string& name) {
    ProcessResult r = Cli({"ps", "-a", "--json"});
    boost::system::error_code ec;
    json::value reply = json::parse(r.out, ec);
    if (ec || !reply.is_object() || !reply.as_object().contains("items")) return "";
    for (const json::value& run : reply.at("items").as_array()) {
      if (run.at("run_name").as_string() == name) return std::string(run.at("status").as_string());
    }
    return "";
  }

  TempDir data_;
  TempDir server_home_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
};

TEST(CliMetricsWithoutServer, HelpExitsZero) {
  TempDir home;
  ProcessResult r = RunProcess(FLEETWATCH_BINARY, {"metrics", "--help"},
                               {{"HOME", home.str()}, {"COLUMNS", "100"}}, {}, 60);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* option : {"--job", "--replica", "--json", "-w"}) {
    EXPECT_NE(r.out.find(option), std::string::npos) << option << "\n" << Describe(r);
  }
}

TEST_F(CliMetricsTest, UnknownRunOrJobIsOneErrorLineAndExitOne) {
  StartServer({"--no-local-fleet"});
  std::string unknown = ExpectOneErrorLine(Cli({"metrics", "no-such-run"}));
  EXPECT_NE(unknown.find("no-such-run"), std::string::npos) << unknown;
  ExpectOneErrorLine(Cli({"metrics", "no-such-run", "-w"}));  // -w fails at once too
  ExpectOneErrorLine(Cli({"metrics", "no-such-run", "--json"}));

  // A run that exists (it waits: there is no fleet) but not the job asked for.
  ProcessResult submitted =
      Cli({"apply", "-d", "-f", "-"}, "type: task\nname: idle\ncommands: [\"true\"]\n");
  ASSERT_EQ(submitted.exit_code, 0) << Describe(submitted);
  std::string no_job = ExpectOneErrorLine(Cli({"metrics", "idle", "--job", "3"}));
  EXPECT_NE(no_job.find("idle"), std::string::npos) << no_job;
  ExpectOneErrorLine(Cli({"metrics", "idle", "--replica", "2"}));
}

TEST_F(CliMetricsTest, AJobWithoutPointsShowsNoData) {
  StartServer({"--no-local-fleet"});
  ProcessResult submitted =
      Cli({"apply", "-d", "-f", "-"}, "type: task\nname: idle\ncommands: [\"true\"]\n");
  ASSERT_EQ(submitted.exit_code, 0) << Describe(submitted);

  ProcessResult table = Cli({"metrics", "idle"});
  ASSERT_EQ(table.exit_code, 0) << Describe(table);
  EXPECT_EQ(table.err, "");
  const std::vector<std::string> lines = Lines(table.out);
  ASSERT_EQ(lines.size(), 3u) << table.out;
  EXPECT_EQ(lines[0].rfind("idle job=0 replica=0 (", 0), 0u) << table.out;
  EXPECT_EQ(lines[1], "     UTILIZATION  MEMORY");
  EXPECT_EQ(lines[2], "cpu  no data      no data");

  ProcessResult with_flags = Cli({"metrics", "idle", "--job", "0", "--replica", "0"});
  EXPECT_EQ(with_flags.exit_code, 0) << Describe(with_flags);
  // The same table; only the status in the heading may have moved on (no fleet can take the
  // run, so it fails meanwhile).
  std::vector<std::string> again = Lines(with_flags.out);
  ASSERT_EQ(again.size(), 3u) << with_flags.out;
  EXPECT_EQ(again[0].rfind("idle job=0 replica=0 (", 0), 0u) << with_flags.out;
  EXPECT_EQ(again[1], lines[1]);
  EXPECT_EQ(again[2], lines[2]);

  ProcessResult as_json = Cli({"metrics", "idle", "--json"});
  ASSERT_EQ(as_json.exit_code, 0) << Describe(as_json);
  boost::system::error_code ec;
  json::value doc = json::parse(as_json.out, ec);
  ASSERT_FALSE(ec) << as_json.out;
  EXPECT_EQ(doc, json::parse(R"({"jobs": [{"job_num": 0, "replica_num": 0, "metrics": []}]})"))
      << as_json.out;
}

// tmux with a server and socket of its own (in a temporary directory, so that parallel tests
// never share a tmux server and nothing is left behind); the server is killed when the test
// ends, whatever happened.
class Tmux {
 public:
  explicit Tmux(std::string binary)
      : binary_(std::move(binary)), socket_((dir_.path() / "tmux").string()) {}
  ~Tmux() { Run({"kill-server"}); }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  ProcessResult Run(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-u", "-S", socket_, "-f", "/dev/null"});
    return RunProcess(binary_, args, {{"LANG", "C.UTF-8"}, {"TMUX", kUnset}}, {}, 30);
  }

 private:
  TempDir dir_;
  std::string binary_;
  std::string socket_;
};

TEST_F(CliMetricsTest, WatchDrawsTheCpuRowInARealTerminalAndCtrlCExitsZero) {
  const std::string tmux_binary = FindOnPath("tmux");
  if (tmux_binary.empty()) GTEST_SKIP() << "tmux is not installed";
  // The embedded local fleet runs the job; points every second instead of every ten.
  StartServer({}, {{"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
                   {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
                   {"FLEETWATCH_STOP_GRACE_SECONDS", "2"}});
  ProcessResult submitted = Cli({"apply", "-d", "-f", "-"}, kSpinYaml);
  ASSERT_EQ(submitted.exit_code, 0) << Describe(submitted);

  // Wait until the server has samples (two points make one), so that the first frame has data.
  std::string last;
  bool has_points = false;
  for (auto deadline = steady_clock::now() + std::chrono::seconds(45);
       !has_points && steady_clock::now() < deadline;) {
    ProcessResult r = Cli({"metrics", "spin", "--json"});
    last = Describe(r);
    boost::system::error_code ec;
    json::value doc = json::parse(r.out, ec);
    has_points = r.exit_code == 0 && !ec && doc.is_object() &&
                 !doc.at("jobs").at(0).at("metrics").as_array().empty();
    if (!has_points) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  ASSERT_TRUE(has_points) << "no metrics for the running job; last reply:\n"
                          << last << "\nrun status: " << RunStatus("spin") << "\nserver:\n"
                          << server_->Output();

  // The client in an 80×24 terminal; its exit code lands in a file once it ends. Ctrl-C reaches
  // the whole foreground group: the shell catches it (its child gets the default action back)
  // so that it lives on to write the code.
  const std::filesystem::path exit_file = home_.path() / "exit-code";
  std::string command =
      "trap true INT; env -u COLUMNS -u FLEETWATCH_URL -u FLEETWATCH_TOKEN "
      "-u FLEETWATCH_PROJECT HOME=" +
      ShellQuote(home_.str()) + " LANG=C.UTF-8 " + ShellQuote(FLEETWATCH_BINARY) +
      " metrics spin -w; echo $? > " + ShellQuote(exit_file.string());
  Tmux tmux(tmux_binary);
  ProcessResult started = tmux.Run({"new-session", "-d", "-s", "metrics", "-x", "80", "-y", "24",
                                    "sh -c " + ShellQuote(command)});
  ASSERT_EQ(started.exit_code, 0) << Describe(started);

  std::string screen;
  bool drawn = false;
  for (auto deadline = steady_clock::now() + std::chrono::seconds(30);
       !drawn && steady_clock::now() < deadline;) {
    ProcessResult captured = tmux.Run({"capture-pane", "-p", "-t", "metrics"});
    screen = captured.out;
    drawn = captured.exit_code == 0 && HasCpuRowWithPercent(screen);
    if (!drawn) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(drawn) << "screen:\n" << screen << "\nserver:\n" << server_->Output();
  // The frame starts at the top of a cleared screen, and nothing wrapped: the line naming the run
  // and the span shown, the title, the header and the cpu row are whole lines of the 80-column
  // pane.
  const std::vector<std::string> lines = Lines(screen);
  ASSERT_GE(lines.size(), 5u) << screen;
  EXPECT_EQ(lines[0].rfind("spin: the last hour, ", 0), 0u) << screen;
  EXPECT_NE(lines[0].find(" UTC (redrawn every 10s; Ctrl-C stops)"), std::string::npos) << screen;
  EXPECT_EQ(lines[1], "") << screen;
  EXPECT_EQ(lines[2].rfind("spin job=0 replica=0 (", 0), 0u) << screen;
  EXPECT_NE(lines[3].find("UTILIZATION"), std::string::npos) << screen;
  EXPECT_NE(lines[3].find("MEMORY"), std::string::npos) << screen;
  EXPECT_EQ(lines[4].rfind("cpu ", 0), 0u) << screen;
  EXPECT_NE(lines[4].find("B/"), std::string::npos) << "memory used/total\n" << screen;

  ProcessResult sent = tmux.Run({"send-keys", "-t", "metrics", "C-c"});
  ASSERT_EQ(sent.exit_code, 0) << Describe(sent);
  bool ended = false;
  for (auto deadline = steady_clock::now() + std::chrono::seconds(10);
       !ended && steady_clock::now() < deadline;) {
    ended = tmux.Run({"has-session", "-t", "metrics"}).exit_code != 0;
    if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(ended) << "the session still runs after Ctrl-C:\n"
                     << tmux.Run({"capture-pane", "-p", "-t", "metrics"}).out;
  EXPECT_EQ(ReadFile(exit_file), "0\n");

  ProcessResult stopped = Cli({"stop", "spin", "--abort", "-y"});
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
}

}  // namespace
}  // namespace fleetwatch::testing
