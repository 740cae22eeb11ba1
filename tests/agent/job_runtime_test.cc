// The process runtime with real processes, and real cgroups where this machine allows them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

#include "agent/cgroup_tree.h"
#include "agent/job_env.h"
#include "agent/job_records.h"
#include "agent/process_job_runtime.h"
#include "agent/sys_files.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::TempDir;
using testing::ReadFile;
using testing::WaitUntil;

bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  // A killed orphan may linger as a zombie when PID 1 does not reap: it runs nothing.
  std::optional<std::string> stat = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  size_t close = stat->rfind(')');
  return close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] == 'Z';
}

class JobRuntimeTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    use_cgroups_ = GetParam();
    if (use_cgroups_ && !testing::CgroupsUsable()) GTEST_SKIP() << "needs root and cgroups";
    options_.data_dir = data_.path();
    options_.cgroup_root = DefaultCgroupRoot();
    options_.cgroup_group = group_;
    options_.use_cgroups = use_cgroups_;
    options_.gpu_vendor = "nvidia";
    runtime_ = NewProcessJobRuntime(options_, SystemClock::Get());
  }

  JobSpec Spec(const std::string& id, std::vector<std::string> commands) {
    JobSpec spec;
    spec.job_id = id;
    spec.run_name = "run-" + id;
    spec.commands = std::move(commands);
    return spec;
  }

  JobState StartOk(const JobSpec& spec) {
    Result<StartResult> started = runtime_->Start(spec);
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    return started.ok() ? started->state : JobState{};
  }

  // Waits until the job is no longer running and returns its state.
  JobState WaitForEnd(const std::string& id) {
    WaitUntil([&] { return runtime_->Get(id)->phase != JobPhase::kRunning; });
    return *runtime_->Get(id);
  }

  std::string Log(const std::string& id) { return runtime_->ReadLog(id, 0, 1 << 20)->data; }

  bool WaitForLog(const std::string& id, const std::string& needle) {
    return WaitUntil([&] { return Log(id).find(needle) != std::string::npos; });
  }

  // The job cgroup's memory (v1) or only (v2) directory.
  fs::path CgroupDir(const std::string& id) const {
    fs::path root = options_.cgroup_root;
    return DetectCgroupMode(root) == CgroupMode::kV1 ? root / "memory" / group_ / id
                                                     : root / group_ / id;
  }

  std::string CgroupProcs(const std::string& id) const {
    return ReadSmallFile(CgroupDir(id) / "cgroup.procs").value_or("<unreadable>");
  }

  TempDir data_;
  std::string group_ = testing::UniqueCgroupGroup();
  bool use_cgroups_ = false;
  ProcessJobRuntimeOptions options_;
  std::unique_ptr<JobRuntime> runtime_;
};

TEST_P(JobRuntimeTest, EchoExitsZeroWithItsOutputLogged) {
  JobState started = StartOk(Spec("echo", {"echo hi", "exit 0"}));
  EXPECT_EQ(started.phase, JobPhase::kRunning);
  EXPECT_GT(started.pid, 0);
  EXPECT_GT(started.started_at, 0);
  JobState ended = WaitForEnd("echo");
  EXPECT_EQ(ended.phase, JobPhase::kExited);
  EXPECT_EQ(ended.exit_code, 0);
  EXPECT_EQ(ended.signal, std::nullopt);
  EXPECT_TRUE(ended.finished_at.has_value());
  EXPECT_FALSE(ended.stop_requested);
  EXPECT_EQ(Log("echo"), "hi\n");
  EXPECT_EQ(ReadFile(data_.path() / "logs" / "echo.log"), "hi\n");
}

TEST_P(JobRuntimeTest, ExitCodeIsReported) {
  StartOk(Spec("three", {"echo out; echo err >&2; exit 3"}));
  JobState ended = WaitForEnd("three");
  EXPECT_EQ(ended.exit_code, 3);
  EXPECT_EQ(ended.signal, std::nullopt);
  EXPECT_EQ(Log("three"), "out\nerr\n");
}

// The commands run joined with " && ": the first that fails ends the job with its exit code.
TEST_P(JobRuntimeTest, TheFirstFailingCommandEndsTheJobWithItsExitCode) {
  struct Case {
    std::string id;
    std::vector<std::string> commands;
    int exit_code;
    std::string log;
  };
  const std::vector<Case> cases = {
      {"first", {"exit 4", "echo never"}, 4, ""},
      {"middle", {"echo a", "sh -c 'exit 3'", "echo never"}, 3, "a\n"},
      {"last", {"echo a", "echo b", "false"}, 1, "a\nb\n"},
      {"grep", {"echo a", "echo x | grep y", "echo never"}, 1, "a\n"},
      {"all", {"echo a", "echo b"}, 0, "a\nb\n"},
  };
  for (const Case& c : cases) StartOk(Spec(c.id, c.commands));
  for (const Case& c : cases) {
    JobState ended = WaitForEnd(c.id);
    EXPECT_EQ(ended.exit_code, c.exit_code) << c.id;
    EXPECT_EQ(Log(c.id), c.log) << c.id;
  }
}

TEST_P(JobRuntimeTest, ACommandKeepsItsOwnSeparatorsAndBackgroundCommandsRunOn) {
  StartOk(Spec("own", {"false; echo after-semicolon", "echo one\necho two", "sleep 0 &", "wait",
                       "echo end"}));
  JobState ended = WaitForEnd("own");
  EXPECT_EQ(ended.exit_code, 0);
  EXPECT_EQ(Log("own"), "after-semicolon\none\ntwo\nend\n");
}

TEST_P(JobRuntimeTest, StopSendsTermAndLeavesNoProcess) {
  JobState started = StartOk(Spec("sleeper", {"sleep 600"}));
  if (use_cgroups_) {
    ASSERT_TRUE(WaitUntil([&] {
      return CgroupProcs("sleeper").find(std::to_string(started.pid)) != std::string::npos;
    })) << CgroupProcs("sleeper");
  }
  Result<JobState> stopping = runtime_->Stop("sleeper", std::chrono::seconds(10));
  ASSERT_TRUE(stopping.ok());
  EXPECT_TRUE(stopping->stop_requested);
  JobState ended = WaitForEnd("sleeper");
  EXPECT_EQ(ended.phase, JobPhase::kExited);
  EXPECT_EQ(ended.signal, SIGTERM);
  EXPECT_EQ(ended.exit_code, std::nullopt);
  EXPECT_TRUE(ended.stop_requested);
  EXPECT_NE(::kill(started.pid, 0), 0);
  if (use_cgroups_) {
    EXPECT_TRUE(WaitUntil([&] { return CgroupProcs("sleeper").empty(); }));
  }
  // Stop is idempotent, also after the end.
  EXPECT_TRUE(runtime_->Stop("sleeper", std::chrono::seconds(10)).ok());
  EXPECT_EQ(runtime_->Stop("nope", std::chrono::seconds(1)).status().code(), StatusCode::kNotFound);
}

TEST_P(JobRuntimeTest, StopLeavesNoBackgroundChild) {
  fs::path pid_file = data_.path() / "bg.pid";
  StartOk(Spec("bg", {"sleep 600 &", "echo $! > " + pid_file.string(), "echo ready", "sleep 600"}));
  ASSERT_TRUE(WaitForLog("bg", "ready"));
  std::optional<int64_t> bg_pid = ParseInteger(ReadFile(pid_file));
  ASSERT_TRUE(bg_pid.has_value());
  ASSERT_TRUE(runtime_->Stop("bg", std::chrono::seconds(10)).ok());
  WaitForEnd("bg");
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(static_cast<pid_t>(*bg_pid)); }));
  if (use_cgroups_) {
    EXPECT_TRUE(WaitUntil([&] { return CgroupProcs("bg").empty(); }));
  }
}

// A child that leaves the job's process group is still in its cgroup and dies with the job.
TEST_P(JobRuntimeTest, EscapedProcessGroupStillDiesWithTheCgroup) {
  if (!use_cgroups_) GTEST_SKIP() << "only a cgroup can catch a process that left the group";
  fs::path pid_file = data_.path() / "escaped.pid";
  StartOk(Spec("escape", {"setsid sleep 600 &", "echo $! > " + pid_file.string(), "echo ready",
                          "sleep 600"}));
  ASSERT_TRUE(WaitForLog("escape", "ready"));
  ASSERT_TRUE(runtime_->Stop("escape", std::chrono::seconds(5)).ok());
  WaitForEnd("escape");
  EXPECT_TRUE(WaitUntil([&] { return CgroupProcs("escape").empty(); })) << CgroupProcs("escape");
}

TEST_P(JobRuntimeTest, GraceEndsWithSigkillWhenTermIsIgnored) {
  StartOk(Spec("stubborn", {"trap '' TERM", "echo ready", "sleep 600"}));
  ASSERT_TRUE(WaitForLog("stubborn", "ready"));
  ASSERT_TRUE(runtime_->Stop("stubborn", std::chrono::seconds(1)).ok());
  JobState ended = WaitForEnd("stubborn");
  EXPECT_EQ(ended.signal, SIGKILL);
  if (use_cgroups_) {
    EXPECT_TRUE(WaitUntil([&] { return CgroupProcs("stubborn").empty(); }));
  }
}

TEST_P(JobRuntimeTest, StartingTheSameJobTwiceStartsItOnce) {
  fs::path count = data_.path() / "count.txt";
  JobSpec spec = Spec("once", {"echo started >> " + count.string()});
  Result<StartResult> first = runtime_->Start(spec);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->created);
  WaitForEnd("once");
  Result<StartResult> second = runtime_->Start(spec);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->state.phase, JobPhase::kExited);
  EXPECT_EQ(second->state.pid, first->state.pid);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a wrong second run would show
  EXPECT_EQ(ReadFile(count), "started\n");
}

TEST_P(JobRuntimeTest, MissingWorkingDirFailsToStartWithAnError) {
  JobSpec spec = Spec("nodir", {"echo never"});
  spec.working_dir = "/nonexistent/dir";
  Result<StartResult> started = runtime_->Start(spec);
  ASSERT_TRUE(started.ok());
  EXPECT_TRUE(started->created);
  EXPECT_EQ(started->state.phase, JobPhase::kFailedToStart);
  ASSERT_TRUE(started->state.error.has_value());
  EXPECT_NE(started->state.error->find("working_dir /nonexistent/dir"), std::string::npos)
      << *started->state.error;
  EXPECT_NE(started->state.error->find("No such file"), std::string::npos);
  EXPECT_TRUE(started->state.finished_at.has_value());
  EXPECT_EQ(Log("nodir").find("never"), std::string::npos);
  EXPECT_EQ(runtime_->List().size(), 1u);
  EXPECT_TRUE(runtime_->Acknowledge("nodir").ok());
}

TEST_P(JobRuntimeTest, RunsInWorkingDirWithTheDocumentedEnvironment) {
  JobSpec spec = Spec("env", {"pwd", "env"});
  spec.working_dir = data_.str();
  spec.gpu_indices = {1};
  spec.env = {{"MY_VAR", "hello world"}};
  StartOk(spec);
  WaitForEnd("env");
  std::string log = Log("env");
  EXPECT_EQ(log.substr(0, log.find('\n')), data_.str());
  EXPECT_NE(log.find("\nMY_VAR=hello world\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nCUDA_VISIBLE_DEVICES=1\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nDSTACK_RUN_NAME=run-env\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nPATH="), std::string::npos) << log;
}

TEST_P(JobRuntimeTest, AgentDescriptorsDoNotLeakIntoJobs) {
  int fd = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 0);
  StartOk(
      Spec("fds", {"test -e /proc/$$/fd/" + std::to_string(fd) + " && echo leaked || echo clean"}));
  WaitForEnd("fds");
  ::close(fd);
  EXPECT_EQ(Log("fds"), "clean\n");
}

TEST_P(JobRuntimeTest, LogsFromOffsetWithLimit) {
  StartOk(Spec("log", {"printf abcdefghij"}));
  WaitForEnd("log");
  Result<LogChunk> chunk = runtime_->ReadLog("log", 2, 3);
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(chunk->data, "cde");
  EXPECT_EQ(chunk->total_size, 10);
  EXPECT_EQ(runtime_->ReadLog("log", 8, 100)->data, "ij");
  EXPECT_EQ(runtime_->ReadLog("log", 50, 100)->data, "");
  EXPECT_EQ(runtime_->ReadLog("log", 0, 0)->data, "");
  EXPECT_EQ(runtime_->ReadLog("nope", 0, 1).status().code(), StatusCode::kNotFound);
}

TEST_P(JobRuntimeTest, AcknowledgeIsRefusedWhileRunningAndCleansUpAfter) {
  StartOk(Spec("ack", {"echo ready", "sleep 600"}));
  ASSERT_TRUE(WaitForLog("ack", "ready"));
  EXPECT_EQ(runtime_->Acknowledge("ack").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(runtime_->Stop("ack", std::chrono::seconds(5)).ok());
  WaitForEnd("ack");
  EXPECT_TRUE(runtime_->Acknowledge("ack").ok());
  EXPECT_EQ(runtime_->Get("ack").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(data_.path() / "jobs" / "ack"));
  EXPECT_FALSE(fs::exists(data_.path() / "logs" / "ack.log"));
  if (use_cgroups_) {
    EXPECT_FALSE(fs::exists(CgroupDir("ack")));
  }
  EXPECT_EQ(runtime_->Acknowledge("ack").code(), StatusCode::kNotFound);
}

TEST_P(JobRuntimeTest, UsageOfARunningJob) {
  StartOk(Spec("usage", {"echo ready", "sleep 600"}));
  ASSERT_TRUE(WaitForLog("usage", "ready"));
  Result<JobUsage> usage = runtime_->ReadUsage("usage");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_GT(usage->memory_usage_bytes, 0);
  EXPECT_GE(usage->memory_working_set_bytes, 0);
  EXPECT_GE(usage->cpu_usage_micro, 0);
  EXPECT_EQ(runtime_->ReadUsage("nope").status().code(), StatusCode::kNotFound);
}

// The snapshot of `job_id` in a ListWithUsage() result; a default one when absent.
JobSnapshot SnapshotOf(const std::vector<JobSnapshot>& snapshots, const std::string& job_id) {
  for (const JobSnapshot& snapshot : snapshots) {
    if (snapshot.state.job_id == job_id) return snapshot;
  }
  ADD_FAILURE() << "no snapshot of " << job_id;
  return JobSnapshot{};
}

// A real measurement: one core spinning for about a second shows about a second of CPU time.
// The band is wide on purpose (the machine is shared); it checks the units and the source, not
// the scheduler.
TEST_P(JobRuntimeTest, SnapshotsMeasureTheCpuOfASpinningJob) {
  JobSpec spin = Spec("spin", {"echo ready", "while :; do :; done"});
  spin.gpu_indices = {1, 0};
  StartOk(spin);
  StartOk(Spec("ended", {"true"}));
  ASSERT_TRUE(WaitForLog("spin", "ready"));
  ASSERT_EQ(WaitForEnd("ended").phase, JobPhase::kExited);

  std::vector<JobSnapshot> before = runtime_->ListWithUsage();
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[0].state.job_id, "ended");  // ordered by job id, finished jobs included
  EXPECT_FALSE(before[0].usage.has_value());
  JobSnapshot first = SnapshotOf(before, "spin");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  JobSnapshot second = SnapshotOf(runtime_->ListWithUsage(), "spin");
  ASSERT_TRUE(first.usage && second.usage);
  EXPECT_EQ(second.gpu_indices, (std::vector<int>{1, 0}));
  EXPECT_EQ(second.state.phase, JobPhase::kRunning);

  double seconds = static_cast<double>(second.usage_read_at - first.usage_read_at) / 1e6;
  ASSERT_GT(seconds, 1.0);
  double cpu_per_second =
      static_cast<double>(second.usage->cpu_usage_micro - first.usage->cpu_usage_micro) / seconds;
  RecordProperty("cpu_micro_per_second", std::to_string(cpu_per_second));
  // A spinner gets what a busy shared machine leaves it: the bounds only say that its own CPU
  // time is measured (not zero, not more than one core).
  EXPECT_GT(cpu_per_second, 0.05e6);
  EXPECT_LT(cpu_per_second, 1.5e6);
  ASSERT_TRUE(runtime_->Stop("spin", std::chrono::seconds(0)).ok());
  EXPECT_EQ(WaitForEnd("spin").phase, JobPhase::kExited);
  EXPECT_FALSE(SnapshotOf(runtime_->ListWithUsage(), "spin").usage.has_value());
}

// A real measurement: a process that touches 256 MiB shows at least that as its working set.
TEST_P(JobRuntimeTest, SnapshotsMeasureTheMemoryOfAJob) {
  if (std::system("python3 -c pass >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs python3";
  StartOk(Spec("mem", {"exec python3 -c \"import time; b = bytearray(256 << 20); "
                       "b[::4096] = b'x' * (len(b) // 4096); print('ready', flush=True); "
                       "time.sleep(600)\""}));
  ASSERT_TRUE(WaitForLog("mem", "ready")) << Log("mem");
  JobSnapshot snapshot = SnapshotOf(runtime_->ListWithUsage(), "mem");
  ASSERT_TRUE(snapshot.usage.has_value());
  RecordProperty("memory_working_set_bytes",
                 std::to_string(snapshot.usage->memory_working_set_bytes));
  EXPECT_GE(snapshot.usage->memory_working_set_bytes, int64_t{256} << 20);
  EXPECT_GE(snapshot.usage->memory_usage_bytes, snapshot.usage->memory_working_set_bytes);
  EXPECT_LT(snapshot.usage->memory_usage_bytes, int64_t{2} << 30);
}

TEST_P(JobRuntimeTest, MemoryLimitIsWrittenToTheCgroup) {
  if (!use_cgroups_) GTEST_SKIP() << "needs cgroups";
  JobSpec spec = Spec("limited", {"cat /proc/self/cgroup", "sleep 600"});
  spec.memory_bytes = 64 << 20;
  StartOk(spec);
  ASSERT_TRUE(WaitForLog("limited", group_ + "/limited"));
  fs::path dir = CgroupDir("limited");
  std::string file = DetectCgroupMode(options_.cgroup_root) == CgroupMode::kV1
                         ? "memory.limit_in_bytes"
                         : "memory.max";
  EXPECT_EQ(ParseInteger(ReadSmallFile(dir / file).value_or("")), 64 << 20);
}

TEST_P(JobRuntimeTest, DestructionKillsRunningJobs) {
  JobState started = StartOk(Spec("left", {"sleep 600"}));
  runtime_.reset();
  EXPECT_NE(::kill(started.pid, 0), 0);
  if (use_cgroups_) {
    EXPECT_FALSE(fs::exists(CgroupDir("left")));
  }
}

TEST_P(JobRuntimeTest, StopAllEndsEveryRunningJob) {
  StartOk(Spec("a", {"sleep 600"}));
  StartOk(Spec("b", {"trap '' TERM", "echo ready", "sleep 600"}));
  ASSERT_TRUE(WaitForLog("b", "ready"));
  runtime_->StopAll(std::chrono::seconds(1));
  EXPECT_EQ(runtime_->Get("a")->signal, SIGTERM);
  EXPECT_EQ(runtime_->Get("b")->signal, SIGKILL);
}

TEST_P(JobRuntimeTest, InvalidJobIdIsRefused) {
  EXPECT_EQ(runtime_->Start(Spec("../etc", {"true"})).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_P(JobRuntimeTest, AJobIsRecordedBeforeItRunsAndForgottenWhenAcknowledged) {
  StartOk(Spec("rec", {"true"}));
  const fs::path record = data_.path() / "accepted" / "rec.json";
  struct stat st = {};
  ASSERT_EQ(::stat(record.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(record.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  WaitForEnd("rec");
  ASSERT_TRUE(runtime_->Acknowledge("rec").ok());
  EXPECT_FALSE(fs::exists(record));
}

// A restarted agent (same data dir) reports the jobs its predecessor accepted as lost and never
// runs them again, however often the server asks; acknowledging forgets them for good.
TEST_P(JobRuntimeTest, AJobOfAnEarlierRuntimeIsLostAndNeverStartedAgain) {
  const fs::path marker = data_.path() / "marker";
  JobSpec spec = Spec("once", {"echo ran >> " + marker.string(), "echo ready", "sleep 600"});
  StartOk(spec);
  ASSERT_TRUE(WaitForLog("once", "ready"));
  runtime_.reset();  // kills the job; its record stays
  runtime_ = NewProcessJobRuntime(options_, SystemClock::Get());

  Result<JobState> lost = runtime_->Get("once");
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  EXPECT_EQ(lost->phase, JobPhase::kLost);
  EXPECT_EQ(JobPhaseName(lost->phase), "lost");
  ASSERT_TRUE(lost->error.has_value());
  EXPECT_NE(lost->error->find("restarted"), std::string::npos);
  EXPECT_TRUE(lost->finished_at.has_value());
  EXPECT_EQ(Log("once"), "ready\n");  // the earlier run's log, for the server's copy

  Result<StartResult> again = runtime_->Start(spec);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->state.phase, JobPhase::kLost);
  EXPECT_EQ(testing::ReadFile(marker), "ran\n");

  ASSERT_TRUE(runtime_->Acknowledge("once").ok());
  EXPECT_FALSE(fs::exists(data_.path() / "accepted" / "once.json"));
  runtime_ = NewProcessJobRuntime(options_, SystemClock::Get());
  EXPECT_TRUE(runtime_->List().empty());
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutCgroups, JobRuntimeTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Cgroups" : "NoCgroups";
                         });

// A restarted agent kills what its predecessor (same data dir) left in cgroups, and nothing of
// another agent's.
TEST(JobRuntimeCgroups, StartupRemovesOnlyItsOwnLeftovers) {
  if (!testing::CgroupsUsable()) GTEST_SKIP() << "needs root and cgroups";
  TempDir data;
  std::string group = testing::UniqueCgroupGroup();
  CgroupTree tree(DefaultCgroupRoot(), group);
  std::map<std::string, pid_t> pids;
  for (const std::string id : {"stale", "foreign"}) {
    Result<JobCgroup> cgroup = tree.Create(id, {});
    ASSERT_TRUE(cgroup.ok()) << cgroup.status().ToString();
    pid_t child = fork();
    if (child == 0) {
      execl("/bin/sleep", "sleep", "600", nullptr);
      _exit(127);
    }
    pids[id] = child;
    for (const auto& procs : cgroup->ProcsFiles()) {
      ASSERT_TRUE(WriteControlFile(procs, std::to_string(child)).ok());
    }
  }
  testing::WriteFile(data.path() / "logs" / "stale.log", "old\n");
  fs::create_directories(data.path() / "jobs" / "stale" / "work");

  ProcessJobRuntimeOptions options;
  options.data_dir = data.path();
  options.cgroup_root = DefaultCgroupRoot();
  options.cgroup_group = group;
  auto runtime = NewProcessJobRuntime(options, SystemClock::Get());
  int status = 0;
  ASSERT_EQ(waitpid(pids["stale"], &status, 0), pids["stale"]);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(waitpid(pids["foreign"], &status, WNOHANG), 0);  // still running
  EXPECT_FALSE(fs::exists(data.path() / "jobs" / "stale"));
  EXPECT_FALSE(fs::exists(data.path() / "logs" / "stale.log"));

  EXPECT_EQ(tree.RemoveLeftovers(), 1);  // the foreign one, killed now
  EXPECT_EQ(waitpid(pids["foreign"], &status, 0), pids["foreign"]);
}

// An agent that was SIGKILLed leaves its job running in its cgroup: the next agent with the same
// data dir kills it and reports it lost.
TEST(JobRuntimeCgroups, AJobAKilledAgentLeftRunningIsKilledAndReportedLost) {
  if (!testing::CgroupsUsable()) GTEST_SKIP() << "needs root and cgroups";
  TempDir data;
  std::string group = testing::UniqueCgroupGroup();
  CgroupTree tree(DefaultCgroupRoot(), group);
  Result<JobCgroup> cgroup = tree.Create("orphan", {});
  ASSERT_TRUE(cgroup.ok()) << cgroup.status().ToString();
  pid_t child = fork();
  if (child == 0) {
    execl("/bin/sleep", "sleep", "600", nullptr);
    _exit(127);
  }
  for (const auto& procs : cgroup->ProcsFiles()) {
    ASSERT_TRUE(WriteControlFile(procs, std::to_string(child)).ok());
  }
  ASSERT_TRUE(JobRecordStore(data.path() / "accepted").Add({"orphan", 7, std::nullopt}).ok());

  ProcessJobRuntimeOptions options;
  options.data_dir = data.path();
  options.cgroup_root = DefaultCgroupRoot();
  options.cgroup_group = group;
  auto runtime = NewProcessJobRuntime(options, SystemClock::Get());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  Result<JobState> lost = runtime->Get("orphan");
  ASSERT_TRUE(lost.ok());
  EXPECT_EQ(lost->phase, JobPhase::kLost);
  EXPECT_EQ(lost->started_at, 7);
}

// The v2 code path for real, on the unified hierarchy of a hybrid host (no controllers there:
// limits and usage are unavailable, joining and killing are not).
TEST(JobRuntimeV2, JobsJoinAndDieWithTheirUnifiedCgroup) {
  const fs::path unified = "/sys/fs/cgroup/unified";
  if (DetectCgroupMode(unified) != CgroupMode::kV2 || !testing::CgroupsUsable(unified)) {
    GTEST_SKIP() << "needs root and a writable cgroup v2 hierarchy at " << unified;
  }
  TempDir data;
  ProcessJobRuntimeOptions options;
  options.data_dir = data.path();
  options.cgroup_root = unified;
  options.cgroup_group = testing::UniqueCgroupGroup();
  auto runtime = NewProcessJobRuntime(options, SystemClock::Get());
  JobSpec spec;
  spec.job_id = "v2";
  spec.commands = {"setsid sleep 600 &", "echo ready", "sleep 600"};
  ASSERT_TRUE(runtime->Start(spec).ok());
  fs::path procs = unified / options.cgroup_group / "v2" / "cgroup.procs";
  ASSERT_TRUE(WaitUntil([&] {
    std::string pids = ReadFile(procs);
    return runtime->ReadLog("v2", 0, 100)->data == "ready\n" &&
           std::count(pids.begin(), pids.end(), '\n') >= 2;
  }));
  ASSERT_TRUE(runtime->Stop("v2", std::chrono::seconds(5)).ok());
  EXPECT_TRUE(WaitUntil([&] { return runtime->Get("v2")->phase == JobPhase::kExited; }));
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(procs).empty(); })) << ReadFile(procs);
  EXPECT_TRUE(runtime->Acknowledge("v2").ok());
  EXPECT_FALSE(fs::exists(procs.parent_path()));
}

}  // namespace
}  // namespace fleetwatch::agent
