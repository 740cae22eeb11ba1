// Jobs of a root agent run under unprivileged uids of their own, in a clean environment and in
// 0700 directories of their own; the agent's own files are private. The real `fleetwatch agent`
// binary (and, for process-level checks, the runtime itself), real processes.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <regex>

#include "agent/process_job_runtime.h"
#include "agent/sys_files.h"
#include "agent/test_helpers.h"
#include "http/client.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using fleetwatch::testing::ChildProcess;
using fleetwatch::testing::ProcessResult;
using fleetwatch::testing::RunProcess;
using fleetwatch::testing::TempDir;
using testing::WaitUntil;

constexpr char kToken[] = "job-users-test-token";
constexpr char kMarker[] = "FLEETWATCH_TEST_MARKER";

struct stat StatOf(const fs::path& path) {
  struct stat st = {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

// The value of `name=` on a line of `text` ("" when absent).
std::string Field(const std::string& text, const std::string& name) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex("(^|\n)" + name + "=([^\n]*)"))) return m[2];
  return "";
}

// A root agent on 127.0.0.1 with its data dir and a jobs root (in a 0711 temp dir) of its own.
class JobUsersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "jobs switch users only when the agent is root";
    ::chmod(dir_.path().c_str(), 0711);
  }

  fs::path DataDir() const { return dir_.path() / "data"; }
  fs::path JobsDir() const { return dir_.path() / "jobs"; }

  std::vector<std::string> Args(std::vector<std::string> extra = {},
                                std::optional<fs::path> jobs_dir = std::nullopt) const {
    std::vector<std::string> args = {"agent",     "--host",     "127.0.0.1",
                                     "--port",    "0",          "--data-dir",
                                     DataDir(),   "--jobs-dir", jobs_dir.value_or(JobsDir()),
                                     "--no-dcgm", "--no-tls"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // The agent's environment carries secrets and a marker that jobs must never see.
  static std::map<std::string, std::string> Env() {
    return {{"FLEETWATCH_AGENT_TOKEN", kToken},
            {kMarker, "agent-secret-marker"},
            {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"},
            {"HOME", "/root"}};
  }

  void StartAgent(std::vector<std::string> extra = {}) {
    agent_ = std::make_unique<ChildProcess>(FLEETWATCH_BINARY, Args(std::move(extra)), Env());
    ASSERT_TRUE(agent_->WaitForOutput("fleetwatch agent listening on http://127.0.0.1:", 60))
        << agent_->Output();
    json::value file = json::parse(testing::ReadFile(DataDir() / "agent.json"));
    Result<http::Client> client =
        http::Client::Create("http://127.0.0.1:" + std::to_string(file.at("port").as_int64()));
    ASSERT_TRUE(client.ok());
    client_ = std::make_unique<http::Client>(std::move(client).value());
  }

  void TearDown() override {
    if (agent_) {
      EXPECT_EQ(agent_->Stop(SIGTERM, 60), 0) << agent_->Output();
    }
  }

  http::Response Send(const std::string& method, const std::string& target,
                      const std::string& body = "") {
    Result<http::Response> r = client_->Send(
        method, target, body,
        {{"Authorization", std::string("Bearer ") + kToken}, {"Content-Type", "application/json"}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : http::Response{};
  }

  void StartJob(const std::string& id, const std::vector<std::string>& commands) {
    json::array list;
    for (const std::string& c : commands) list.emplace_back(c);
    http::Response r = Send("POST", "/api/jobs",
                            json::serialize(json::object{{"job_id", id}, {"commands", list}}));
    ASSERT_EQ(r.status, 201) << r.body;
  }

  std::string Log(const std::string& id) { return Send("GET", "/api/jobs/" + id + "/logs").body; }

  bool WaitForLog(const std::string& id, const std::string& needle) {
    return WaitUntil([&] { return Log(id).find(needle) != std::string::npos; });
  }

  json::value Job(const std::string& id) {
    json::value poll = json::parse(Send("GET", "/api/poll").body);
    for (const auto& job : poll.at("jobs").as_array()) {
      if (job.at("job_id").as_string() == id) return job;
    }
    return nullptr;
  }

  bool WaitForExit(const std::string& id) {
    return WaitUntil([&] {
      json::value job = Job(id);
      return job.is_object() && job.at("state").as_string() != "running";
    });
  }

  TempDir dir_;
  std::unique_ptr<ChildProcess> agent_;
  std::unique_ptr<http::Client> client_;
};

TEST_F(JobUsersTest, AJobRunsUnderAUidOfItsOwnWithACleanEnvironmentInItsOwnDirectory) {
  StartAgent();
  StartJob("whoami", {"echo uid=$(id -u)", "echo gid=$(id -g)", "echo groups=$(id -G)",
                      "echo pwd=$(pwd)", "env", "echo done", "sleep 600"});
  ASSERT_TRUE(WaitForLog("whoami", "\ndone\n")) << Log("whoami");
  std::string log = Log("whoami");
  int uid = std::stoi(Field(log, "uid"));
  EXPECT_GE(uid, 61000) << log;
  EXPECT_LE(uid, 61999) << log;
  EXPECT_EQ(Field(log, "gid"), std::to_string(uid));
  EXPECT_EQ(Field(log, "groups"), std::to_string(uid));  // no supplementary groups
  const fs::path home = JobsDir() / "whoami";
  EXPECT_EQ(Field(log, "HOME"), home.string());
  EXPECT_EQ(Field(log, "pwd"), home.string());
  EXPECT_EQ(Field(log, "PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  EXPECT_EQ(Field(log, "LANG"), "C.UTF-8");
  EXPECT_EQ(Field(log, "USER"), "fleetwatch-" + std::to_string(uid));
  EXPECT_EQ(log.find(kMarker), std::string::npos) << log;
  EXPECT_EQ(log.find("FLEETWATCH_"), std::string::npos) << log;
  EXPECT_EQ(log.find(kToken), std::string::npos) << log;
  EXPECT_EQ(log.find("=/root"), std::string::npos) << log;

  struct stat st = StatOf(home);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, static_cast<uid_t>(uid));
  EXPECT_EQ(st.st_gid, static_cast<gid_t>(uid));
  EXPECT_EQ(StatOf(JobsDir()).st_mode & 07777, 0711u);
  EXPECT_EQ(StatOf(JobsDir()).st_uid, 0u);
  // The uid's lock is held while the job lives.
  EXPECT_TRUE(fs::exists("/run/fleetwatch/uids/" + std::to_string(uid) + ".lock"));

  ASSERT_EQ(Send("POST", "/api/jobs/whoami/stop", R"({"grace_seconds": 0})").status, 200);
  ASSERT_TRUE(WaitForExit("whoami"));
  EXPECT_EQ(Send("DELETE", "/api/jobs/whoami").status, 200);
  EXPECT_FALSE(fs::exists(home));
}

TEST_F(JobUsersTest, ConcurrentJobsCannotReadEachOthersFilesOrSignalEachOther) {
  StartAgent();
  StartJob("victim",
           {"echo victim-secret-content > $HOME/secret", "echo pid=$$ uid=$(id -u)", "sleep 600"});
  ASSERT_TRUE(WaitForLog("victim", "uid=")) << Log("victim");
  std::string victim = Log("victim");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(victim, m, std::regex("pid=(\\d+) uid=(\\d+)"))) << victim;
  const std::string victim_pid = m[1], victim_uid = m[2];
  const std::string victim_file = (JobsDir() / "victim" / "secret").string();
  // Commands run joined with " && ": each probe that is refused must not end the job.
  StartJob("attacker", {"echo uid=$(id -u)", "cat " + victim_file + " && echo READ || true",
                        "ls " + JobsDir().string() + " && echo LISTED || true",
                        "kill -0 " + victim_pid + " && echo SIGNALED || true", "echo done"});
  ASSERT_TRUE(WaitForLog("attacker", "\ndone\n")) << Log("attacker");
  std::string attacker = Log("attacker");
  EXPECT_NE(Field(attacker, "uid"), victim_uid) << attacker;
  EXPECT_EQ(attacker.find("victim-secret-content"), std::string::npos) << attacker;
  EXPECT_NE(attacker.find("Permission denied"), std::string::npos) << attacker;
  EXPECT_EQ(attacker.find("READ"), std::string::npos) << attacker;
  EXPECT_EQ(attacker.find("LISTED"), std::string::npos) << attacker;  // 0711: no listing
  EXPECT_NE(attacker.find("Operation not permitted"), std::string::npos) << attacker;
  EXPECT_EQ(attacker.find("SIGNALED"), std::string::npos) << attacker;
  EXPECT_EQ(::kill(std::stoi(victim_pid), 0), 0);  // still alive
}

TEST_F(JobUsersTest, AcknowledgingRemovesTheDirectoryWithoutFollowingPlantedSymlinks) {
  TempDir outside;
  testing::WriteFile(outside.path() / "keep" / "file", "keep");
  StartAgent();
  StartJob("planter", {"ln -s " + outside.str() + "/keep $HOME/dirlink",
                       "mkdir $HOME/sub && ln -s " + outside.str() + "/keep/file $HOME/sub/link",
                       "echo done"});
  ASSERT_TRUE(WaitForExit("planter"));
  ASSERT_NE(Log("planter").find("done"), std::string::npos) << Log("planter");
  EXPECT_EQ(Send("DELETE", "/api/jobs/planter").status, 200);
  EXPECT_FALSE(fs::exists(fs::symlink_status(JobsDir() / "planter")));
  EXPECT_EQ(testing::ReadFile(outside.path() / "keep" / "file"), "keep");
}

TEST_F(JobUsersTest, JobUserRunsEveryJobAsThatUser) {
  passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user nobody here";
  const uid_t nobody_uid = nobody->pw_uid;
  StartAgent({"--job-user", "nobody"});
  StartJob("nobody", {"echo uid=$(id -u) user=$USER home=$HOME"});
  ASSERT_TRUE(WaitForExit("nobody"));
  EXPECT_NE(Log("nobody").find("uid=" + std::to_string(nobody_uid) +
                               " user=nobody home=" + (JobsDir() / "nobody").string()),
            std::string::npos)
      << Log("nobody");
}

TEST_F(JobUsersTest, AllowRootJobsRunsJobsAsRootAndSaysSo) {
  StartAgent({"--allow-root-jobs"});
  StartJob("rooted", {"echo uid=$(id -u)"});
  ASSERT_TRUE(WaitForExit("rooted"));
  EXPECT_EQ(Log("rooted"), "uid=0\n");
  EXPECT_NE(agent_->Output().find("--allow-root-jobs: jobs run as root"), std::string::npos)
      << agent_->Output();
}

TEST_F(JobUsersTest, BadJobUserFlagsAreRefusedAtStart) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--job-uid-range", "0-100"}, "includes uid 0"},
      {{"--job-uid-range", "abc"}, "is not FIRST-LAST"},
      {{"--job-uid-range", "62000-61000"}, "ends before it starts"},
      {{"--job-user", "root"}, "is root (uid 0)"},
      {{"--job-user", "no-such-user-fleetwatch"}, "no such user"},
      {{"--job-user", "nobody", "--allow-root-jobs"}, "exclude each other"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args = Args(flags);
    args.insert(args.end(), {"--token", kToken});
    ProcessResult r = RunProcess(FLEETWATCH_BINARY, args, Env(), "", 30);
    EXPECT_EQ(r.exit_code, 1) << flags[0] << " " << flags[1];
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(DataDir() / "agent.json"));
  }
  // The same through the environment.
  ProcessResult r = RunProcess(FLEETWATCH_BINARY, Args(),
                               {{"FLEETWATCH_AGENT_TOKEN", kToken},
                                {"FLEETWATCH_JOB_USER", "root"},
                                {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}},
                               "", 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is root (uid 0)"), std::string::npos) << r.err;
}

TEST_F(JobUsersTest, AJobsRootJobUsersCannotReachIsRefusedAtStart) {
  TempDir closed;
  ::chmod(closed.path().c_str(), 0700);
  ProcessResult r = RunProcess(FLEETWATCH_BINARY, Args({}, closed.path() / "jobs"), Env(), "", 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("job users cannot reach the jobs directory"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(closed.str() + " is mode 0700"), std::string::npos) << r.err;
}

TEST_F(JobUsersTest, TheAgentsDataIsPrivate) {
  fs::create_directories(DataDir());
  ::chmod(DataDir().c_str(), 0755);  // given loose: tightened
  StartAgent();
  StartJob("logged", {"echo hi"});
  ASSERT_TRUE(WaitForExit("logged"));
  EXPECT_EQ(StatOf(DataDir()).st_mode & 07777, 0700u);
  EXPECT_EQ(StatOf(DataDir() / "agent.json").st_mode & 07777, 0600u);
  EXPECT_EQ(StatOf(DataDir() / "logs").st_mode & 07777, 0700u);
  EXPECT_EQ(StatOf(DataDir() / "logs" / "logged.log").st_mode & 07777, 0600u);
  EXPECT_EQ(StatOf(DataDir() / "logs" / "logged.log").st_uid, 0u);
  for (const auto& entry : fs::recursive_directory_iterator(DataDir())) {
    struct stat st = StatOf(entry.path());
    EXPECT_EQ(st.st_mode & 077, 0u) << entry.path() << " " << std::oct << st.st_mode;
  }
}

// A runtime of a root agent without cgroups, its jobs root in a 0711 temp dir.
std::unique_ptr<JobRuntime> RootRuntime(const TempDir& dir, JobUserPolicy policy) {
  ::chmod(dir.path().c_str(), 0711);
  ProcessJobRuntimeOptions options;
  options.data_dir = dir.path() / "data";
  options.jobs_dir = dir.path() / "jobs";
  options.use_cgroups = false;
  options.job_users = std::move(policy);
  return NewProcessJobRuntime(options, SystemClock::Get());
}

// Process-level: the runtime itself, without cgroups, so that only the uid can catch a process
// that left the job's process group.
TEST(JobUsersRuntime, AProcessThatLeftTheGroupDiesWithItsJobsUid) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir, locks;
  DynamicUserPolicy policy;
  policy.range = {4000200, 4000209};
  policy.lock_dir = locks.path() / "uids";
  std::unique_ptr<JobRuntime> runtime = RootRuntime(dir, policy);
  JobSpec spec;
  spec.job_id = "escaper";
  spec.commands = {"setsid sleep 600 > /dev/null 2>&1 &", "echo escaped=$!"};
  ASSERT_TRUE(runtime->Start(spec).ok());
  ASSERT_TRUE(WaitUntil([&] { return runtime->Get("escaper")->phase != JobPhase::kRunning; }));
  std::string log = runtime->ReadLog("escaper", 0, 1000)->data;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex("escaped=(\\d+)"))) << log;
  const pid_t escaped = std::stoi(m[1]);
  EXPECT_TRUE(WaitUntil([&] {
    std::optional<std::string> stat = ReadSmallFile("/proc/" + std::to_string(escaped) + "/stat");
    return !stat || stat->find(") Z") != std::string::npos;
  })) << "pid "
      << escaped << " survived its job";
}

TEST(JobUsersRuntime, AJobThatCannotSwitchUsersFailsToStartAndRunsNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir;
  // setgroups refuses gid (gid_t)-1: the switch fails in the child before exec.
  NamedUserPolicy bad{4000300, 4000300, {static_cast<gid_t>(-1)}, "bad"};
  std::unique_ptr<JobRuntime> runtime = RootRuntime(dir, bad);
  JobSpec spec;
  spec.job_id = "unswitched";
  spec.commands = {"echo ran-as-$(id -u)"};
  Result<StartResult> started = runtime->Start(spec);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(started->state.phase, JobPhase::kFailedToStart);
  ASSERT_TRUE(started->state.error.has_value());
  EXPECT_NE(started->state.error->find("cannot switch to uid 4000300 gid 4000300"),
            std::string::npos)
      << *started->state.error;
  EXPECT_EQ(runtime->ReadLog("unswitched", 0, 1000)->data.find("ran-as"), std::string::npos);
}

TEST(JobUsersRuntime, AJobWithNoFreeUidFailsToStartWithTheReason) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir, locks, proc;
  testing::WriteFile(proc.path() / "77" / "status", "Uid:\t4000310\t4000310\t4000310\t4000310\n");
  DynamicUserPolicy policy;
  policy.range = {4000310, 4000310};  // the only uid is some process's
  policy.lock_dir = locks.path() / "uids";
  policy.proc_root = proc.path();
  std::unique_ptr<JobRuntime> runtime = RootRuntime(dir, policy);
  JobSpec spec;
  spec.job_id = "crowded";
  spec.commands = {"echo ran"};
  Result<StartResult> started = runtime->Start(spec);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(started->state.phase, JobPhase::kFailedToStart);
  EXPECT_NE(started->state.error.value_or("").find("no free uid"), std::string::npos);
  EXPECT_EQ(runtime->ReadLog("crowded", 0, 1000)->data.find("ran\n"), std::string::npos);
  EXPECT_TRUE(runtime->Acknowledge("crowded").ok());
}

}  // namespace
}  // namespace fleetwatch::agent
