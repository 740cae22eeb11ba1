#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/fleet_controller.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

class UsageAccountant;

// A stage a tick runs on the controller's report, after Control and usage accounting: GPU state
// accounting, energy and job summaries, what other replicas polled (which adds to the report),
// the exposition. Plain data.
struct ReportStage {
  std::string name;  // what the log names when it fails ("metrics exposition")
  std::function<Status(TickReport&)> run;
  // Also run by a catch-up between ticks (ControlLoop::RequestCatchUp), on a report of the last
  // tick's instances and runs with nothing polled: the stages that bring /metrics up to what the
  // store holds (sharing, the exposition), not those that account what a tick polled.
  bool on_catch_up = false;
};

// The stages a ControlLoop runs, in its order. ServerStages adapts the server's components; tests
// substitute their own. Called on the loop's thread only, one at a time.
class ControlStages {
 public:
  virtual ~ControlStages() = default;
  // Polls the agents, decides, stores and sends the commands (FleetController::Tick).
  virtual Result<TickReport> Control() = 0;
  // Brings the persisted cost and GPU time up to `now` (UsageAccountant::Account).
  virtual Status AccountUsage() = 0;
  // The stages run on each tick's report, in this order. The list does not change once the loop
  // has started.
  virtual const std::vector<ReportStage>& report_stages() const = 0;
  // Deletes expired metrics points as of `now`.
  virtual Status Retain(TimeMicros now) = 0;
};

struct ControlLoopOptions {
  std::chrono::milliseconds tick_interval{1000};         // start to start
  std::chrono::milliseconds usage_interval{10'000};      // usage accounting at most this often
  std::chrono::milliseconds retention_interval{60'000};  // retention at most this often
};

// What the loop has done so far. Plain data.
struct ControlLoopStats {
  uint64_t ticks = 0;
  uint64_t skipped_beats = 0;         // beats missed because a tick ran past them
  TimeMicros last_tick_micros = 0;    // how long the last tick took, all stages
  TimeMicros last_start = 0;          // when the last tick started
  TimeMicros mean_period_micros = 0;  // start to start, over every tick so far
};

// Runs the server's control loop at a fixed rate: ticks start every `tick_interval` (start to
// start, on a grid fixed by the first tick); a tick that runs past one or more beats makes the
// loop skip them rather than run late ticks back to back. Each tick runs, in this order:
// Control → AccountUsage (on the first tick, then when usage_interval has passed since the last)
// → the report stages in their order; Retain runs after the first tick, then after a tick when
// retention_interval has passed since the last. A failing stage is logged and the others still
// run (the report stages are skipped only when Control failed: there is no report). Between ticks
// the thread also runs the catch-ups asked for (RequestCatchUp). Time comes from
// `clock`, so tests drive the loop with a FakeClock through RunDue without the thread. Thread-safe:
// Start/Stop from any thread, stats() from any thread.
class ControlLoop {
 public:
  // `stages` and `clock` must outlive the loop.
  ControlLoop(ControlStages& stages, const Clock& clock, ControlLoopOptions options);
  ~ControlLoop();  // calls Stop()
  ControlLoop(const ControlLoop&) = delete;
  ControlLoop& operator=(const ControlLoop&) = delete;

  // Starts the loop's thread; its first tick starts at once.
  void Start();
  // Waits for a tick in progress to finish, then ends the thread. Idempotent.
  void Stop();

  // Runs one tick when one is due at the clock's time (the first call always), and returns when
  // the next one is due. What the thread calls; tests call it directly.
  TimeMicros RunDue();

  ControlLoopStats stats() const;

  // Asks the loop's thread for a catch-up (the report stages marked on_catch_up, on the last
  // tick's instances and runs), run as soon as no tick is in progress, and returns the request's
  // number. Requests made before a catch-up starts share it.
  uint64_t RequestCatchUp() FW_EXCLUDES(mu_);
  // Waits until a catch-up that started after request `number` has ended: true when it
  // succeeded; false when it failed (logged), at `deadline`, and at once when the loop has
  // stopped.
  bool WaitCatchUp(uint64_t number, std::chrono::steady_clock::time_point deadline)
      FW_EXCLUDES(mu_);

 private:
  // One catch-up, its failure logged; whether it succeeded (true when there is no tick yet to
  // catch up from). The loop's thread, without `mu_`.
  bool RunCatchUp() FW_EXCLUDES(mu_);

  ControlStages& stages_;
  const Clock& clock_;
  const ControlLoopOptions options_;
  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ FW_GUARDED_BY(mu_) = false;
  bool running_ FW_GUARDED_BY(mu_) = false;  // the thread is started and not stopped
  uint64_t catch_ups_requested_ FW_GUARDED_BY(mu_) = 0;
  uint64_t catch_ups_done_ FW_GUARDED_BY(mu_) = 0;  // every request up to it has been served
  uint64_t catch_ups_ok_ FW_GUARDED_BY(mu_) = 0;    // ... by a catch-up that succeeded
  ControlLoopStats stats_ FW_GUARDED_BY(mu_);
  // RunDue's own state: only one thread calls it at a time.
  bool started_ = false;
  TimeMicros first_start_ = 0;
  TimeMicros next_beat_ = 0;
  TimeMicros next_usage_ = 0;
  TimeMicros next_retention_ = 0;
  // The last tick's report but what it polled (instances, runs, times, state generation): what a
  // catch-up starts from. The loop's thread only.
  std::optional<TickReport> last_report_;
  std::thread thread_;
};

// The server's stages: the controller, usage accounting, the report stages added (in server_app:
// the GPU state ledger, energy and job summaries, shared render state, the exposition and the
// families rendered after it) and metrics retention (points of unfinished jobs older than
// `running_ttl`, of finished ones older than `finished_ttl`). Every reference must outlive it.
// Not thread-safe (the loop's thread).
class ServerStages final : public ControlStages {
 public:
  ServerStages(FleetController& controller, UsageAccountant& usage, store::Store& store,
               std::chrono::seconds running_ttl, std::chrono::seconds finished_ttl);

  Result<TickReport> Control() override;
  Status AccountUsage() override;
  const std::vector<ReportStage>& report_stages() const override { return report_stages_; }
  Status Retain(TimeMicros now) override;

  // Appends a report stage; they run in the order added. Add before the loop starts.
  void AddReportStage(std::string name, std::function<Status(TickReport&)> run,
                      bool on_catch_up = false);

 private:
  FleetController& controller_;
  UsageAccountant& usage_;
  store::Store& store_;
  const TimeMicros running_ttl_;
  const TimeMicros finished_ttl_;
  std::vector<ReportStage> report_stages_;
};

}  // namespace fleetwatch::server
