#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/job_usage.h"
#include "model/names.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::agent {

// How a job of a multi-node run sees the other nodes (DSTACK_* variables).
struct ClusterInfo {
  int nodes_num = 1;
  int node_rank = 0;
  std::string master_node_ip = "127.0.0.1";
  std::vector<std::string> nodes_ips = {"127.0.0.1"};
  std::optional<int> gpus_per_node;  // default: the number of gpu_indices
};

// What POST /api/jobs asks for, already validated.
struct JobSpec {
  std::string job_id;  // 1..64 of [A-Za-z0-9-]
  std::string job_name;
  std::string run_name;
  std::vector<std::string> commands;  // joined with "\n", run by /bin/sh -c
  std::map<std::string, std::string> env;
  std::optional<std::string> working_dir;  // default: the agent's working directory
  std::vector<int> gpu_indices;            // distinct, existing on this host
  std::optional<double> cpus;
  std::optional<int64_t> memory_bytes;  // nullopt: no limit
  ClusterInfo cluster;
};

// kLost: a job an earlier agent with the same data dir accepted and that does not run any more
// (its process was gone, or was killed, when this agent started); it is never started again.
enum class JobPhase { kRunning, kExited, kFailedToStart, kLost };

// "running", "exited", "failed_to_start", "lost".
std::string_view JobPhaseName(JobPhase phase);

// 1..64 characters of [A-Za-z0-9-]: safe as a file and cgroup name. One rule with the server's
// (model/names.h).
using model::IsValidJobId;

// A job as GET /api/poll reports it.
struct JobState {
  std::string job_id;
  JobPhase phase = JobPhase::kRunning;
  pid_t pid = 0;                 // 0 when it never started
  std::optional<int> exit_code;  // set when it exited normally
  std::optional<int> signal;     // set when a signal killed it
  bool stop_requested = false;
  TimeMicros started_at = 0;
  std::optional<TimeMicros> finished_at;
  std::optional<std::string> error;  // why it failed to start, or was lost
};

// A job with its resource use read at one moment (GET /api/poll?metrics=1).
struct JobSnapshot {
  JobState state;
  std::vector<int> gpu_indices;   // the job's GPUs, in the order it was started with
  std::optional<JobUsage> usage;  // running jobs only; nullopt when it could not be read (it
                                  // just ended, its cgroup files are gone)
  TimeMicros usage_read_at = 0;   // the runtime's clock right after `usage` was read
};

struct StartResult {
  JobState state;
  bool created = false;  // false: the job already existed and nothing was started
};

struct LogChunk {
  std::string data;
  int64_t total_size = 0;  // bytes in the log so far
};

// Runs job processes on this host. Every method is thread-safe.
class JobRuntime {
 public:
  virtual ~JobRuntime() = default;

  // Starts the job unless one with that id is held already, perhaps lost (then returns it with
  // created = false). A job that cannot be started (working_dir missing, fork failure) is still
  // created, in phase kFailedToStart with `error`. Errors only when the job's directory, log or
  // record (job_records.h) cannot be created (Unavailable); nothing is started then.
  virtual Result<StartResult> Start(const JobSpec& spec) = 0;

  // SIGTERM to the job's process group now; SIGKILL to it and to everything in its cgroup when
  // it still runs `grace` later. Idempotent (a second call may shorten the grace); a finished
  // job is returned unchanged. NotFound for an unknown job.
  virtual Result<JobState> Stop(const std::string& job_id, std::chrono::seconds grace) = 0;

  // Every job held, ordered by job id.
  virtual std::vector<JobState> List() const = 0;

  virtual Result<JobState> Get(const std::string& job_id) const = 0;

  // Up to `limit` bytes of the job's combined stdout+stderr from `offset`. NotFound for an
  // unknown job.
  virtual Result<LogChunk> ReadLog(const std::string& job_id, int64_t offset,
                                   int64_t limit) const = 0;

  // Forgets a finished (or lost) job and removes its record, log, directory and cgroup.
  // FailedPrecondition while it runs; NotFound for an unknown job.
  virtual Status Acknowledge(const std::string& job_id) = 0;

  // The job's CPU and memory use now, from its cgroup, or from /proc for its process group when
  // it has none. NotFound for an unknown job; Unavailable when nothing can be read (e.g. it ended).
  virtual Result<JobUsage> ReadUsage(const std::string& job_id) const = 0;

  // Every job held, ordered by job id, with the usage of the running ones read now (as
  // ReadUsage does; one /proc pass covers all jobs without a cgroup). What the reads need is
  // copied under the job-table lock; the files are read outside it. No subprocesses.
  virtual std::vector<JobSnapshot> ListWithUsage() const = 0;

  // Stops every running job with `grace` and waits until all have ended (for agent shutdown).
  virtual void StopAll(std::chrono::seconds grace) = 0;
};

}  // namespace fleetwatch::agent
