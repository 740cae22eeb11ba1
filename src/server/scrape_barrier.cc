#include "server/scrape_barrier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>

#include "expose/text_format.h"
#include "server/server_families.h"

namespace fleetwatch::server {
namespace {

const std::vector<ServerFamily>& BarrierFamilies() {
  using expose::MetricType;
  using expose::Section;
  static const std::vector<ServerFamily> families = {
      {Section::kServer, "fleetwatch_scrape_barrier_scrapes_total", MetricType::kCounter,
       "Scrapes of /metrics that waited until this replica showed every change committed before "
       "they began"},
      {Section::kServer, "fleetwatch_scrape_barrier_expired_total", MetricType::kCounter,
       "Scrapes of /metrics answered at the barrier's deadline, with what this replica showed"},
      {Section::kServer, "fleetwatch_scrape_barrier_wait_seconds_total", MetricType::kCounter,
       "Time scrapes of /metrics waited for the barrier, seconds"},
  };
  return families;
}

}  // namespace

ScrapeBarrier::ScrapeBarrier(expose::ExpositionSnapshot& replica, ScrapeBarrierOptions options)
    : replica_(replica),
      options_(options),
      families_(RegisterFamilies(replica, BarrierFamilies())) {
  Render();
  thread_ = std::thread([this] { Run(); });
}

ScrapeBarrier::~ScrapeBarrier() { Stop(); }

void ScrapeBarrier::Attach(store::ChangeListener& listener, ControlLoop& loop,
                           std::function<bool()> others_live) {
  MutexLock lock(mu_);
  listener_ = &listener;
  loop_ = &loop;
  others_live_ = std::move(others_live);
}

bool ScrapeBarrier::Needed() {
  std::function<bool()> others_live;
  {
    MutexLock lock(mu_);
    if (listener_ == nullptr || stopping_) return false;
    others_live = others_live_;
  }
  return others_live && others_live();
}

void ScrapeBarrier::Await(std::function<void(bool reached)> serve) {
  {
    MutexLock lock(mu_);
    if (!stopping_) {
      waiting_.push_back(Waiter{std::chrono::steady_clock::now(), std::move(serve)});
      cv_.NotifyAll();
      return;
    }
  }
  serve(false);
}

void ScrapeBarrier::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
  std::deque<Waiter> left;
  {
    MutexLock lock(mu_);
    left.swap(waiting_);
  }
  for (Waiter& w : left) w.serve(false);
}

ScrapeBarrierStats ScrapeBarrier::stats() {
  MutexLock lock(mu_);
  return stats_;
}

bool ScrapeBarrier::Reach(store::ChangeListener& listener, ControlLoop& loop,
                          std::chrono::steady_clock::time_point deadline) {
  const uint64_t barrier = listener.RequestBarrier();
  if (!listener.WaitBarrier(barrier, deadline)) return false;
  // The keys up to the barrier are gathered: a catch-up that starts now takes them.
  const uint64_t catch_up = loop.RequestCatchUp();
  return loop.WaitCatchUp(catch_up, deadline);
}

void ScrapeBarrier::Run() {
  MutexLock lock(mu_);
  while (true) {
    while (!stopping_ && waiting_.empty()) cv_.Wait(mu_);
    if (stopping_) return;
    // This round: the scrapes waiting now; those that arrive meanwhile need the next barrier.
    std::deque<Waiter> round;
    round.swap(waiting_);
    store::ChangeListener* listener = listener_;
    ControlLoop* loop = loop_;
    lock.Unlock();
    auto deadline = round.front().since + options_.deadline;
    for (const Waiter& w : round) deadline = std::min(deadline, w.since + options_.deadline);
    const bool reached =
        listener != nullptr && loop != nullptr && Reach(*listener, *loop, deadline);
    const auto now = std::chrono::steady_clock::now();
    double waited = 0;
    for (const Waiter& w : round) waited += std::chrono::duration<double>(now - w.since).count();
    if (!reached) {
      spdlog::debug("metrics barrier not reached by its deadline: {} scrapes answered as they are",
                    round.size());
    }
    // Counted before they are served, so whoever sees a scrape answered also sees it counted.
    lock.Lock();
    stats_.scrapes += round.size();
    stats_.rounds += 1;
    if (!reached) stats_.expired += round.size();
    stats_.wait_seconds += waited;
    lock.Unlock();
    for (Waiter& w : round) w.serve(reached);
    Render();
    lock.Lock();
  }
}

void ScrapeBarrier::Render() {
  const ScrapeBarrierStats s = stats();
  const double values[] = {static_cast<double>(s.scrapes), static_cast<double>(s.expired),
                           s.wait_seconds};
  std::vector<expose::FragmentChange> changes;
  for (size_t k = 0; k < families_.size(); ++k) {
    std::string text;
    expose::AppendSample(text, BarrierFamilies()[k].name, "", values[k]);
    changes.push_back({families_[k], "all", expose::Fragment{std::move(text), {}}});
  }
  replica_.Apply(std::move(changes));
}

}  // namespace fleetwatch::server
