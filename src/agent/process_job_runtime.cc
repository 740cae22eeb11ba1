#include "agent/process_job_runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <thread>

#include "agent/cgroup_tree.h"
#include "agent/file_modes.h"
#include "agent/job_dirs.h"
#include "agent/job_env.h"
#include "agent/job_records.h"
#include "agent/process_launch.h"
#include "agent/shell_commands.h"
#include "util/mutex.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using SteadyTime = std::chrono::steady_clock::time_point;

struct Job {
  JobState state;
  std::vector<int> gpu_indices;
  fs::path log;               // the agent's: <data_dir>/logs/<job_id>.log
  bool has_dir = false;       // <jobs_dir>/<job_id> exists (the job's own)
  JobIdentityLease identity;  // held until the job is forgotten
  std::optional<JobCgroup> cgroup;
  std::optional<SteadyTime> kill_at;  // SIGKILL when still running then
  bool killed = false;
};

void AppendLine(const fs::path& file, const std::string& line) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string text = line + "\n";
  ssize_t ignored = ::write(fd, text.data(), text.size());
  (void)ignored;
  ::close(fd);
}

class ProcessJobRuntime final : public JobRuntime {
 public:
  ProcessJobRuntime(ProcessJobRuntimeOptions options, const Clock& clock)
      : options_(WithDefaults(std::move(options))),
        clock_(clock),
        tree_(options_.cgroup_root, options_.cgroup_group),
        users_(options_.job_users),
        records_(options_.data_dir / "accepted") {
    std::vector<std::string> problems;
    const std::vector<JobRecord> accepted = records_.Load(&problems);
    for (const std::string& problem : problems) spdlog::warn("job records: {}", problem);
    if (options_.use_cgroups && tree_.mode() != CgroupMode::kNone) {
      if (int removed = tree_.RemoveLeftovers(OwnedJob()); removed > 0) {
        spdlog::info("removed {} cgroup(s) left by an earlier agent", removed);
      }
    }
    KillLeftoverUids(accepted);
    RemoveLeftoverJobFiles(accepted);
    for (const JobRecord& record : accepted) jobs_.emplace(record.job_id, LostJob(record));
    if (!accepted.empty()) {
      spdlog::info("{} job(s) of an earlier agent are lost: reported, never started again",
                   accepted.size());
    }
    reaper_ = std::thread([this] { ReapLoop(); });
  }

  ~ProcessJobRuntime() override {
    {
      MutexLock lock(mu_);
      shutting_down_ = true;
    }
    cv_.NotifyAll();
    reaper_.join();
    MutexLock lock(mu_);
    for (auto& [id, job] : jobs_) {
      if (job.state.phase == JobPhase::kRunning) {
        KillRemains(job);
        while (::waitpid(job.state.pid, nullptr, 0) < 0 && errno == EINTR) {
        }
      }
      ForgetFiles(id, job, /*remove_log=*/false);
    }
    if (options_.use_cgroups && tree_.mode() != CgroupMode::kNone) {
      tree_.RemoveLeftovers(OwnedJob());  // usually nothing is left; this drops the group
    }
  }

  Result<StartResult> Start(const JobSpec& spec) override {
    if (!IsValidJobId(spec.job_id)) return InvalidArgument("invalid job_id");
    MutexLock lock(mu_);
    if (auto it = jobs_.find(spec.job_id); it != jobs_.end()) {
      return StartResult{it->second.state, false};
    }
    Job job;
    job.state.job_id = spec.job_id;
    job.gpu_indices = spec.gpu_indices;
    job.state.started_at = clock_.Now();
    FW_RETURN_IF_ERROR(CreateDirectories(LogsDir(), 0700));
    job.log = LogsDir() / (spec.job_id + ".log");
    // A job id seen by an earlier agent starts a fresh log.
    if (int fd =
            ::open(job.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        fd >= 0) {
      ::close(fd);
    } else {
      return Unavailable("cannot create " + job.log.string() + ": " + std::strerror(errno));
    }

    Result<JobIdentityLease> identity = users_.Acquire();
    // Remembered before anything can run, so that no later agent starts it again.
    JobRecord record{spec.job_id, job.state.started_at, std::nullopt};
    if (identity.ok() && identity->identity().exclusive) record.uid = identity->identity().uid;
    if (Status s = records_.Add(record); !s.ok()) {
      ::unlink(job.log.c_str());
      return s;
    }
    if (!identity.ok()) return Keep(FailToStart(std::move(job), identity.status().message()));
    job.identity = std::move(identity).value();
    const JobIdentity& user = job.identity.identity();
    Status root_ready = CreateDirectories(options_.jobs_dir, ::geteuid() == 0 ? 0711 : 0700);
    Result<fs::path> dir =
        root_ready.ok() ? CreateJobDirectory(options_.jobs_dir, spec.job_id, user.uid, user.gid)
                        : Result<fs::path>(root_ready);
    if (!dir.ok()) {
      ::unlink(job.log.c_str());
      ForgetRecord(spec.job_id);
      return dir.status();
    }
    job.has_dir = true;

    if (options_.use_cgroups && tree_.mode() != CgroupMode::kNone) {
      Result<JobCgroup> cgroup = tree_.Create(spec.job_id, {spec.memory_bytes, spec.cpus});
      if (cgroup.ok()) {
        job.cgroup = std::move(cgroup).value();
      } else if (!warned_no_cgroup_.exchange(true)) {
        spdlog::warn("jobs run without cgroups: {}", cgroup.status().message());
      }
    }

    LaunchSpec launch;
    launch.script = JoinShellCommands(spec.commands);
    launch.env = BuildJobEnvironment(spec, {dir->string(), user.user_name, options_.gpu_vendor});
    launch.working_dir = (*dir / spec.working_dir.value_or(".")).lexically_normal().string();
    launch.log_file = job.log;
    if (job.cgroup) launch.cgroup_procs_files = job.cgroup->ProcsFiles();
    if (user.switch_user) launch.credentials = LaunchCredentials{user.uid, user.gid, user.groups};

    Result<pid_t> pid = LaunchJobProcess(launch);
    if (!pid.ok()) return Keep(FailToStart(std::move(job), pid.status().message()));
    job.state.phase = JobPhase::kRunning;
    job.state.pid = *pid;
    spdlog::info("job {} started, pid {}, uid {}", spec.job_id, *pid, user.uid);
    return Keep(std::move(job));
  }

  Result<JobState> Stop(const std::string& job_id, std::chrono::seconds grace) override {
    MutexLock lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return NotFound("no job " + job_id);
    RequestStop(it->second, grace);
    return it->second.state;
  }

  std::vector<JobState> List() const override {
    MutexLock lock(mu_);
    std::vector<JobState> states;
    for (const auto& [id, job] : jobs_) states.push_back(job.state);
    return states;
  }

  Result<JobState> Get(const std::string& job_id) const override {
    MutexLock lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return NotFound("no job " + job_id);
    return it->second.state;
  }

  Result<LogChunk> ReadLog(const std::string& job_id, int64_t offset,
                           int64_t limit) const override {
    fs::path log;
    {
      MutexLock lock(mu_);
      auto it = jobs_.find(job_id);
      if (it == jobs_.end()) return NotFound("no job " + job_id);
      log = it->second.log;
    }
    LogChunk chunk;
    int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return chunk;  // removed under us: an empty log
    struct stat st = {};
    if (::fstat(fd, &st) == 0) chunk.total_size = st.st_size;
    offset = std::max<int64_t>(0, offset);
    int64_t want = std::clamp<int64_t>(chunk.total_size - offset, 0, std::max<int64_t>(0, limit));
    chunk.data.resize(static_cast<size_t>(want));
    size_t got = 0;
    while (got < chunk.data.size()) {
      ssize_t n = ::pread(fd, chunk.data.data() + got, chunk.data.size() - got,
                          static_cast<off_t>(offset + static_cast<int64_t>(got)));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    chunk.data.resize(got);
    ::close(fd);
    return chunk;
  }

  Status Acknowledge(const std::string& job_id) override {
    Job job;
    {
      MutexLock lock(mu_);
      auto it = jobs_.find(job_id);
      if (it == jobs_.end()) return NotFound("no job " + job_id);
      if (it->second.state.phase == JobPhase::kRunning) {
        return FailedPrecondition("job " + job_id + " is still running");
      }
      job = std::move(it->second);
      jobs_.erase(it);
    }
    ForgetFiles(job_id, job, /*remove_log=*/true);
    ForgetRecord(job_id);
    return Status::Ok();
  }

  Result<JobUsage> ReadUsage(const std::string& job_id) const override {
    std::optional<JobCgroup> cgroup;
    pid_t pgid = 0;
    {
      MutexLock lock(mu_);
      auto it = jobs_.find(job_id);
      if (it == jobs_.end()) return NotFound("no job " + job_id);
      cgroup = it->second.cgroup;
      if (it->second.state.phase == JobPhase::kRunning) pgid = it->second.state.pid;
    }
    if (cgroup) return cgroup->ReadUsage();
    if (pgid == 0) return Unavailable("job " + job_id + " is not running");
    return ReadProcessGroupUsage("/proc", pgid);
  }

  std::vector<JobSnapshot> ListWithUsage() const override {
    std::vector<JobSnapshot> snapshots;
    std::vector<std::optional<JobCgroup>> cgroups;  // parallel to snapshots
    {
      MutexLock lock(mu_);
      snapshots.reserve(jobs_.size());
      cgroups.reserve(jobs_.size());
      for (const auto& [id, job] : jobs_) {
        snapshots.push_back(JobSnapshot{job.state, job.gpu_indices, std::nullopt, 0});
        cgroups.push_back(job.cgroup);
      }
    }
    std::vector<pid_t> groups;  // running jobs without a cgroup: read from /proc in one pass
    for (size_t i = 0; i < snapshots.size(); ++i) {
      const JobState& state = snapshots[i].state;
      if (state.phase != JobPhase::kRunning) continue;
      if (cgroups[i]) {
        if (Result<JobUsage> usage = cgroups[i]->ReadUsage(); usage.ok()) {
          snapshots[i].usage = *usage;
        }
        snapshots[i].usage_read_at = clock_.Now();
      } else if (state.pid > 0) {
        groups.push_back(state.pid);
      }
    }
    if (!groups.empty()) {
      std::map<pid_t, JobUsage> usages = ReadProcessGroupsUsage("/proc", groups);
      TimeMicros read_at = clock_.Now();
      for (size_t i = 0; i < snapshots.size(); ++i) {
        JobSnapshot& snapshot = snapshots[i];
        if (snapshot.state.phase != JobPhase::kRunning || cgroups[i]) continue;
        if (auto it = usages.find(snapshot.state.pid); it != usages.end()) {
          snapshot.usage = it->second;
        }
        snapshot.usage_read_at = read_at;
      }
    }
    return snapshots;
  }

  void StopAll(std::chrono::seconds grace) override {
    MutexLock lock(mu_);
    for (auto& [id, job] : jobs_) RequestStop(job, grace);
    // The reaper SIGKILLs after the grace; the extra time covers reaping on a busy machine.
    const SteadyTime deadline = std::chrono::steady_clock::now() + grace + std::chrono::seconds(10);
    while (AnyRunning() && cv_.WaitUntil(mu_, deadline)) {
    }
  }

 private:
  static ProcessJobRuntimeOptions WithDefaults(ProcessJobRuntimeOptions options) {
    if (options.jobs_dir.empty()) options.jobs_dir = options.data_dir / "jobs";
    return options;
  }

  fs::path LogsDir() const { return options_.data_dir / "logs"; }

  // Whether a job cgroup found in the group is one of this data dir's jobs (perhaps from an
  // earlier agent): another agent on the host may share the group.
  std::function<bool(const std::string&)> OwnedJob() const {
    return [logs = LogsDir(), records = records_.dir()](const std::string& job_id) {
      std::error_code ec;
      return fs::is_regular_file(logs / (job_id + ".log"), ec) ||
             fs::is_regular_file(records / (job_id + ".json"), ec);
    };
  }

  // Kills what still runs under the uids an earlier agent gave its jobs alone (that agent was
  // killed, its jobs' processes may live on), unless the uid has been given out again since.
  void KillLeftoverUids(const std::vector<JobRecord>& accepted) {
    for (const JobRecord& record : accepted) {
      if (!record.uid) continue;
      Result<std::optional<JobIdentityLease>> lease = users_.Reclaim(*record.uid);
      if (!lease.ok()) {
        spdlog::warn("job {}: {}", record.job_id, lease.status().message());
      } else if (*lease) {
        KillProcessesOfUid(*record.uid);  // the lease is dropped right after: the uid is free
      }
    }
  }

  // The job directories an earlier runtime with this data dir left (it was killed or stopped),
  // and the logs of its jobs that were never accepted. The logs of accepted jobs stay: they are
  // reported lost, and the server copies their logs when it acknowledges them.
  void RemoveLeftoverJobFiles(const std::vector<JobRecord>& accepted) const {
    std::set<std::string> job_ids;
    for (const JobRecord& record : accepted) job_ids.insert(record.job_id);
    std::error_code ec;
    int removed = 0;
    for (fs::directory_iterator it(LogsDir(), ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& log = it->path();
      std::string job_id = log.stem().string();
      if (log.extension() != ".log" || !IsValidJobId(job_id)) continue;
      if (job_ids.insert(job_id).second) {
        std::error_code ignored;
        fs::remove(log, ignored);
      }
    }
    for (const std::string& job_id : job_ids) {
      if (Status s = RemoveJobDirectory(options_.jobs_dir, job_id); !s.ok()) {
        spdlog::warn("job {}: {}", job_id, s.message());
      }
      ++removed;
    }
    if (removed > 0) spdlog::info("removed the files of {} job(s) of an earlier agent", removed);
  }

  // The job of `record`, which an earlier agent accepted and which does not run now.
  Job LostJob(const JobRecord& record) const {
    Job job;
    job.state.job_id = record.job_id;
    job.state.phase = JobPhase::kLost;
    job.state.started_at = record.accepted_at;
    job.state.finished_at = clock_.Now();
    job.state.error =
        "the agent restarted: the job's process is gone (killed if it still ran); it is not "
        "started again";
    job.log = LogsDir() / (record.job_id + ".log");
    return job;
  }

  void ForgetRecord(const std::string& job_id) const {
    if (Status s = records_.Remove(job_id); !s.ok()) {
      spdlog::warn("job {}: {}", job_id, s.message());
    }
  }

  bool AnyRunning() const FW_REQUIRES(mu_) {
    return std::any_of(jobs_.begin(), jobs_.end(), [](const auto& entry) {
      return entry.second.state.phase == JobPhase::kRunning;
    });
  }

  // Holds `job` and returns what Start answers for it.
  Result<StartResult> Keep(Job job) FW_REQUIRES(mu_) {
    JobState state = job.state;
    jobs_.emplace(state.job_id, std::move(job));
    return StartResult{state, true};
  }

  // `job`, which could not be started, in phase kFailedToStart with `error` (also in its log).
  Job FailToStart(Job job, const std::string& error) const {
    job.state.phase = JobPhase::kFailedToStart;
    job.state.error = error;
    job.state.finished_at = job.state.started_at;
    AppendLine(job.log, "fleetwatch: the job failed to start: " + error);
    if (job.cgroup) {
      (void)job.cgroup->Remove();
      job.cgroup.reset();
    }
    spdlog::info("job {} failed to start: {}", job.state.job_id, error);
    return job;
  }

  // Removes what is left of a finished job: its cgroup, the processes of its own uid, its
  // directory and, with `remove_log`, its log. The uid is freed when `job` is destroyed.
  void ForgetFiles(const std::string& job_id, Job& job, bool remove_log) const {
    if (job.cgroup) {
      if (Status s = job.cgroup->Remove(); !s.ok()) spdlog::warn("job {}: {}", job_id, s.message());
    }
    const JobIdentity& user = job.identity.identity();
    if (user.exclusive) KillProcessesOfUid(user.uid);
    if (job.has_dir) {
      if (Status s = RemoveJobDirectory(options_.jobs_dir, job_id); !s.ok()) {
        spdlog::warn("job {}: {}", job_id, s.message());
      }
    }
    if (remove_log && !job.log.empty()) ::unlink(job.log.c_str());
  }

  void RequestStop(Job& job, std::chrono::seconds grace) FW_REQUIRES(mu_) {
    if (job.state.phase != JobPhase::kRunning) return;
    SteadyTime deadline = std::chrono::steady_clock::now() + grace;
    if (!job.state.stop_requested) {
      job.state.stop_requested = true;
      ::kill(-job.state.pid, SIGTERM);
      spdlog::info("job {}: SIGTERM sent, grace {} s", job.state.job_id, grace.count());
    }
    if (!job.kill_at || deadline < *job.kill_at) job.kill_at = deadline;
    cv_.NotifyAll();
  }

  // Kills what is left of a job: its process group, its cgroup and, when its uid is
  // its own, every process of that uid.
  static void KillRemains(const Job& job) {
    ::kill(-job.state.pid, SIGKILL);
    if (job.cgroup) job.cgroup->KillAll();
    const JobIdentity& user = job.identity.identity();
    if (user.exclusive) KillProcessesOfUid(user.uid);
  }

  void ReapLoop() {
    MutexLock lock(mu_);
    while (!shutting_down_) {
      bool changed = false;
      for (auto& [id, job] : jobs_) {
        if (job.state.phase != JobPhase::kRunning) continue;
        int status = 0;
        pid_t r = ::waitpid(job.state.pid, &status, WNOHANG);
        if (r == job.state.pid || (r < 0 && errno == ECHILD)) {
          job.state.phase = JobPhase::kExited;
          job.state.finished_at = clock_.Now();
          if (r == job.state.pid && WIFEXITED(status)) job.state.exit_code = WEXITSTATUS(status);
          if (r == job.state.pid && WIFSIGNALED(status)) job.state.signal = WTERMSIG(status);
          if (r < 0) job.state.error = "the job's process was reaped elsewhere";
          KillRemains(job);
          changed = true;
          spdlog::info("job {} ended (exit code {}, signal {})", id,
                       job.state.exit_code.value_or(-1), job.state.signal.value_or(0));
        } else if (r == 0 && job.kill_at && !job.killed &&
                   std::chrono::steady_clock::now() >= *job.kill_at) {
          spdlog::info("job {}: still running after the grace period, SIGKILL", id);
          KillRemains(job);
          job.killed = true;
        }
      }
      if (changed) cv_.NotifyAll();
      cv_.WaitFor(mu_, options_.reap_interval);
    }
  }

  const ProcessJobRuntimeOptions options_;
  const Clock& clock_;
  const CgroupTree tree_;
  JobUsers users_;
  const JobRecordStore records_;
  std::atomic<bool> warned_no_cgroup_{false};

  mutable Mutex mu_;
  CondVar cv_;
  std::map<std::string, Job> jobs_ FW_GUARDED_BY(mu_);
  bool shutting_down_ FW_GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

}  // namespace

std::unique_ptr<JobRuntime> NewProcessJobRuntime(ProcessJobRuntimeOptions options,
                                                 const Clock& clock) {
  return std::make_unique<ProcessJobRuntime>(std::move(options), clock);
}

}  // namespace fleetwatch::agent
