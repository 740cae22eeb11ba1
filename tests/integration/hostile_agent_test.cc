// A host is untrusted input (DESIGN.md "Trust model"): the real server against a hostile agent
// (tools/hostile_agent.cc) that one user registers in their own project, while a victim's jobs
// run on the server's real local agent in project `main`.
#include <signal.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "support/process.h"
#include "util/clock.h"
#include "util/time_format.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr char kHostileToken[] = "hostile-agent-token";
constexpr int64_t kMaxLogBytes = 1 << 20;      // FLEETWATCH_MAX_LOG_BYTES for this server
constexpr int64_t kHostileLogBytes = 4 << 20;  // every log the hostile agent serves
constexpr int kHostileRuns = 6;                // jobs the server places on the hostile host
constexpr int kMaxStopsPerHostPerTick = 64;    // ReconcileSettings defaults
constexpr int kMaxLogCopiesPerHostPerTick = 4;

int64_t Int(const json::value& v, std::string_view key) {
  const json::value* field = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (field == nullptr || !field->is_number()) return -1;
  json::error_code ec;
  int64_t n = field->to_number<int64_t>(ec);
  return ec ? -1 : n;
}

// Every path under `root` (but not under `skip`) with its size: what a test compares before
// and after to see that nothing was written there.
std::map<std::string, uintmax_t> Listing(const fs::path& root, const fs::path& skip) {
  std::map<std::string, uintmax_t> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->path() == skip) {
      it.disable_recursion_pending();
      continue;
    }
    out[it->path().string()] = it->is_regular_file() ? it->file_size() : 0;
  }
  return out;
}

uintmax_t DirBytes(const fs::path& dir) {
  uintmax_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

// The hostile agent, on 127.0.0.1 with a port of its choosing.
class HostileAgent {
 public:
  explicit HostileAgent(std::vector<std::string> args) {
    args.insert(args.begin(), {"--token", kHostileToken});
    child_ = std::make_unique<ChildProcess>(HOSTILE_AGENT_BINARY, args,
                                            std::map<std::string, std::string>{});
    if (child_->WaitForOutput("listening on http://127.0.0.1:", 30) &&
        child_->WaitForOutput("\n", 5)) {
      std::smatch m;
      std::string out = child_->Output();
      static const std::regex kListening("listening on http://127\\.0\\.0\\.1:(\\d+)");
      if (std::regex_search(out, m, kListening)) port_ = std::stoi(m[1]);
    }
  }
  ~HostileAgent() { child_->Stop(SIGTERM); }

  int port() const { return port_; }
  json::value Stats() const {
    ApiReply r = ApiClient("http://127.0.0.1:" + std::to_string(port_), "").Get("/hostile/stats");
    return r.json;
  }
  // --slow-logs: answers the held log reads and every later one at once.
  void Recover() const {
    ApiReply r = ApiClient("http://127.0.0.1:" + std::to_string(port_), "")
                     .PostJson("/hostile/recover", json::object());
    EXPECT_EQ(r.status, 200) << r.body;
  }

 private:
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
};

class HostileAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(parent_);
    std::map<std::string, std::string> env = ServerEnv();
    env.insert(extra_env_.begin(), extra_env_.end());
    server_ = std::make_unique<ServerProcess>(data_dir_.string(), home_.str(), kAdminToken,
                                              std::vector<std::string>{}, env);
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
    mallory_ = NewUser("mallory");
  }

  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  // The server's settings; a fixture may change them.
  virtual std::map<std::string, std::string> ServerEnv() const {
    return {{"FLEETWATCH_POLL_INTERVAL_MS", "200"},
            {"FLEETWATCH_INSTANCE_UNREACHABLE_SECONDS", "10"},
            {"FLEETWATCH_STOP_GRACE_SECONDS", "2"},
            {"FLEETWATCH_MAX_LOG_BYTES", std::to_string(kMaxLogBytes)},
            {"DSTACK_ENABLE_PROMETHEUS_METRICS", "1"},
            {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}};
  }

  std::unique_ptr<ApiClient> NewUser(const std::string& name) {
    ApiReply r = admin_->PostJson("/api/users", {{"name", name}, {"global_role", "user"}});
    EXPECT_EQ(r.status, 201) << r.body;
    return std::make_unique<ApiClient>(server_->url(), Str(r.json, "token"));
  }

  ApiReply ApplyFleet(const ApiClient& user, const std::string& project, const std::string& name,
                      const std::string& hostname, int port, const std::string& token) {
    std::string yaml = "type: fleet\nname: " + name + "\nssh_config:\n  hosts:\n    - hostname: '" +
                       hostname + "'\n      port: " + std::to_string(port) +
                       "\n      token: " + token + "\n      tls: false\n";
    return user.Send("POST", "/api/project/" + project + "/fleets", yaml, "application/yaml");
  }

  void Submit(const ApiClient& user, const std::string& project, const std::string& yaml) {
    ApiReply r = user.Send("POST", "/api/project/" + project + "/runs", yaml, "application/yaml");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  json::value WaitForStatus(const ApiClient& user, const std::string& project,
                            const std::string& run, const std::string& status) {
    ApiReply last = WaitForRunStatus(user, project, run, status);
    EXPECT_EQ(Str(last.json, "status"), status) << run << ": " << last.body << "\n"
                                                << server_->Output();
    return last.json;
  }

  std::string Logs(const ApiClient& user, const std::string& project, const std::string& run) {
    ApiReply r = user.Get("/api/project/" + project + "/runs/" + run + "/logs");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }

  // The local agent, as the server recorded it.
  json::value LocalAgent() const {
    json::error_code ec;
    json::value v = json::parse(ReadFile(data_dir_ / "local-agent.json"), ec);
    return ec ? json::value() : v;
  }

  std::map<std::string, std::string> extra_env_;  // for the server, set before SetUp
  TempDir root_;
  TempDir home_;
  const fs::path parent_ = root_.path() / "parent";  // the data dir's parent, watched whole
  const fs::path data_dir_ = parent_ / "data";
  const fs::path log_dir_ = data_dir_ / "logs";
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
  std::unique_ptr<ApiClient> mallory_;
};

TEST_F(HostileAgentTest, ForgedIdsWriteNothingOutsideTheLogDirAndTouchNoOtherProject) {
  // The victim: a finished job with its log copied, and a running one, in project main.
  Submit(*admin_, "main", "type: task\nname: victim\ncommands: ['echo victim says hi']\n");
  json::value victim = WaitForStatus(*admin_, "main", "victim", "done");
  ASSERT_EQ(Logs(*admin_, "main", "victim"), "victim says hi\n");
  Submit(*admin_, "main", "type: task\nname: sleeper\ncommands: ['sleep 60']\n");
  json::value sleeper = WaitForStatus(*admin_, "main", "sleeper", "running");
  const std::string victim_id = Str(victim.at("jobs").at(0), "id");
  const std::string sleeper_id = Str(sleeper.at("jobs").at(0), "id");
  ASSERT_FALSE(victim_id.empty());
  const fs::path victim_copy = log_dir_ / (victim_id + ".log");
  const std::string victim_copy_before = ReadFile(victim_copy);
  ASSERT_EQ(victim_copy_before, "victim says hi\n");

  const auto outside_before = Listing(parent_, data_dir_);
  const uintmax_t log_dir_before = DirBytes(log_dir_);
  const fs::path abs_target = root_.path() / "abs" / "x";
  HostileAgent hostile({"--path-ids", "../../x", "/abs/path/x", abs_target.string(),
                        "../../../../../../../tmp/hostile-x", "--victim-ids", victim_id, sleeper_id,
                        "--new-ids-per-poll", "1000", "--log-bytes",
                        std::to_string(kHostileLogBytes)});
  ASSERT_GT(hostile.port(), 0);

  // Mallory, a plain user, makes a project and registers her host.
  ASSERT_EQ(mallory_->PostJson("/api/projects", {{"name", "evil"}}).status, 201);
  ApiReply fleet =
      ApplyFleet(*mallory_, "evil", "evil", "127.0.0.1", hostile.port(), kHostileToken);
  ASSERT_EQ(fleet.status, 201) << fleet.body;
  for (int k = 0; k < kHostileRuns; ++k) {
    Submit(*mallory_, "evil",
           "type: task\nname: evil-" + std::to_string(k) + "\ncommands: ['true']\n");
  }
  for (int k = 0; k < kHostileRuns; ++k) {
    WaitForStatus(*mallory_, "evil", "evil-" + std::to_string(k), "done");
  }
  // Every placed job acknowledged, i.e. its log copied, and many polls of forged ids seen.
  json::value stats;
  ASSERT_TRUE(WaitUntil([&] {
    stats = hostile.Stats();
    return stats.is_object() && stats.at("acknowledged").as_array().size() == kHostileRuns &&
           Int(stats, "polls") >= 40;
  })) << json::serialize(stats)
      << "\n"
      << server_->Output();

  // The server read no log of a job it did not place there, and kept to its caps.
  EXPECT_EQ(Int(stats, "foreign_log_reads"), 0) << json::serialize(stats);
  EXPECT_EQ(Int(stats, "placed"), kHostileRuns);
  EXPECT_GT(Int(stats, "stops") + Int(stats, "forgets"), 0);  // the flood was answered...
  // ...capped. The caps are per tick; the host counts between its polls, and a poll that comes
  // back late (a loaded machine) lets the commands of two ticks in between.
  EXPECT_LE(Int(stats, "max_foreign_commands_between_polls"), 2 * kMaxStopsPerHostPerTick);
  EXPECT_LE(Int(stats, "max_placed_copies_between_polls"), 2 * kMaxLogCopiesPerHostPerTick);

  // Nothing written outside the log dir, nor where the path-shaped ids point.
  for (const fs::path& p :
       {parent_ / "x.log", parent_ / "x", fs::path("/abs/path/x.log"), abs_target,
        fs::path(abs_target.string() + ".log"), fs::path("/tmp/hostile-x.log")}) {
    EXPECT_FALSE(fs::exists(p)) << p;
  }
  EXPECT_EQ(Listing(parent_, data_dir_), outside_before);
  // The log dir holds only copies named by the server's own job ids, each 0600.
  for (const auto& entry : fs::directory_iterator(log_dir_)) {
    std::string name = entry.path().filename().string();
    EXPECT_TRUE(std::regex_match(name, std::regex("[0-9a-f-]{36}\\.log"))) << name;
    EXPECT_EQ(entry.status().permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write)
        << name;
  }
  // It grew by no more than the caps allow: one capped copy per placed job.
  const std::string marker = "[fleetwatch: the first " +
                             std::to_string(kHostileLogBytes - kMaxLogBytes) +
                             " bytes of this log were dropped; its end follows]\n";
  const uintmax_t growth = DirBytes(log_dir_) - log_dir_before;
  std::cout << "log dir grew by " << growth << " bytes for " << kHostileRuns
            << " placed jobs; the hostile agent saw " << json::serialize(stats) << "\n";
  EXPECT_LE(growth, kHostileRuns * (kMaxLogBytes + marker.size()));
  // A placed job's copy is the tail of its log under the marker, served page by page.
  std::string evil_log;
  for (std::string page = "-"; !page.empty(); evil_log += page) {
    ApiReply r = mallory_->Get("/api/project/evil/runs/evil-0/logs?offset=" +
                               std::to_string(evil_log.size()));
    ASSERT_EQ(r.status, 200) << r.body;
    page = r.body;
  }
  EXPECT_EQ(evil_log.size(), kMaxLogBytes + marker.size());
  EXPECT_EQ(evil_log.substr(0, marker.size()), marker);
  EXPECT_NE(evil_log.find("hostile log line", marker.size()), std::string::npos);

  // The victims are untouched: the stored log, the running job, the project.
  EXPECT_EQ(ReadFile(victim_copy), victim_copy_before);
  EXPECT_EQ(Logs(*admin_, "main", "victim"), "victim says hi\n");
  ApiReply still = admin_->Get("/api/project/main/runs/sleeper");
  EXPECT_EQ(Str(still.json, "status"), "running") << still.body;
  EXPECT_EQ(mallory_->Get("/api/project/main/runs/victim/logs").status, 403);
  // The replies with path-shaped ids were refused whole and counted, on the host's own series.
  // The exposition follows the ticks that use the replies, so it may lag the host's poll count.
  const int64_t counted_polls = Int(stats, "polls");
  const std::regex evil_errors(
      "\nfleetwatch_agent_poll_errors_total\\{[^}]*dstack_fleet_name=\"evil\"[^}]*\\} (\\d+)");
  int64_t errors = -1;
  std::string metrics;
  EXPECT_TRUE(WaitUntil([&] {
    metrics = admin_->Get("/metrics/replica").body;
    std::smatch match;
    if (std::regex_search(metrics, match, evil_errors)) errors = std::stoll(match[1]);
    return errors >= counted_polls / 2 - 2;
  })) << errors
      << " of " << counted_polls << "\n"
      << metrics.substr(0, 2000);
  EXPECT_LE(errors, Int(hostile.Stats(), "polls"));
  // And the server keeps serving.
  EXPECT_EQ(admin_->Get("/api/server/info").status, 200);
  ASSERT_EQ(admin_->PostJson("/api/project/main/runs/sleeper/stop", json::object()).status, 200);
}

TEST_F(HostileAgentTest, AHostIsInOneFleetOnly) {
  Submit(*admin_, "main", "type: task\nname: sleeper\ncommands: ['sleep 60']\n");
  WaitForStatus(*admin_, "main", "sleeper", "running");
  HostileAgent hostile({"--new-ids-per-poll", "0"});
  ASSERT_GT(hostile.port(), 0);
  ASSERT_EQ(mallory_->PostJson("/api/projects", {{"name", "evil"}}).status, 201);
  ASSERT_EQ(mallory_->PostJson("/api/projects", {{"name", "evil2"}}).status, 201);
  ASSERT_EQ(
      ApplyFleet(*mallory_, "evil", "mine", "127.0.0.1", hostile.port(), kHostileToken).status,
      201);

  // The local agent, by any loopback name: refused, and the sleeper lives on.
  const int local_port = static_cast<int>(Int(LocalAgent(), "port"));
  ASSERT_GT(local_port, 0);
  const std::string local_token = Str(LocalAgent(), "token");
  for (const char* name : {"127.0.0.1", "localhost", "LOCALHOST", "127.0.0.2", "::1", "0.0.0.0"}) {
    ApiReply r = ApplyFleet(*mallory_, "evil", "stolen", name, local_port, local_token);
    EXPECT_EQ(r.status, 409) << name << ": " << r.body;
    EXPECT_EQ(r.ErrorCode(), "already_exists");
    EXPECT_NE(r.body.find("local agent"), std::string::npos) << r.body;
  }
  // A host of another fleet: the owner of both projects is told which fleet...
  ApiReply again = ApplyFleet(*mallory_, "evil2", "again", "localhost", hostile.port(), "t");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_NE(again.body.find("fleet 'mine' of project 'evil'"), std::string::npos) << again.body;
  // ...a stranger is not.
  std::unique_ptr<ApiClient> bob = NewUser("bob");
  ASSERT_EQ(bob->PostJson("/api/projects", {{"name", "bobs"}}).status, 201);
  ApiReply stranger = ApplyFleet(*bob, "bobs", "b", "[::ffff:127.0.0.1]", hostile.port(), "t");
  EXPECT_EQ(stranger.status, 409) << stranger.body;
  EXPECT_NE(stranger.body.find("already registered in another fleet"), std::string::npos);
  EXPECT_EQ(stranger.body.find("evil"), std::string::npos) << stranger.body;
  EXPECT_EQ(bob->Get("/api/project/bobs/fleets").json.at("items").as_array().size(), 0u);

  ApiReply still = admin_->Get("/api/project/main/runs/sleeper");
  EXPECT_EQ(Str(still.json, "status"), "running") << still.body;
  ASSERT_EQ(admin_->PostJson("/api/project/main/runs/sleeper/stop", json::object()).status, 200);
}

TEST_F(HostileAgentTest, AnAgentIdThatAnOlderInstanceHasIsNeverCommanded) {
  Submit(*admin_, "main", "type: task\nname: sleeper\ncommands: ['sleep 60']\n");
  json::value sleeper = WaitForStatus(*admin_, "main", "sleeper", "running");
  const std::string sleeper_id = Str(sleeper.at("jobs").at(0), "id");
  // The local agent's id, as its healthcheck says it.
  // It serves HTTPS with the certificate the server pins.
  http::ClientOptions pinned;
  pinned.tls.fingerprint = Str(LocalAgent(), "fingerprint");
  ApiClient local("https://127.0.0.1:" + std::to_string(Int(LocalAgent(), "port")),
                  Str(LocalAgent(), "token"), pinned);
  const std::string local_agent_id = Str(local.Get("/api/healthcheck").json, "agent_id");
  ASSERT_FALSE(local_agent_id.empty());

  // A host under another name that claims to be the same agent, reporting the victim's job and
  // a flood of ids: as if one agent were listed in two fleets.
  HostileAgent hostile({"--agent-id", local_agent_id, "--victim-ids", sleeper_id, sleeper_id + "0",
                        "--new-ids-per-poll", "100"});
  ASSERT_GT(hostile.port(), 0);
  ASSERT_EQ(mallory_->PostJson("/api/projects", {{"name", "evil"}}).status, 201);
  ASSERT_EQ(
      ApplyFleet(*mallory_, "evil", "twin", "127.0.0.1", hostile.port(), kHostileToken).status,
      201);
  Submit(*mallory_, "evil", "type: task\nname: wants-in\ncommands: ['true']\n");

  // The newer instance shows it cannot be used...
  json::value instance;
  ASSERT_TRUE(WaitUntil([&] {
    instance = mallory_->Get("/api/project/evil/instances").json.at("items").at(0);
    return instance.at("unreachable").as_bool();
  })) << json::serialize(instance)
      << "\n"
      << server_->Output();
  EXPECT_NE(server_->Output().find("already serves instance local-0"), std::string::npos);
  // ...and, many polls later, has been sent nothing at all.
  json::value stats;
  ASSERT_TRUE(WaitUntil([&] {
    stats = hostile.Stats();
    return Int(stats, "polls") >= 30;
  }));
  EXPECT_EQ(Int(stats, "placed"), 0) << json::serialize(stats);
  EXPECT_EQ(Int(stats, "stops"), 0);
  EXPECT_EQ(Int(stats, "forgets"), 0);
  EXPECT_EQ(Int(stats, "foreign_log_reads") + Int(stats, "placed_log_reads"), 0);
  ApiReply still = admin_->Get("/api/project/main/runs/sleeper");
  EXPECT_EQ(Str(still.json, "status"), "running") << still.body;
  ASSERT_EQ(admin_->PostJson("/api/project/main/runs/sleeper/stop", json::object()).status, 200);
}

// A host slow on every endpoint (inventory, start, stop, log reads, acknowledgement: 4.5 s each)
// in one project delays nothing of another project: the local agent's short tasks end within a
// few ticks of their commands, as if the slow host were not there.
TEST_F(HostileAgentTest, AHostSlowOnEveryEndpointDelaysOnlyItself) {
  HostileAgent slow(
      {"--slow-ms", "4500", "--keep-running", "--new-ids-per-poll", "0", "--log-bytes", "1000"});
  ASSERT_GT(slow.port(), 0);
  ASSERT_EQ(mallory_->PostJson("/api/projects", {{"name", "slow"}}).status, 201);
  ASSERT_EQ(ApplyFleet(*mallory_, "slow", "slow", "127.0.0.1", slow.port(), kHostileToken).status,
            201);
  Submit(*mallory_, "slow", "type: task\nname: slow-0\ncommands: ['true']\n");
  Submit(*mallory_, "slow", "type: task\nname: slow-1\ncommands: ['true']\n");

  constexpr int kTasks = 20;
  std::vector<double> lags_ms;  // from a task's command ending to the API showing it done
  bool stopped_slow = false;    // a stop for the slow host while the tasks run, when it can be
  for (int k = 0; k < kTasks; ++k) {
    const std::string name = "quick-" + std::to_string(k);
    Submit(*admin_, "main", "type: task\nname: " + name + "\ncommands: ['sleep 0.2']\n");
    ApiReply r;
    TimeMicros seen = 0;
    ASSERT_TRUE(WaitUntil(
        [&] {
          r = admin_->Get("/api/project/main/runs/" + name);
          seen = SystemClock::Get().Now();
          return Str(r.json, "status") == "done" || Str(r.json, "status") == "failed";
        },
        std::chrono::seconds(120)))
        << r.body << "\n"
        << server_->Output();
    ASSERT_EQ(Str(r.json, "status"), "done") << r.body;
    Result<TimeMicros> ended = ParseTimestamp(Str(r.json.at("jobs").at(0), "finished_at"));
    ASSERT_TRUE(ended.ok()) << r.body;
    lags_ms.push_back(static_cast<double>(seen - *ended) / 1000.0);
    if (!stopped_slow &&
        Str(mallory_->Get("/api/project/slow/runs/slow-0").json, "status") == "running") {
      // A stop for the slow host too, while the tasks go on.
      ASSERT_EQ(mallory_->PostJson("/api/project/slow/runs/slow-0/stop", json::object()).status,
                200);
      stopped_slow = true;
    }
  }
  std::vector<double> sorted = lags_ms;
  std::sort(sorted.begin(), sorted.end());
  std::ostringstream figures;
  for (double lag : lags_ms) figures << static_cast<int>(lag) << " ";
  const double median = sorted[sorted.size() / 2];
  std::cout << "[ figures  ] task end -> done seen by the API, ms (poll interval 200 ms, slow host "
               "4500 ms): "
            << figures.str() << "| median " << median << " max " << sorted.back() << std::endl;
  // A tick that waited on the slow host would take 4.5 s or more each time.
  EXPECT_LT(median, 4000.0) << figures.str() << "\n" << server_->Output();

  if (!stopped_slow) {
    // The slow host is slow to say its job runs, too: its stop comes after the tasks then.
    WaitForStatus(*mallory_, "slow", "slow-0", "running");
    ASSERT_EQ(mallory_->PostJson("/api/project/slow/runs/slow-0/stop", json::object()).status, 200);
  }

  // The slow host got everything, late: its jobs started, one stopped and acknowledged.
  json::value stats;
  EXPECT_TRUE(WaitUntil(
      [&] {
        stats = slow.Stats();
        return Int(stats, "placed") == 2 && Int(stats, "stopped") >= 1 &&
               !stats.at("acknowledged").as_array().empty();
      },
      std::chrono::seconds(120)))
      << json::serialize(stats) << "\n"
      << server_->Output();
  std::cout << "[ figures  ] slow host: " << json::serialize(stats) << std::endl;
  EXPECT_EQ(Str(WaitForStatus(*mallory_, "slow", "slow-0", "terminated"), "status"), "terminated");
  ASSERT_EQ(mallory_->PostJson("/api/project/slow/runs/slow-1/stop", json::object()).status, 200);
}

// Polls every second against a host that answers each in 1.5 s: its replies land after the
// tick's wait, and its DCGM samples and job points still reach /metrics, like a fast host's.
class SlowPollTest : public HostileAgentTest {
 protected:
  std::map<std::string, std::string> ServerEnv() const override {
    std::map<std::string, std::string> env = HostileAgentTest::ServerEnv();
    env["FLEETWATCH_POLL_INTERVAL_MS"] = "1000";
    env["FLEETWATCH_METRICS_INTERVAL_SECONDS"] = "2";
    return env;
  }
};

TEST_F(SlowPollTest, RepliesThatLandAfterTheTicksWaitStillReachMetrics) {
  HostileAgent slow({"--slow-ms", "1500", "--keep-running", "--new-ids-per-poll", "0", "--gpus",
                     "1", "--agent-id", "slow-agent"});
  HostileAgent fast(
      {"--keep-running", "--new-ids-per-poll", "0", "--gpus", "1", "--agent-id", "fast-agent"});
  ASSERT_GT(slow.port(), 0);
  ASSERT_GT(fast.port(), 0);
  for (const auto& [project, port] : {std::pair{"slow", slow.port()}, {"fast", fast.port()}}) {
    ASSERT_EQ(mallory_->PostJson("/api/projects", {{"name", project}}).status, 201);
    ASSERT_EQ(ApplyFleet(*mallory_, project, project, "127.0.0.1", port, kHostileToken).status,
              201);
    Submit(*mallory_, project, "type: task\nname: hot\ncommands: ['true']\nresources: {gpu: 1}\n");
  }
  const ApiClient scraper(server_->url(), "");
  std::string body;
  auto has = [&](const std::string& family, const std::string& project) {
    const std::string labels = "dstack_project_name=\"" + project + "\"";
    for (size_t at = body.find(family + "{"); at != std::string::npos;
         at = body.find(family + "{", at + 1)) {
      const size_t eol = body.find('\n', at);
      if (body.substr(at, eol - at).find(labels) != std::string::npos) return true;
    }
    return false;
  };
  bool all = false;
  const auto started = std::chrono::steady_clock::now();
  WaitUntil(
      [&] {
        body = scraper.Get("/metrics").body;
        all = true;
        for (const char* project : {"fast", "slow"}) {
          all = all && has("DCGM_FI_DEV_GPU_UTIL", project) &&
                has("dstack_job_cpu_time_seconds_total", project);
        }
        return all;
      },
      std::chrono::seconds(90));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "[ figures  ] both hosts' DCGM samples and job points in /metrics after " << seconds
            << " s; slow host " << json::serialize(slow.Stats()) << "; fast host "
            << json::serialize(fast.Stats()) << std::endl;
  EXPECT_TRUE(all) << body << "\n" << server_->Output();
  // The slow host was asked for metrics, not only polled.
  EXPECT_GE(Int(slow.Stats(), "dcgm_polls"), 1);
  for (const char* project : {"fast", "slow"}) {
    ASSERT_EQ(
        mallory_
            ->PostJson("/api/project/" + std::string(project) + "/runs/hot/stop", json::object())
            .status,
        200);
  }
}

// A host that is slow to serve logs (it holds every read) must not take the API with it.
class SlowLogsTest : public HostileAgentTest {
 protected:
  static constexpr int kSlowReads = 32;  // more than the server's HTTP threads on any machine

  void SetUp() override {
    extra_env_ = {{"FLEETWATCH_MAX_LOG_READS_PER_HOST", std::to_string(kSlowReads)}};
    HostileAgentTest::SetUp();
  }
};

TEST_F(SlowLogsTest, LogReadsHangingOnASlowHostHoldNoServerThreadAndTheRestFailFast) {
  HostileAgent hostile({"--slow-logs", "--new-ids-per-poll", "0", "--log-bytes", "100000"});
  ASSERT_GT(hostile.port(), 0);
  ASSERT_EQ(mallory_->PostJson("/api/projects", {{"name", "slow"}}).status, 201);
  ASSERT_EQ(
      ApplyFleet(*mallory_, "slow", "slow", "127.0.0.1", hostile.port(), kHostileToken).status,
      201);
  Submit(*mallory_, "slow", "type: task\nname: tail\ncommands: ['sleep 600']\n");
  WaitForStatus(*mallory_, "slow", "tail", "running");
  const std::string logs = "/api/project/slow/runs/tail/logs";

  // As many reads as the limit, all held by the host.
  std::vector<std::future<ApiReply>> hanging;
  for (int k = 0; k < kSlowReads; ++k) {
    hanging.push_back(std::async(std::launch::async, [&] { return mallory_->Get(logs); }));
  }
  ASSERT_TRUE(WaitUntil([&] { return Int(hostile.Stats(), "holding_log_reads") == kSlowReads; }))
      << json::serialize(hostile.Stats()) << "\n"
      << server_->Output();
  auto still_hanging = [&] {
    return std::all_of(hanging.begin(), hanging.end(), [](const std::future<ApiReply>& f) {
      return f.wait_for(std::chrono::seconds(0)) == std::future_status::timeout;
    });
  };

  // The API answers while they hang...
  auto started = steady_clock::now();
  ApiReply info = admin_->Get("/api/server/info");
  const auto info_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started).count();
  EXPECT_EQ(info.status, 200) << info.body;
  EXPECT_TRUE(still_hanging()) << "a held log read completed before /api/server/info";
  // ...and a read beyond the host's limit is refused at once, saying why.
  started = steady_clock::now();
  ApiReply refused = mallory_->Get(logs);
  const auto refused_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started).count();
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.ErrorCode(), "unavailable");
  EXPECT_EQ(refused.Header("retry-after"), "1");
  EXPECT_NE(refused.body.find("127.0.0.1:" + std::to_string(hostile.port())), std::string::npos)
      << refused.body;
  EXPECT_NE(refused.body.find(std::to_string(kSlowReads) + " log reads in flight"),
            std::string::npos)
      << refused.body;
  EXPECT_TRUE(still_hanging()) << "a held log read completed before the refused one";
  std::cout << "with " << kSlowReads << " log reads hanging on a slow host: GET /api/server/info "
            << "took " << info_ms << " ms, a read beyond the limit was refused in " << refused_ms
            << " ms\n";

  // The host recovers: the held reads get their logs (or, past the agent timeout, a 503), and
  // reads work again.
  hostile.Recover();
  int answered = 0;
  for (auto& f : hanging) {
    ApiReply r = f.get();
    EXPECT_TRUE(r.status == 200 || r.status == 503) << r.status << " " << r.body;
    if (r.status == 200) {
      ++answered;
      EXPECT_EQ(r.body.size(), 100000u);
      EXPECT_EQ(r.Header("x-log-size"), "100000");
    }
  }
  std::cout << answered << " of the " << kSlowReads << " held reads got their log\n";
  ApiReply again = mallory_->Get(logs + "?offset=99990");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.body.size(), 10u);
  EXPECT_EQ(again.Header("x-job-status"), "running");
  EXPECT_EQ(admin_->Get("/api/server/info").status, 200);
}

}  // namespace
}  // namespace fleetwatch::testing
