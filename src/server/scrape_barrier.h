#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "expose/snapshot.h"
#include "server/control_loop.h"
#include "store/change_listener.h"
#include "util/mutex.h"

namespace fleetwatch::server {

struct ScrapeBarrierOptions {
  // A scrape waits at most this long for the barrier; then it is answered with what the snapshot
  // has (and counted as expired).
  std::chrono::milliseconds deadline{2000};
};

// What a ScrapeBarrier has done so far. Plain data.
struct ScrapeBarrierStats {
  uint64_t scrapes = 0;     // scrapes that waited for a barrier
  uint64_t rounds = 0;      // barriers run (scrapes that arrive during one share the next)
  uint64_t expired = 0;     // scrapes answered at their deadline, the barrier not reached
  double wait_seconds = 0;  // the scrapes' waits, summed
};

// Makes a scrape of GET /metrics on a server replica show every change committed to the database
// before the scrape began, whichever replica committed it (docs/scale-out.md "/metrics on every
// replica"), so that counters scraped from replicas in turn never go back. For each round of
// scrapes waiting, on a thread of its own (never an HTTP I/O thread):
//  1. a barrier of the change listener (ChangeListener::RequestBarrier): once it has passed, the
//     keys of every change committed before the round began are gathered, and
//  2. a catch-up of the control loop (ControlLoop::RequestCatchUp: Share and Expose of the keys
//     gathered, and the counters read from the store again),
// then every scrape of the round is answered from the snapshot. A scrape not served by its
// deadline (a slow database, a long tick), or whose catch-up failed (a store error), is answered
// with what the snapshot has and counted as expired. Its figures go to the replica snapshot (GET
// /metrics/replica): fleetwatch_scrape_barrier_scrapes_total,
// fleetwatch_scrape_barrier_expired_total and fleetwatch_scrape_barrier_wait_seconds_total. Before
// Attach, and while no other replica is live, scrapes need no barrier (Needed). Thread-safe; the
// destructor stops the thread, answering the scrapes still waiting.
class ScrapeBarrier {
 public:
  // Registers its families in `replica` (a clash is a programming error and aborts), which must
  // outlive it. Starts its thread.
  ScrapeBarrier(expose::ExpositionSnapshot& replica, ScrapeBarrierOptions options);
  ~ScrapeBarrier();
  ScrapeBarrier(const ScrapeBarrier&) = delete;
  ScrapeBarrier& operator=(const ScrapeBarrier&) = delete;

  // What the rounds use from now on; `listener` and `loop` must outlive the barrier (or Stop);
  // `others_live` says whether other replicas are live (called on the barrier's thread and by
  // Needed).
  void Attach(store::ChangeListener& listener, ControlLoop& loop, std::function<bool()> others_live)
      FW_EXCLUDES(mu_);

  // Whether a scrape now must wait for a barrier: attached and other replicas live.
  bool Needed() FW_EXCLUDES(mu_);

  // Calls `serve` on the barrier's thread once the snapshot reflects every change committed
  // before this call (true), or at the deadline (false); at once (false) when stopped.
  void Await(std::function<void(bool reached)> serve) FW_EXCLUDES(mu_);

  // Ends the thread after answering the scrapes waiting (false). Idempotent.
  void Stop() FW_EXCLUDES(mu_);

  ScrapeBarrierStats stats() FW_EXCLUDES(mu_);

 private:
  struct Waiter {
    std::chrono::steady_clock::time_point since;
    std::function<void(bool)> serve;
  };
  void Run() FW_EXCLUDES(mu_);
  // Runs one round's barrier and catch-up; true when reached by `deadline`.
  bool Reach(store::ChangeListener& listener, ControlLoop& loop,
             std::chrono::steady_clock::time_point deadline);
  void Render() FW_EXCLUDES(mu_);

  expose::ExpositionSnapshot& replica_;
  const ScrapeBarrierOptions options_;
  std::vector<expose::FamilyId> families_;
  Mutex mu_;
  CondVar cv_;
  bool stopping_ FW_GUARDED_BY(mu_) = false;
  store::ChangeListener* listener_ FW_GUARDED_BY(mu_) = nullptr;
  ControlLoop* loop_ FW_GUARDED_BY(mu_) = nullptr;
  std::function<bool()> others_live_ FW_GUARDED_BY(mu_);
  std::deque<Waiter> waiting_ FW_GUARDED_BY(mu_);
  ScrapeBarrierStats stats_ FW_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace fleetwatch::server
