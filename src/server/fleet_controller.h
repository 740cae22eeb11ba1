#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "http/async_client.h"
#include "model/entities.h"
#include "server/log_copies.h"
#include "server/reconciler.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

struct FleetControllerOptions {
  std::chrono::milliseconds agent_timeout{5000};  // per request to an agent
  size_t max_poll_bytes = 16 << 20;               // a larger poll reply loses that host's tick
  ReconcileSettings reconcile;
  std::string log_dir;                    // copies of ended jobs' logs, one file per job
  int64_t max_log_copy_bytes = 64 << 20;  // per job; longer logs keep their tail (log_copies.h)
  std::chrono::seconds log_copy_deadline{30};  // per copy; a slower one is retried later
  // Metrics: polls ask for points this often; a job with a stored point younger than
  // `min_point_spacing` gets no new one (so several replicas never double-collect).
  std::chrono::milliseconds metrics_interval{10'000};
  // How long a tick waits for its polls. A host that answers later is observed by the next tick;
  // one slow or silent host never holds up the others.
  std::chrono::milliseconds tick_budget{1000};
  TimeMicros min_point_spacing = 9'000'000;
  // Metrics polls also ask for the host's DCGM text (dcgm=1), kept for TakeDcgmReports.
  bool collect_dcgm = false;
};

// A host's DCGM text as its agent last reported it.
struct DcgmReport {
  std::string instance_id;
  AgentDcgm dcgm;
};

// Run transitions that feed the server's own metric families.
struct RunEvents {
  struct Provisioned {
    std::string project_name;
    model::RunType run_type;
    double seconds;  // from submission to the first job placed on an instance
  };
  struct Pending {
    std::string project_name;
    model::RunType run_type;
  };
  std::vector<Provisioned> provisioned;
  // Runs that a tick could not place at once and that wait for capacity; each run once.
  std::vector<Pending> pending;
};

// Drives the fleet: each Tick polls every agent once (all at once), lets Reconcile decide,
// stores the decisions and carries out the agent commands (start, stop, forget, acknowledge
// after the log is copied). What agents say is untrusted (agent_protocol.h, log_copies.h).
// Thread-safe; Tick is meant to run on one background thread.
class FleetController {
 public:
  // `runs_mutex` serializes changes to runs with the API (RunService::mutex()).
  FleetController(store::Store& store, const Clock& clock, std::mutex& runs_mutex,
                  http::AsyncClient& client, FleetControllerOptions options);

  // One pass. Per-host failures are logged (once a minute per host) and never stop the pass;
  // returns an error only when the store fails.
  Status Tick();

  // Hosts whose poll reply was not usable (unreachable, HTTP error, malformed), counted per tick.
  uint64_t bad_replies() const { return bad_replies_.load(); }
  // Metrics points stored so far.
  uint64_t points_stored() const { return points_stored_.load(); }
  // The DCGM texts received since the last call, the newest per host (with collect_dcgm).
  std::vector<DcgmReport> TakeDcgmReports();
  // The run transitions seen since the last call.
  RunEvents TakeRunEvents();
  // Why each host's last poll failed (instance id → message, e.g. "https://10.0.0.1:10998:
  // certificate fingerprint sha256:... does not match the pinned sha256:..."); hosts whose
  // last poll succeeded are absent. Kept in memory only.
  std::map<std::string, std::string> HostProblems() const;

 private:
  http::AsyncRequest AgentRequest(const model::Instance& instance, std::string method,
                                  std::string target, std::string body = {}) const;
  struct PollState;
  std::map<std::string, InstanceObservation> Observe(const std::vector<model::Instance>& instances,
                                                     bool with_metrics);
  InstanceObservation ObservationOf(const model::Instance& instance,
                                    const Result<http::Response>& reply);
  // Stores the points that the observed agents reported for jobs the server runs on them.
  void Collect(const std::map<std::string, InstanceObservation>& observations,
               const std::vector<model::Run>& runs);
  void KeepDcgm(const std::map<std::string, InstanceObservation>& observations);
  void NoteRunEvents(const std::vector<model::Run>& before, const std::vector<model::Run>& changed);
  void Execute(const std::vector<AgentCommand>& commands);
  // Copies the logs, then lets the agents forget the jobs, while the tick's budget lasts.
  void Acknowledge(const std::map<std::string, model::Instance>& instances,
                   const std::vector<AgentCommand>& commands);
  // GET /api/jobs/{job_id}/logs on the instance's agent. NotFound when the agent has no such job.
  Result<LogChunk> ReadAgentLog(const model::Instance& instance, const std::string& job_id,
                                int64_t offset, int64_t limit);
  friend class InstanceLogSource;
  void FailJobs(const std::map<std::string, std::string>& job_errors);
  void LogHostProblem(const model::Instance& instance, const std::string& what);
  // Records (or, with an empty `what`, clears) the host's current problem for HostProblems().
  void NoteHostProblem(const std::string& instance_id, std::string what);

  store::Store& store_;
  const Clock& clock_;
  std::mutex& runs_mutex_;
  http::AsyncClient& client_;
  FleetControllerOptions options_;
  LogCopies log_copies_;
  mutable std::mutex log_mu_;
  std::map<std::string, TimeMicros> last_logged_;     // instance id → when a problem was logged
  std::map<std::string, std::string> host_problems_;  // instance id → last poll's error; log_mu_
  std::set<std::string> plain_http_warned_;  // instance ids warned about tls: false (Tick only)
  TimeMicros next_metrics_at_ = 0;           // Tick runs on one thread: no lock
  bool last_points_loaded_ = false;
  std::map<std::string, TimeMicros> last_point_;  // job id → newest stored point
  std::atomic<uint64_t> bad_replies_{0};
  std::atomic<uint64_t> points_stored_{0};
  std::shared_ptr<PollState> polls_;
  std::mutex events_mu_;
  std::map<std::string, AgentDcgm> dcgm_;  // instance id → newest report not yet taken
  RunEvents run_events_;
  std::set<std::string> waiting_runs_;  // counted as pending, not yet placed (Tick's thread)
  size_t copy_turn_ = 0;                // which host copies first next tick (Tick's thread)
};

}  // namespace fleetwatch::server
