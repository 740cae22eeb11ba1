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
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/cgroup_tree.h"
#include "agent/job_env.h"
#include "agent/process_launch.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using SteadyTime = std::chrono::steady_clock::time_point;

struct Job {
  JobState state;
  std::vector<int> gpu_indices;
  fs::path dir;
  std::optional<JobCgroup> cgroup;
  std::optional<SteadyTime> kill_at;  // SIGKILL when still running then
  bool killed = false;
};

std::string JoinCommands(const std::vector<std::string>& commands) {
  std::string script;
  for (const std::string& c : commands) script += (script.empty() ? "" : "\n") + c;
  return script;
}

void AppendLine(const fs::path& file, const std::string& line) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string text = line + "\n";
  ssize_t ignored = ::write(fd, text.data(), text.size());
  (void)ignored;
  ::close(fd);
}

class ProcessJobRuntime final : public JobRuntime {
 public:
  ProcessJobRuntime(ProcessJobRuntimeOptions options, const Clock& clock)
      : options_(std::move(options)),
        clock_(clock),
        tree_(options_.cgroup_root, options_.cgroup_group) {
    if (options_.use_cgroups && tree_.mode() != CgroupMode::kNone) {
      if (int removed = tree_.RemoveLeftovers(OwnedJob()); removed > 0) {
        spdlog::info("removed {} cgroup(s) left by an earlier agent", removed);
      }
    }
    reaper_ = std::thread([this] { ReapLoop(); });
  }

  ~ProcessJobRuntime() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutting_down_ = true;
    }
    cv_.notify_all();
    reaper_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, job] : jobs_) {
      if (job.state.phase == JobPhase::kRunning) {
        ::kill(-job.state.pid, SIGKILL);
        if (job.cgroup) job.cgroup->KillAll();
        while (::waitpid(job.state.pid, nullptr, 0) < 0 && errno == EINTR) {
        }
      }
      if (job.cgroup) (void)job.cgroup->Remove();
    }
    if (options_.use_cgroups && tree_.mode() != CgroupMode::kNone) {
      tree_.RemoveLeftovers(OwnedJob());  // usually nothing is left; this drops the group
    }
  }

  Result<StartResult> Start(const JobSpec& spec) override {
    if (!IsValidJobId(spec.job_id)) return InvalidArgument("invalid job_id");
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = jobs_.find(spec.job_id); it != jobs_.end()) {
      return StartResult{it->second.state, false};
    }
    Job job;
    job.dir = options_.data_dir / "jobs" / spec.job_id;
    std::error_code ec;
    fs::create_directories(job.dir, ec);
    if (ec) return Unavailable("cannot create " + job.dir.string() + ": " + ec.message());
    fs::path log = job.dir / "output.log";
    // A job id seen by an earlier agent starts a fresh log.
    if (int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); fd >= 0) {
      ::close(fd);
    } else {
      return Unavailable("cannot create " + log.string() + ": " + std::strerror(errno));
    }

    if (options_.use_cgroups && tree_.mode() != CgroupMode::kNone) {
      Result<JobCgroup> cgroup = tree_.Create(spec.job_id, {spec.memory_bytes, spec.cpus});
      if (cgroup.ok()) {
        job.cgroup = std::move(cgroup).value();
      } else if (!warned_no_cgroup_.exchange(true)) {
        spdlog::warn("jobs run without cgroups: {}", cgroup.status().message());
      }
    }

    LaunchSpec launch;
    launch.script = JoinCommands(spec.commands);
    launch.env = BuildJobEnvironment(spec, options_.agent_env, options_.gpu_vendor);
    launch.working_dir = spec.working_dir;
    launch.log_file = log;
    if (job.cgroup) launch.cgroup_procs_files = job.cgroup->ProcsFiles();

    job.state.job_id = spec.job_id;
    job.gpu_indices = spec.gpu_indices;
    job.state.started_at = clock_.Now();
    Result<pid_t> pid = LaunchJobProcess(launch);
    if (pid.ok()) {
      job.state.phase = JobPhase::kRunning;
      job.state.pid = *pid;
      spdlog::info("job {} started, pid {}", spec.job_id, *pid);
    } else {
      job.state.phase = JobPhase::kFailedToStart;
      job.state.error = pid.status().message();
      job.state.finished_at = job.state.started_at;
      AppendLine(log, "fleetwatch: the job failed to start: " + pid.status().message());
      if (job.cgroup) {
        (void)job.cgroup->Remove();
        job.cgroup.reset();
      }
      spdlog::info("job {} failed to start: {}", spec.job_id, pid.status().message());
    }
    JobState state = job.state;
    jobs_.emplace(spec.job_id, std::move(job));
    return StartResult{state, true};
  }

  Result<JobState> Stop(const std::string& job_id, std::chrono::seconds grace) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return NotFound("no job " + job_id);
    RequestStop(it->second, grace);
    return it->second.state;
  }

  std::vector<JobState> List() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<JobState> states;
    for (const auto& [id, job] : jobs_) states.push_back(job.state);
    return states;
  }

  Result<JobState> Get(const std::string& job_id) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return NotFound("no job " + job_id);
    return it->second.state;
  }

  Result<LogChunk> ReadLog(const std::string& job_id, int64_t offset,
                           int64_t limit) const override {
    fs::path log;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = jobs_.find(job_id);
      if (it == jobs_.end()) return NotFound("no job " + job_id);
      log = it->second.dir / "output.log";
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
      std::lock_guard<std::mutex> lock(mu_);
      auto it = jobs_.find(job_id);
      if (it == jobs_.end()) return NotFound("no job " + job_id);
      if (it->second.state.phase == JobPhase::kRunning) {
        return FailedPrecondition("job " + job_id + " is still running");
      }
      job = std::move(it->second);
      jobs_.erase(it);
    }
    if (job.cgroup) {
      if (Status s = job.cgroup->Remove(); !s.ok()) spdlog::warn("job {}: {}", job_id, s.message());
    }
    std::error_code ec;
    fs::remove_all(job.dir, ec);
    if (ec) spdlog::warn("job {}: cannot remove {}: {}", job_id, job.dir.string(), ec.message());
    return Status::Ok();
  }

  Result<JobUsage> ReadUsage(const std::string& job_id) const override {
    std::optional<JobCgroup> cgroup;
    pid_t pgid = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
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
      std::lock_guard<std::mutex> lock(mu_);
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
    std::unique_lock<std::mutex> lock(mu_);
    for (auto& [id, job] : jobs_) RequestStop(job, grace);
    // The reaper SIGKILLs after the grace; the extra time covers reaping on a busy machine.
    cv_.wait_for(lock, grace + std::chrono::seconds(10), [this] {
      return std::none_of(jobs_.begin(), jobs_.end(), [](const auto& entry) {
        return entry.second.state.phase == JobPhase::kRunning;
      });
    });
  }

 private:
  // Whether a job cgroup found in the group is one of this data dir's jobs (perhaps from an
  // earlier agent): another agent on the host may share the group.
  std::function<bool(const std::string&)> OwnedJob() const {
    return [jobs = options_.data_dir / "jobs"](const std::string& job_id) {
      std::error_code ec;
      return fs::is_directory(jobs / job_id, ec);
    };
  }

  // Requires mu_.
  void RequestStop(Job& job, std::chrono::seconds grace) {
    if (job.state.phase != JobPhase::kRunning) return;
    SteadyTime deadline = std::chrono::steady_clock::now() + grace;
    if (!job.state.stop_requested) {
      job.state.stop_requested = true;
      ::kill(-job.state.pid, SIGTERM);
      spdlog::info("job {}: SIGTERM sent, grace {} s", job.state.job_id, grace.count());
    }
    if (!job.kill_at || deadline < *job.kill_at) job.kill_at = deadline;
    cv_.notify_all();
  }

  // Requires mu_. Kills what is left of a job: its process group and its cgroup.
  static void KillRemains(const Job& job) {
    ::kill(-job.state.pid, SIGKILL);
    if (job.cgroup) job.cgroup->KillAll();
  }

  void ReapLoop() {
    std::unique_lock<std::mutex> lock(mu_);
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
      if (changed) cv_.notify_all();
      cv_.wait_for(lock, options_.reap_interval);
    }
  }

  const ProcessJobRuntimeOptions options_;
  const Clock& clock_;
  const CgroupTree tree_;
  std::atomic<bool> warned_no_cgroup_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Job> jobs_;
  bool shutting_down_ = false;
  std::thread reaper_;
};

}  // namespace

std::unique_ptr<JobRuntime> NewProcessJobRuntime(ProcessJobRuntimeOptions options,
                                                 const Clock& clock) {
  return std::make_unique<ProcessJobRuntime>(std::move(options), clock);
}

}  // namespace fleetwatch::agent
