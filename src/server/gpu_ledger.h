#pragma once

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "expose/snapshot.h"
#include "model/entities.h"
#include "model/gpu_reading.h"
#include "server/fleet_controller.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// The state a GPU spends a metrics interval in. Exactly one per GPU and interval; the order is
// store::GpuLedgerEntry::state_seconds'.
enum class GpuState {
  kBusy,          // held by a job, utilization at or above the threshold
  kIdleHeld,      // held by a job, below the threshold, GPU memory in use
  kReservedIdle,  // held by a job, below the threshold, no GPU memory in use
  kFree,          // held by no job
  kUnhealthy,     // unreadable, or marked unhealthy (GpuLedger::SetUnhealthyCheck)
};
inline constexpr std::array<GpuState, store::kGpuStateCount> kAllGpuStates = {
    GpuState::kBusy, GpuState::kIdleHeld, GpuState::kReservedIdle, GpuState::kFree,
    GpuState::kUnhealthy};
// "busy", "idle_held", "reserved_idle", "free", "unhealthy": the `state` label's values.
std::string_view GpuStateName(GpuState state);
// Whether the state is held-but-idle time (idle_held, reserved_idle): the waste.
inline bool IsIdleHeld(GpuState s) {
  return s == GpuState::kIdleHeld || s == GpuState::kReservedIdle;
}

struct GpuLedgerOptions {
  // A held GPU whose utilization is below this (percent) is idle.
  double idle_threshold_percent = 5;
  // The metrics interval: time between two readings of a GPU counts up to twice this, so an
  // unreachable host's silence is never counted as any state.
  TimeMicros metrics_interval = 10'000'000;
};

// The state of one GPU from its reading. `held`: a job holds it; `unhealthy`: something other
// than the reading marks it unhealthy. A reading with `error` set is unhealthy. Utilization not
// reported counts as busy (nothing says it is idle); memory is in use when the reading lists a
// compute process on the GPU or, without a process list, reports memory used above zero. Pure.
GpuState ClassifyGpu(const model::GpuReading& reading, bool held, bool unhealthy,
                     double idle_threshold_percent);

// What GpuLedgerCharges needs to know of one GPU that a job holds.
struct GpuHolding {
  const model::Run* run = nullptr;
  const model::Job* job = nullptr;
};

// Whether a GPU's reading marks it unhealthy beyond its `error` (another component's verdict).
using GpuUnhealthyCheck =
    std::function<bool(std::string_view instance_id, const model::GpuReading& reading)>;

// The ledger charges of one tick at `now`: for each GPU reading of each reached instance, the
// interval since its GPU's accounted time (`marks`, by (instance id, GPU index); a GPU without
// one gets a zero charge that starts its ledger), capped at twice the metrics interval, in the
// state of the reading. A GPU held by an unfinished job placed on it (`report.runs`) carries the
// job's run and (project, user), and the job's cost of the GPU over the interval: the instance's
// price shared by the job's GPUs (nothing until the job has started, as usage.h charges). GPUs
// whose accounted time is at or after `now` are skipped. `unhealthy` may be empty. Pure.
std::vector<store::GpuLedgerCharge> GpuLedgerCharges(
    const TickReport& report, TimeMicros now,
    const std::map<std::pair<std::string, int>, TimeMicros>& marks, const GpuLedgerOptions& options,
    const GpuUnhealthyCheck& unhealthy);

// The GPU state ledger: every tick that brought GPU readings is charged to the store's persisted
// ledger (store::Store::ChargeGpuLedger: per GPU and state, idle GPU time and cost per (project,
// user), hourly GPU time per run), and, when `snapshot` is given, Refresh renders its families
// from the store's totals alone (gpu_ledger_families.h), so that every server replica shows the
// same samples whoever charged them. Each GPU's accounted time is kept in memory, read from the
// store on the first tick and after any failure, so a restart or a second replica never counts an
// interval twice. Not thread-safe: the control loop's thread (SetUnhealthyCheck before the loop
// starts).
class GpuLedger {
 public:
  // Registers the ledger's families in `snapshot` (may be null: /metrics is off); names that are
  // registered already are a programming error and abort. `store` and `snapshot` must outlive it.
  GpuLedger(store::Store& store, expose::ExpositionSnapshot* snapshot, GpuLedgerOptions options);

  // Another component's verdict on a GPU's health, added to the reading's `error`.
  void SetUnhealthyCheck(GpuUnhealthyCheck check) { unhealthy_ = std::move(check); }

  // Charges the tick's readings (nothing when it brought none); what applied is rendered by the
  // next Refresh. Errors: the store's (nothing charged; the marks are read again next time).
  Status Account(const TickReport& report);

  // Renders the families from the store (a no-op without a snapshot) when something may have
  // moved: `moved` (another writer's charge: store::kGpuLedgerKey), this ledger's own charges
  // since the last render, the first call, a failed read, a change of the unfinished runs, and
  // every metrics interval anyway. Errors: the store's (the snapshot keeps what it had; the next
  // call reads again).
  Status Refresh(const TickReport& report, bool moved);

 private:
  Status Render(const TickReport& report);

  store::Store& store_;
  expose::ExpositionSnapshot* snapshot_;
  const GpuLedgerOptions options_;
  GpuUnhealthyCheck unhealthy_;
  std::vector<expose::FamilyId> families_;  // GpuLedgerFamilies() order
  bool marks_loaded_ = false;
  bool dirty_ = true;            // rendered again at the next Refresh
  uint64_t runs_signature_ = 0;  // RunSetSignature of the last render's runs
  TimeMicros rendered_at_ = 0;   // the report time of the last Render
  std::map<std::pair<std::string, int>, TimeMicros> marks_;
};

}  // namespace fleetwatch::server
