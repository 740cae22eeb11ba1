#include "server/control_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "server/energy_accountant.h"
#include "server/exposition_updater.h"
#include "server/gpu_ledger.h"
#include "server/shared_render_state.h"
#include "server/usage.h"

namespace fleetwatch::server {
namespace {

TimeMicros Micros(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

void Warn(const char* stage, const Status& s) {
  if (!s.ok()) spdlog::warn("{}: {}", stage, s.ToString());
}

}  // namespace

ControlLoop::ControlLoop(ControlStages& stages, const Clock& clock, ControlLoopOptions options)
    : stages_(stages), clock_(clock), options_(options) {}

ControlLoop::~ControlLoop() { Stop(); }

TimeMicros ControlLoop::RunDue() {
  const TimeMicros interval = std::max<TimeMicros>(1, Micros(options_.tick_interval));
  const TimeMicros start = clock_.Now();
  if (started_ && start < next_beat_) return next_beat_;
  if (!started_) {
    started_ = true;
    first_start_ = start;
    next_beat_ = start;
    next_usage_ = start;
    next_retention_ = start;
  }

  Result<TickReport> report = stages_.Control();
  Warn("fleet controller", report.status());
  if (start >= next_usage_) {
    next_usage_ = start + Micros(options_.usage_interval);
    Warn("usage accounting", stages_.AccountUsage());
  }
  if (report.ok()) Warn("GPU state ledger", stages_.AccountGpus(*report));
  if (report.ok()) Warn("energy and job summaries", stages_.Summarize(*report));
  if (report.ok()) Warn("shared render state", stages_.Share(*report));
  // Runs changed through the API show up here too, at most one tick late.
  if (report.ok()) Warn("metrics exposition", stages_.Expose(*report));
  if (start >= next_retention_) {
    next_retention_ = start + Micros(options_.retention_interval);
    Warn("metrics retention", stages_.Retain(start));
  }

  const TimeMicros end = clock_.Now();
  // The next beat on the grid after this one that has not passed yet; those in between are
  // skipped.
  const TimeMicros beat = next_beat_;
  TimeMicros next = beat + interval;
  uint64_t skipped = 0;
  if (end >= next) {
    const TimeMicros missed = (end - beat) / interval;  // beats at or before `end`, after `beat`
    skipped = static_cast<uint64_t>(missed);
    next = beat + (missed + 1) * interval;
  }
  next_beat_ = next;
  {
    MutexLock lock(mu_);
    ++stats_.ticks;
    stats_.skipped_beats += skipped;
    stats_.last_tick_micros = end - start;
    stats_.last_start = start;
    stats_.mean_period_micros =
        stats_.ticks > 1 ? (start - first_start_) / static_cast<TimeMicros>(stats_.ticks - 1) : 0;
  }
  return next_beat_;
}

void ControlLoop::Start() {
  {
    MutexLock lock(mu_);
    running_ = true;
  }
  thread_ = std::thread([this] {
    MutexLock lock(mu_);
    while (!stopping_) {
      lock.Unlock();
      TimeMicros next = 0;
      try {
        next = RunDue();
      } catch (const std::exception& e) {
        spdlog::error("control loop: {}", e.what());
        next = clock_.Now() + Micros(options_.tick_interval);
      }
      lock.Lock();
      const auto deadline = std::chrono::steady_clock::now() +
                            std::chrono::microseconds(std::max<TimeMicros>(0, next - clock_.Now()));
      while (!stopping_) {
        if (catch_ups_requested_ != catch_ups_done_) {
          // Between ticks: the catch-ups asked for so far, in one.
          const uint64_t serving = catch_ups_requested_;
          lock.Unlock();
          const bool ok = RunCatchUp();
          lock.Lock();
          catch_ups_done_ = serving;
          if (ok) catch_ups_ok_ = serving;
          cv_.NotifyAll();
          continue;
        }
        if (!cv_.WaitUntil(mu_, deadline)) break;
      }
    }
    running_ = false;
    cv_.NotifyAll();
  });
}

bool ControlLoop::RunCatchUp() {
  try {
    Status s = stages_.CatchUp();
    Warn("metrics catch-up", s);
    return s.ok();
  } catch (const std::exception& e) {
    spdlog::error("control loop: metrics catch-up: {}", e.what());
    return false;
  }
}

uint64_t ControlLoop::RequestCatchUp() {
  uint64_t number = 0;
  {
    MutexLock lock(mu_);
    number = ++catch_ups_requested_;
  }
  cv_.NotifyAll();
  return number;
}

bool ControlLoop::WaitCatchUp(uint64_t number, std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(mu_);
  while (catch_ups_done_ < number) {
    if (stopping_ || !running_ || !cv_.WaitUntil(mu_, deadline)) break;
  }
  return catch_ups_ok_ >= number;
}

void ControlLoop::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

ControlLoopStats ControlLoop::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

ServerStages::ServerStages(FleetController& controller, UsageAccountant& usage,
                           ExpositionUpdater* exposition, store::Store& store,
                           std::chrono::seconds running_ttl, std::chrono::seconds finished_ttl)
    : controller_(controller),
      usage_(usage),
      exposition_(exposition),
      store_(store),
      running_ttl_(std::chrono::duration_cast<std::chrono::microseconds>(running_ttl).count()),
      finished_ttl_(std::chrono::duration_cast<std::chrono::microseconds>(finished_ttl).count()) {}

Result<TickReport> ServerStages::Control() { return controller_.Tick(); }

Status ServerStages::AccountUsage() { return usage_.Account(); }

Status ServerStages::AccountGpus(const TickReport& report) {
  return gpu_ledger_ != nullptr ? gpu_ledger_->Account(report) : Status::Ok();
}

Status ServerStages::Summarize(const TickReport& report) {
  return energy_ != nullptr ? energy_->Update(report) : Status::Ok();
}

Status ServerStages::Share(TickReport& report) {
  return shared_render_ != nullptr ? shared_render_->Share(report) : Status::Ok();
}

Status ServerStages::CatchUp() {
  if (!last_) return Status::Ok();
  TickReport report;
  report.started_at = last_->started_at;
  report.ended_at = last_->ended_at;
  report.instances = last_->instances;
  report.runs = last_->runs;
  report.state_generation = last_->state_generation;
  Status shared = Share(report);
  Status exposed = Expose(report);
  return shared.ok() ? exposed : shared;
}

Status ServerStages::Expose(const TickReport& report) {
  if (!last_) last_.emplace();
  last_->started_at = report.started_at;
  last_->ended_at = report.ended_at;
  last_->instances = report.instances;
  last_->runs = report.runs;
  last_->state_generation = report.state_generation;
  Status status = exposition_ != nullptr ? exposition_->Update(report) : Status::Ok();
  for (const auto& exposer : exposers_) {
    Status s = exposer(report);
    if (status.ok()) status = std::move(s);
  }
  return status;
}

void ServerStages::AddExposer(std::function<Status(const TickReport&)> exposer) {
  exposers_.push_back(std::move(exposer));
}

Status ServerStages::Retain(TimeMicros now) {
  FW_ASSIGN_OR_RETURN(int64_t deleted,
                      store_.DeleteJobMetricsPoints(now - running_ttl_, now - finished_ttl_));
  if (deleted > 0) spdlog::info("metrics retention: deleted {} points", deleted);
  return Status::Ok();
}

}  // namespace fleetwatch::server
