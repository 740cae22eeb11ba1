#include "server/control_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>

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
  if (report.ok()) {
    // Runs changed through the API show up in the exposition too, at most one tick late.
    for (const ReportStage& stage : stages_.report_stages()) {
      Warn(stage.name.c_str(), stage.run(*report));
    }
    if (!last_report_) last_report_.emplace();
    last_report_->started_at = report->started_at;
    last_report_->ended_at = report->ended_at;
    last_report_->instances = std::move(report->instances);
    last_report_->runs = std::move(report->runs);
    last_report_->state_generation = report->state_generation;
  }
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
  if (!last_report_) return true;
  try {
    TickReport report;
    report.started_at = last_report_->started_at;
    report.ended_at = last_report_->ended_at;
    report.instances = last_report_->instances;
    report.runs = last_report_->runs;
    report.state_generation = last_report_->state_generation;
    bool ok = true;
    for (const ReportStage& stage : stages_.report_stages()) {
      if (!stage.on_catch_up) continue;
      Status s = stage.run(report);
      if (!s.ok()) {
        spdlog::warn("metrics catch-up: {}: {}", stage.name, s.ToString());
        ok = false;
      }
    }
    return ok;
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

ServerStages::ServerStages(FleetController& controller, UsageAccountant& usage, store::Store& store,
                           std::chrono::seconds running_ttl, std::chrono::seconds finished_ttl)
    : controller_(controller),
      usage_(usage),
      store_(store),
      running_ttl_(std::chrono::duration_cast<std::chrono::microseconds>(running_ttl).count()),
      finished_ttl_(std::chrono::duration_cast<std::chrono::microseconds>(finished_ttl).count()) {}

Result<TickReport> ServerStages::Control() { return controller_.Tick(); }

Status ServerStages::AccountUsage() { return usage_.Account(); }

void ServerStages::AddReportStage(std::string name, std::function<Status(TickReport&)> run,
                                  bool on_catch_up) {
  report_stages_.push_back(ReportStage{std::move(name), std::move(run), on_catch_up});
}

Status ServerStages::Retain(TimeMicros now) {
  FW_ASSIGN_OR_RETURN(int64_t deleted,
                      store_.DeleteJobMetricsPoints(now - running_ttl_, now - finished_ttl_));
  if (deleted > 0) spdlog::info("metrics retention: deleted {} points", deleted);
  return Status::Ok();
}

}  // namespace fleetwatch::server
