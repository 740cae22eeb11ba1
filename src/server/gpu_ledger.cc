#include "server/gpu_ledger.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "server/energy_families.h"
#include "server/gpu_ledger_families.h"

namespace fleetwatch::server {
namespace {

// Unfinished jobs placed on an instance hold the GPUs assigned to them.
bool Holds(const model::Job& job) {
  switch (job.status) {
    case model::JobStatus::kProvisioning:
    case model::JobStatus::kPulling:
    case model::JobStatus::kRunning:
    case model::JobStatus::kTerminating:
      return job.instance_id.has_value();
    default:
      return false;
  }
}

}  // namespace

std::string_view GpuStateName(GpuState state) {
  switch (state) {
    case GpuState::kBusy:
      return "busy";
    case GpuState::kIdleHeld:
      return "idle_held";
    case GpuState::kReservedIdle:
      return "reserved_idle";
    case GpuState::kFree:
      return "free";
    case GpuState::kUnhealthy:
      return "unhealthy";
  }
  return "unhealthy";
}

GpuState ClassifyGpu(const model::GpuReading& reading, bool held, bool unhealthy,
                     double idle_threshold_percent) {
  if (unhealthy || !reading.error.empty()) return GpuState::kUnhealthy;
  if (!held) return GpuState::kFree;
  if (!reading.util_percent ||
      static_cast<double>(*reading.util_percent) >= idle_threshold_percent) {
    return GpuState::kBusy;
  }
  const bool memory_in_use =
      reading.processes ? !reading.processes->empty() : reading.memory_used_bytes.value_or(0) > 0;
  return memory_in_use ? GpuState::kIdleHeld : GpuState::kReservedIdle;
}

std::vector<store::GpuLedgerCharge> GpuLedgerCharges(
    const TickReport& report, TimeMicros now,
    const std::map<std::pair<std::string, int>, TimeMicros>& marks, const GpuLedgerOptions& options,
    const GpuUnhealthyCheck& unhealthy) {
  std::vector<store::GpuLedgerCharge> charges;
  // (instance id, GPU index) → the job holding it; only instances with readings matter.
  std::map<std::pair<std::string_view, int>, GpuHolding> holders;
  for (const model::Run& run : report.runs) {
    for (const model::Job& job : run.jobs) {
      if (!Holds(job)) continue;
      for (int gpu : job.gpu_indices) holders[{*job.instance_id, gpu}] = GpuHolding{&run, &job};
    }
  }
  std::unordered_map<std::string_view, const model::Instance*> instances;
  for (const model::Instance& i : report.instances) instances[i.id] = &i;
  const TimeMicros cap = 2 * std::max<TimeMicros>(0, options.metrics_interval);

  for (const auto& [instance_id, observation] : report.observations) {
    if (!observation.reached || !observation.poll.gpus) continue;
    auto instance = instances.find(instance_id);
    if (instance == instances.end()) continue;  // deleted meanwhile
    for (const model::GpuReading& reading : *observation.poll.gpus) {
      store::GpuLedgerCharge charge;
      charge.instance_id = instance_id;
      charge.gpu = reading.index;
      auto mark = marks.find({instance_id, reading.index});
      TimeMicros from = now;
      if (mark != marks.end()) {
        if (mark->second >= now) continue;
        charge.accounted_until = mark->second;
        from = std::max(mark->second, now - cap);
      }
      charge.new_accounted_until = now;
      charge.seconds = static_cast<double>(now - from) / 1e6;
      auto holder = holders.find({instance_id, reading.index});
      const bool held = holder != holders.end();
      const bool marked = unhealthy && unhealthy(instance_id, reading);
      const GpuState state = ClassifyGpu(reading, held, marked, options.idle_threshold_percent);
      charge.state = static_cast<int>(state);
      if (held) {
        const model::Run& run = *holder->second.run;
        const model::Job& job = *holder->second.job;
        store::GpuHolder h;
        h.project_name = run.project_name;
        h.user_name = run.user_name;
        h.run_id = run.id;
        h.run_name = run.run_name;
        h.idle = IsIdleHeld(state);
        const double price = std::max(0.0, instance->second->price.value_or(0.0));
        if (job.started_at && !job.gpu_indices.empty()) {
          // Only the part of the interval after the job started costs anything (usage.h).
          const double billed = static_cast<double>(now - std::max(from, *job.started_at)) / 1e6;
          h.cost_dollars =
              price / 3600.0 * std::max(0.0, billed) / static_cast<double>(job.gpu_indices.size());
        }
        charge.holder = std::move(h);
      }
      charges.push_back(std::move(charge));
    }
  }
  return charges;
}

GpuLedger::GpuLedger(store::Store& store, expose::ExpositionSnapshot* snapshot,
                     GpuLedgerOptions options)
    : store_(store), snapshot_(snapshot), options_(options) {
  if (snapshot_ != nullptr) families_ = RegisterFamilies(*snapshot_, GpuLedgerFamilies());
}

Status GpuLedger::Account(const TickReport& report) {
  if (!marks_loaded_) {
    FW_ASSIGN_OR_RETURN(std::vector<store::GpuLedgerEntry> entries, store_.ListGpuLedger());
    marks_.clear();
    for (const store::GpuLedgerEntry& e : entries) {
      marks_[{e.instance_id, e.gpu}] = e.accounted_until;
    }
    marks_loaded_ = true;
  }
  const TimeMicros now = report.started_at;
  std::vector<store::GpuLedgerCharge> charges =
      GpuLedgerCharges(report, now, marks_, options_, unhealthy_);
  if (charges.empty()) return Status::Ok();
  Result<int> applied = store_.ChargeGpuLedger(charges);
  if (applied.ok() && *applied > 0) dirty_ = true;
  if (!applied.ok() || *applied != static_cast<int>(charges.size())) {
    // Another writer charged some GPU meanwhile (or the store failed): read the marks again.
    marks_loaded_ = false;
  } else {
    for (const store::GpuLedgerCharge& c : charges) {
      marks_[{c.instance_id, c.gpu}] = c.new_accounted_until;
    }
  }
  return applied.status();
}

Status GpuLedger::Refresh(const TickReport& report, bool moved) {
  if (snapshot_ == nullptr) return Status::Ok();
  const uint64_t signature = RunSetSignature(report.runs);
  dirty_ |= moved || signature != runs_signature_ ||
            report.started_at - rendered_at_ >= options_.metrics_interval;
  if (!dirty_) return Status::Ok();
  FW_RETURN_IF_ERROR(Render(report));
  dirty_ = false;
  runs_signature_ = signature;
  return Status::Ok();
}

Status GpuLedger::Render(const TickReport& report) {
  GpuLedgerTotals totals;
  FW_ASSIGN_OR_RETURN(totals.ledger, store_.ListGpuLedger());
  FW_ASSIGN_OR_RETURN(totals.idle, store_.ListGpuIdleTotals());
  std::vector<std::string> run_ids;
  run_ids.reserve(report.runs.size());
  for (const model::Run& r : report.runs) run_ids.push_back(r.id);
  FW_ASSIGN_OR_RETURN(totals.runs, store_.ListRunGpuTime(run_ids));
  std::vector<std::string> texts = RenderGpuLedgerFamilies(totals, report.instances, report.runs);
  std::vector<expose::FragmentChange> changes;
  for (size_t k = 0; k < texts.size(); ++k) {
    changes.push_back(
        expose::FragmentChange{families_[k], "", expose::Fragment{std::move(texts[k]), {}}});
  }
  snapshot_->Apply(std::move(changes));
  rendered_at_ = report.started_at;
  return Status::Ok();
}

}  // namespace fleetwatch::server
