#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "server/fleet_controller.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

class EnergyAccountant;
class ExpositionUpdater;
class SharedRenderState;
class GpuLedger;
class UsageAccountant;

// The stages a ControlLoop runs, in its order. ServerStages adapts the server's components; tests
// substitute their own. Called on the loop's thread only, one at a time.
class ControlStages {
 public:
  virtual ~ControlStages() = default;
  // Polls the agents, decides, stores and sends the commands (FleetController::Tick).
  virtual Result<TickReport> Control() = 0;
  // Brings the persisted cost and GPU time up to `now` (UsageAccountant::Account).
  virtual Status AccountUsage() = 0;
  // Brings job energy, aggregates and summaries up to date with the tick
  // (EnergyAccountant::Update). Does nothing unless a stage set provides it.
  virtual Status Summarize(const TickReport& report) {
    (void)report;
    return Status::Ok();
  }
  // Adds to the report what other replicas on the database polled, for Expose to show
  // (SharedRenderState::Share). Does nothing unless a stage set provides it.
  virtual Status Share(TickReport& report) {
    (void)report;
    return Status::Ok();
  }
  // Brings /metrics' snapshot up to date with the tick (ExpositionUpdater::Update).
  virtual Status Expose(const TickReport& report) = 0;
  // Charges the tick's GPU readings to the GPU state ledger (GpuLedger::Account).
  virtual Status AccountGpus(const TickReport& /*report*/) { return Status::Ok(); }
  // Deletes expired metrics points as of `now`.
  virtual Status Retain(TimeMicros now) = 0;
  // Brings /metrics' snapshot up to what the store holds now, between ticks: Share and Expose on
  // the last tick's instances and runs, nothing polled (ControlLoop::RequestCatchUp). Does
  // nothing unless a stage set provides it.
  virtual Status CatchUp() { return Status::Ok(); }
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
// → AccountGpus → Summarize → Share → Expose; Retain runs after the first tick, then after a tick
// when retention_interval has passed since the last. A failing stage is logged and the others
// still run (AccountGpus, Summarize, Share and Expose are skipped only when Control failed: there
// is no report). Between ticks the thread also runs the catch-ups asked for (RequestCatchUp).
// Time comes from `clock`, so tests drive the loop with a FakeClock through RunDue without the
// thread. Thread-safe: Start/Stop from any thread, stats() from any thread.
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

  // Asks the loop's thread for a ControlStages::CatchUp, run as soon as no tick is in progress,
  // and returns the request's number. Requests made before a catch-up starts share it.
  uint64_t RequestCatchUp() FW_EXCLUDES(mu_);
  // Waits until a catch-up that started after request `number` has ended: true when it
  // succeeded; false when it failed (logged), at `deadline`, and at once when the loop has
  // stopped.
  bool WaitCatchUp(uint64_t number, std::chrono::steady_clock::time_point deadline)
      FW_EXCLUDES(mu_);

 private:
  // One ControlStages::CatchUp, its failure logged; whether it succeeded. The loop's thread,
  // without `mu_`.
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
  std::thread thread_;
};

// The server's stages: the controller, usage accounting, the exposition (null when /metrics is
// off) and metrics retention (points of unfinished jobs older than `running_ttl`, of finished
// ones older than `finished_ttl`). Every reference must outlive it. Not thread-safe (the loop's
// thread).
class ServerStages final : public ControlStages {
 public:
  ServerStages(FleetController& controller, UsageAccountant& usage, ExpositionUpdater* exposition,
               store::Store& store, std::chrono::seconds running_ttl,
               std::chrono::seconds finished_ttl);

  Result<TickReport> Control() override;
  Status AccountUsage() override;
  Status Summarize(const TickReport& report) override;
  Status Share(TickReport& report) override;
  Status Expose(const TickReport& report) override;
  Status Retain(TimeMicros now) override;
  Status AccountGpus(const TickReport& report) override;
  // Share and Expose on the instances and runs of the last report Expose took (nothing before
  // the first).
  Status CatchUp() override;

  // The GPU state ledger (null: none); must outlive this.
  void SetGpuLedger(GpuLedger* ledger) { gpu_ledger_ = ledger; }

  // Another exposition stage, run by Expose after the ExpositionUpdater (when /metrics is on),
  // in the order added; an error is returned after the others ran. Add before the loop starts.
  void AddExposer(std::function<Status(const TickReport&)> exposer);

  // Energy accounting and job summaries (null: none). Set before the loop starts.
  void set_energy(EnergyAccountant* energy) { energy_ = energy; }
  // What other replicas polled, for the exposition (null: none). Set before the loop starts.
  void set_shared_render(SharedRenderState* shared) { shared_render_ = shared; }

 private:
  std::vector<std::function<Status(const TickReport&)>> exposers_;
  FleetController& controller_;
  UsageAccountant& usage_;
  ExpositionUpdater* exposition_;
  EnergyAccountant* energy_ = nullptr;
  SharedRenderState* shared_render_ = nullptr;
  store::Store& store_;
  const TimeMicros running_ttl_;
  const TimeMicros finished_ttl_;
  GpuLedger* gpu_ledger_ = nullptr;
  // The state the last Expose showed: its instances, runs and times (no polls), for CatchUp.
  std::optional<TickReport> last_;
};

}  // namespace fleetwatch::server
