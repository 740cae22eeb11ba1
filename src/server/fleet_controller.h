#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "http/async_client.h"
#include "model/entities.h"
#include "server/agent_lanes.h"
#include "server/log_copies.h"
#include "server/reconciler.h"
#include "store/change_listener.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

class GpuHealthMonitor;
class UtilizationPolicyTracker;

struct FleetControllerOptions {
  std::chrono::milliseconds agent_timeout{5000};  // per request to an agent
  size_t max_poll_bytes = 16 << 20;               // a larger poll reply loses that host's tick
  ReconcileSettings reconcile;
  std::string log_dir;                    // ended jobs' log copies are staged here (LogCopies)
  int64_t max_log_copy_bytes = 64 << 20;  // per job; longer logs keep their tail (log_copies.h)
  std::chrono::seconds log_copy_deadline{30};  // per copy; a slower one is retried later
  // Metrics: polls ask for points this often; a job with a stored point younger than
  // `min_point_spacing` gets no new one (so several replicas never double-collect).
  std::chrono::milliseconds metrics_interval{10'000};
  // How long a tick waits for its polls. A host that answers later is observed by the next tick;
  // one slow or silent host never holds up the others.
  std::chrono::milliseconds tick_budget{1000};
  TimeMicros min_point_spacing = 9'000'000;
  // Metrics polls also ask for the host's DCGM text (dcgm=1), handed on in TickReport::dcgm.
  bool collect_dcgm = false;
  // Replicas (store.h "replicas and instance leases", docs/scale-out.md). Set: this server is
  // one of the replicas on its database: each tick renews and takes instance leases first, polls,
  // commands and places jobs onto only the instances it leases, and stores results only while
  // their lease tokens and the runs' row versions are still the ones it read (a stale result is
  // dropped and logged). Empty: every instance is this controller's (tests, benchmarks).
  std::string replica_id;
  std::chrono::milliseconds lease_time{10'000};  // a lease and a heartbeat count this long
  // Replicas with a change listener (SetChangeListener): the instances and unfinished runs are
  // read whole at the first tick, after the listener (re)connected, and this often anyway; in
  // between only the rows that notifications name are read again.
  std::chrono::milliseconds resync_interval{60'000};
  // Quiet ticks are checked by reconciling copies (QuietTick); for a replica with a change
  // listener also by comparing its copies with the store's rows, so that a change that was never
  // notified aborts the process (a bug). On by default in debug builds.
#ifdef NDEBUG
  bool verify_quiet_ticks = false;
#else
  bool verify_quiet_ticks = true;
#endif
};

// What the controller knows of the replicas on its database, as of its last tick.
struct ReplicaView {
  std::string id;         // empty: the only server (FleetControllerOptions::replica_id)
  int live_replicas = 1;  // itself included
  size_t leased = 0;      // instances it holds (without replicas: every instance)
};

// A host's DCGM text as its agent last reported it.
struct DcgmReport {
  std::string instance_id;
  AgentDcgm dcgm;
};

// Run transitions that feed the server's own metric families.
struct RunEvents {
  struct Provisioned {
    std::string run_id;
    std::string project_name;
    model::RunType run_type;
    double seconds;  // from submission to the first job placed on an instance
  };
  struct Pending {
    std::string run_id;
    std::string project_name;
    model::RunType run_type;
  };
  std::vector<Provisioned> provisioned;
  // Runs that a tick could not place at once and that wait for capacity; each run once.
  std::vector<Pending> pending;
};

// An immutable list that readers share: copying one copies a pointer, never the items. Reads like
// a const std::vector (and converts to one). Its items never change once made; a writer that keeps
// such a list makes a new one for a change (FleetController copies only when a reader still holds
// the old one). Thread-safe as shared_ptr is: each SharedList object is one thread's at a time.
template <typename T>
class SharedList {
 public:
  SharedList() = default;
  SharedList(std::vector<T> items)  // NOLINT(google-explicit-constructor): reads as a vector
      : items_(std::make_shared<const std::vector<T>>(std::move(items))) {}
  explicit SharedList(std::shared_ptr<const std::vector<T>> items) : items_(std::move(items)) {}

  const std::vector<T>& get() const { return items_ ? *items_ : Empty(); }
  operator const std::vector<T>&() const { return get(); }  // NOLINT(google-explicit-constructor)
  size_t size() const { return get().size(); }
  bool empty() const { return get().empty(); }
  typename std::vector<T>::const_iterator begin() const { return get().begin(); }
  typename std::vector<T>::const_iterator end() const { return get().end(); }
  const T& operator[](size_t i) const { return get()[i]; }
  const T& at(size_t i) const { return get().at(i); }

 private:
  static const std::vector<T>& Empty() {
    static const std::vector<T> empty;
    return empty;
  }
  std::shared_ptr<const std::vector<T>> items_;
};

// What one tick saw and decided, handed to whatever comes after the controller (usage
// accounting, the exposition). Plain data, owned by the caller; `instances` and `runs` are shared
// with the controller (SharedList) and never copied.
struct TickReport {
  TimeMicros started_at = 0;
  TimeMicros ended_at = 0;
  // Every instance of every project and every unfinished run (with its jobs) as stored at the
  // end of the tick, this tick's decisions included. Runs submitted or changed through the API
  // during the tick show up in the next one.
  SharedList<model::Instance> instances;
  SharedList<model::Run> runs;
  // The poll replies used by this tick, by instance id (unusable ones with `reached` false);
  // their DCGM texts are in `dcgm` instead.
  std::map<std::string, InstanceObservation> observations;
  std::map<std::string, uint64_t> bad_replies;  // instance id → unusable poll replies this tick
  uint64_t bad_replies_total = 0;               // since the server started
  std::vector<DcgmReport> dcgm;                 // hosts' DCGM texts received (collect_dcgm)
  RunEvents run_events;
  size_t points_stored = 0;  // metrics points stored by this tick
  // Those points, as stored: what a job's newest point is, without reading the store back.
  std::vector<model::JobMetricsPoint> stored_points;
  // The runs that finished in this tick, as stored (no longer in `runs`): their jobs' ends, for
  // whatever sums a job up when it ends, however short it ran.
  std::vector<model::Run> finished_runs;
  // The same for two reports only when their `instances` and `runs` are the very same lists,
  // unchanged in between (a quiet tick's: FleetController::QuietTick); 0: not known.
  uint64_t state_generation = 0;
};

// A report without polls: the stored instances and unfinished runs, for an exposition that is
// brought up to date before the first tick. Errors: the store's.
Result<TickReport> StoredStateReport(store::Store& store, TimeMicros now);

// Drives the fleet: each Tick polls every agent (all at once), lets Reconcile decide, stores the
// decisions and hands the agent commands (start, stop, forget, acknowledge after the log is
// copied) to asynchronous per-host lanes (agent_lanes.h): at most one request per host and kind
// in flight, each with its own timeout. A tick waits for its polls (and the inventories they
// call for) up to `tick_budget` and never for anything else, so its length is bounded whatever
// the hosts do; every reply is used by the first tick after it arrives. What agents say is
// untrusted (agent_protocol.h, log_copies.h). Thread-safe; Tick is meant to run on one
// background thread.
class FleetController {
 public:
  // `runs_mutex` serializes changes to runs with the API (RunService::mutex()).
  FleetController(store::Store& store, const Clock& clock, Mutex& runs_mutex,
                  http::AsyncClient& client, FleetControllerOptions options);
  ~FleetController();

  // One pass. Per-host failures are logged (once a minute per host) and never stop the pass;
  // returns an error only when the store fails.
  Result<TickReport> Tick();

  // Optional GPU guards, consulted by every tick before it decides (either may be null):
  // `health` (gpu_health.h) takes the tick's readings and says which GPUs take no new jobs;
  // `utilization` (utilization_policy.h) says which running jobs end under their run's
  // utilization policy. Call before the first Tick; both must outlive the controller.
  void SetGpuGuards(GpuHealthMonitor* health, UtilizationPolicyTracker* utilization);

  // Hosts whose poll reply was not usable (unreachable, HTTP error, malformed), counted per tick.
  uint64_t bad_replies() const { return bad_replies_.load(); }
  // Metrics points stored so far.
  uint64_t points_stored() const { return points_stored_.load(); }
  // Ticks that skipped the reconciler because nothing it reads had changed (QuietTick).
  uint64_t quiet_ticks() const { return quiet_ticks_.load(); }
  // Why each host's last poll failed (instance id → message, e.g. "https://10.0.0.1:10998:
  // certificate fingerprint sha256:... does not match the pinned sha256:..."); hosts whose
  // last poll succeeded are absent. Kept in memory only.
  std::map<std::string, std::string> HostProblems() const;
  // Thread-safe.
  ReplicaView Replica() const;

  // Replicas (FleetControllerOptions::replica_id) only: `listener` delivers the keys of
  // store.h kInstancesChannel and kRunsChannel (the PostgreSQL store notifies them in the
  // transaction of each write, whoever writes). The controller then keeps its copies of the
  // instances and unfinished runs between ticks, reads again only the rows named (skipping the
  // runs it holds at that row version already: its own writes), reads everything at the first
  // tick, when the listener says resync and every `resync_interval`, and takes quiet ticks as a
  // lone server does. Without one, a replica reads the instances every tick and the runs whenever
  // any run changed. Call before the first Tick; the listener must outlive the controller, and
  // no other reader may Take from it.
  void SetChangeListener(store::ChangeListener* listener);
  // Full reads of the instances and runs by a replica with a change listener, the first included.
  uint64_t resyncs() const { return resyncs_.load(); }

 private:
  http::AsyncRequest AgentRequest(const model::Instance& instance, std::string method,
                                  std::string target, std::string body = {}) const;
  struct PollState;
  std::map<std::string, InstanceObservation> Observe(const std::vector<model::Instance>& instances,
                                                     bool with_metrics);
  // Consumes the reply's body.
  InstanceObservation ObservationOf(const model::Instance& instance, Result<http::Response>& reply);
  using InstancesById = std::unordered_map<std::string_view, const model::Instance*>;
  // Takes what arrived from the agents: poll replies and inventories are kept for the tick,
  // commands' outcomes are logged, and refused starts added to `refused` (job id → why).
  void TakeReplies(const InstancesById& by_id, std::map<std::string, std::string>& refused);
  // Polls every host that has no poll in flight and waits for the replies and the inventories
  // they call for up to the tick's budget. Returns every poll reply that arrived since the last
  // tick, by instance id.
  std::map<std::string, InstanceObservation> Observe(const std::vector<model::Instance>& instances,
                                                     std::map<std::string, std::string>& refused);
  // Returns how many were stored; `stored` gets them.
  size_t Collect(const std::map<std::string, InstanceObservation>& observations,
                 const std::vector<model::Run>& runs, std::vector<model::JobMetricsPoint>& stored);
  // `runs`: every unfinished run of the tick, as it is after it; `unplaced`: those of them that
  // had no job on an instance before the tick.
  RunEvents NoteRunEvents(const std::vector<model::Run>& runs,
                          const std::vector<const model::Run*>& unplaced);
  // instances_ and runs_ to be changed: copies when a report still holds them.
  std::vector<model::Instance>& MutableInstances();
  std::vector<model::Run>& MutableRuns() FW_REQUIRES(runs_mutex_);
  // Brings instances_ and runs_ up to the store's (when their versions say they are not).
  Status LoadInstances();
  Status LoadRuns() FW_REQUIRES(runs_mutex_);
  // --- replicas with a change listener (SetChangeListener) ---
  bool notified() const { return leasing() && changes_ != nullptr; }
  // Applies what the listener gathered: reads the named rows again (or everything, for a resync
  // or when a copy is not known), and the instances whose lease this replica took since.
  Status SyncChanges() FW_REQUIRES(runs_mutex_);
  Status Resync() FW_REQUIRES(runs_mutex_);
  Status ReadInstances(const std::set<std::string>& ids);
  Status ReadRuns(const std::set<std::string>& ids) FW_REQUIRES(runs_mutex_);
  // After runs_ lost or gained runs: their jobs' ids and parsed configurations follow.
  void RunsChanged() FW_REQUIRES(runs_mutex_);
  // Debug check of a quiet tick (verify_quiet_ticks): the copies against the store's rows. A row
  // that differs is suspect; one that still differs after 5 quiet ticks and 10 s (a notification
  // takes milliseconds) was changed without one: aborts.
  Status VerifyCopies(TimeMicros now) FW_REQUIRES(runs_mutex_);
  // Stores the tick's changes and applies them to instances_ and runs_ (runs_ holds them
  // already: Reconcile changed it in place); a cache whose store changed meanwhile through
  // another path is read again by the next tick. Changes to runs go in only on the row version
  // they were decided on (and, for a replica, only while its leases of their instances hold);
  // the jobs of those refused go to `dropped_jobs`, the instances whose lease was lost to
  // `lost_instances`, and their commands are not sent.
  // --- quiet ticks ---
  // A tick whose reconcile would change nothing is quiet: the last full reconcile changed,
  // stored, commanded and logged nothing (its basis, below), and this tick's input is the same
  // but for the clock: the stored instances and runs did not move, every polled instance
  // answered with the same poll as then (AgentPollParser::generation), no start was refused, no
  // job is due to end under its utilization policy, the excluded GPUs are the same, and the
  // clock has not reached a moment where a rule of time (max_duration, the last_seen_at
  // resolution) may act. A quiet tick skips the reconciler and its store writes; its report has
  // the same instances and runs. Replicas never skip (other replicas' writes move the state).
  struct QuietBasis {
    bool valid = false;
    int64_t instances_version = -1, runs_version = -1;
    uint64_t copies_epoch = 0;  // copies_epoch_ (replicas with a change listener)
    std::unordered_map<std::string, uint64_t> generations;  // instance id → poll generation
    ExcludedGpus excluded;
    TimeMicros until = 0;  // the first moment a rule of time may act
  };
  bool QuietTick(const std::map<std::string, InstanceObservation>& observations,
                 const ExcludedGpus& excluded, TimeMicros now) const FW_REQUIRES(runs_mutex_);
  // Records the basis after a full reconcile that produced `out`.
  void NoteQuietBasis(const ReconcileOutput& out, bool dropped,
                      const std::map<std::string, InstanceObservation>& observations,
                      ExcludedGpus excluded) FW_REQUIRES(runs_mutex_);
  // Debug builds: runs the reconciler on copies and aborts if it changes anything (a quiet tick
  // that was not).
  Status CheckQuiet(const std::map<std::string, InstanceObservation>& observations,
                    const ExcludedGpus& excluded, TimeMicros now) FW_REQUIRES(runs_mutex_);
  Status StoreChanges(const ReconcileOutput& out, std::unordered_set<std::string>& dropped_jobs,
                      std::unordered_set<std::string>& lost_instances) FW_REQUIRES(runs_mutex_);
  // --- replicas (FleetControllerOptions::replica_id) ---
  // Heartbeat, renewals and takes (Store::TakeLeases); fills held_. An error leaves it empty.
  Status TakeLeases();
  bool leasing() const { return !options_.replica_id.empty(); }
  // The (instance id, token) leases a write of `run` depends on: those of its jobs' instances.
  std::vector<std::pair<std::string, std::string>> LeasesOf(const model::Run& run) const;
  // Hands the commands to the hosts' lanes (asynchronous; outcomes come with a later tick).
  void Execute(const std::vector<model::Instance>& instances,
               const std::vector<AgentCommand>& commands);
  void FailJobs(const std::map<std::string, std::string>& job_errors);
  void LogHostProblem(const model::Instance& instance, const std::string& what);
  // Records (or, with an empty `what`, clears) the host's current problem for HostProblems().
  void NoteHostProblem(const std::string& instance_id, std::string what);

  store::Store& store_;
  const Clock& clock_;
  Mutex& runs_mutex_;
  http::AsyncClient& client_;
  FleetControllerOptions options_;
  LogCopies log_copies_;
  mutable Mutex log_mu_;
  // Instance id → when a problem was logged.
  std::map<std::string, TimeMicros> last_logged_ FW_GUARDED_BY(log_mu_);
  // Instance id → last poll's error.
  std::map<std::string, std::string> host_problems_ FW_GUARDED_BY(log_mu_);
  // Instance ids warned about tls: false (Tick only).
  std::unordered_set<std::string> plain_http_warned_;
  // Tick's thread only: no lock.
  std::unordered_map<std::string, TimeMicros> next_metrics_at_;  // instance id → next metrics poll
  std::map<std::string, InstanceObservation> replies_;           // polls not used by a tick yet
  std::map<std::string, AgentInventory> inventories_;            // arrived, not used by a tick yet
  // Instance id → its poll replies' parser, which parses an unchanged reply only once.
  std::unordered_map<std::string, AgentPollParser> poll_parsers_;
  // The instances the last Observe was given, in order: their ids, their addresses and the index
  // by id (whose keys view observed_ids_), kept while a call gets the same ids at the same places.
  // next_metrics_at_, inventories_, poll_parsers_ and host_problems_ hold ids of this list only.
  std::vector<std::string> observed_ids_;
  std::vector<const model::Instance*> observed_at_;
  InstancesById by_id_;
  // What the store holds, kept between ticks and read again only when the store's version of it
  // moved by more than this controller's own writes (store.h RunsVersion, InstancesVersion); -1:
  // read at the next use. Every instance of every project; every unfinished run, oldest first.
  // instances_ is the Tick's thread's; runs_ also changes under runs_mutex_ only. Reports share
  // both lists (TickReport): a list still shared is copied before it changes (Mutable*).
  int64_t instances_version_ = -1;
  std::shared_ptr<std::vector<model::Instance>> instances_ =
      std::make_shared<std::vector<model::Instance>>();
  int64_t runs_version_ FW_GUARDED_BY(runs_mutex_) = -1;
  std::shared_ptr<std::vector<model::Run>> runs_ FW_GUARDED_BY(runs_mutex_) =
      std::make_shared<std::vector<model::Run>>();
  // Of the unfinished runs, parsed once each.
  std::unordered_map<std::string, Result<model::RunConfiguration>> configs_
      FW_GUARDED_BY(runs_mutex_);
  // The ids of the jobs of runs_ (a run's jobs never change), made again when runs_ gains or
  // loses runs: what tells the other jobs the agents report from the runs' own.
  std::unordered_set<std::string> run_job_ids_ FW_GUARDED_BY(runs_mutex_);
  bool run_job_ids_stale_ FW_GUARDED_BY(runs_mutex_) = true;
  bool last_points_loaded_ = false;
  std::unordered_map<std::string, TimeMicros> last_point_;  // job id → newest stored point
  std::atomic<uint64_t> bad_replies_{0};
  std::atomic<uint64_t> points_stored_{0};
  std::atomic<uint64_t> quiet_ticks_{0};
  uint64_t state_generation_ = 0;  // TickReport::state_generation (Tick's thread)
  QuietBasis quiet_ FW_GUARDED_BY(runs_mutex_);
  std::unique_ptr<AgentLanes> lanes_;       // every request to the agents, asynchronous
  std::set<std::string> waiting_runs_;      // counted as pending, not yet placed (Tick's thread)
  GpuHealthMonitor* gpu_health_ = nullptr;  // SetGpuGuards
  UtilizationPolicyTracker* utilization_ = nullptr;  // SetGpuGuards (Tick's thread)
  // Replicas (Tick's thread): instance id → lease token of what this replica holds; the same ids
  // for the reconciler's placement; whether other replicas were live at the last tick (their
  // writes do not move this store object's versions, so the caches are read again each tick).
  std::unordered_map<std::string, std::string> held_;
  std::unordered_set<std::string> placeable_;
  bool shared_ = false;
  bool reread_ = false;  // this tick reads instances again, and runs when runs_mark_ moved
  std::pair<int64_t, int64_t> runs_mark_ FW_GUARDED_BY(runs_mutex_){-1, -1};  // RunsChangeMark
  // Replicas with a change listener: the feed; when the next full read is due; rows to read again
  // (instances whose lease was just taken or whose write failed, runs whose write was refused);
  // raised by every change of the copies that is not this replica's own decision (QuietBasis);
  // VerifyCopies' suspects (key → first seen, quiet ticks since).
  store::ChangeListener* changes_ = nullptr;
  TimeMicros next_resync_at_ = 0;
  std::set<std::string> stale_instances_;
  std::set<std::string> stale_runs_ FW_GUARDED_BY(runs_mutex_);
  uint64_t copies_epoch_ = 0;
  std::map<std::string, std::pair<TimeMicros, int>> suspects_;
  std::atomic<uint64_t> resyncs_{0};
  std::atomic<int> live_replicas_{1};
  std::atomic<size_t> leased_{0};
};

}  // namespace fleetwatch::server
