#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "server/fleet_controller.h"
#include "store/change_listener.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

struct SharedRenderOptions {
  // A full resync this often, beside the one at the start and after the listener reconnects.
  std::chrono::milliseconds resync_interval{60'000};
  // DCGM texts are read from the store in batches of this many hosts (bounds a read's memory).
  size_t read_batch = 64;
};

// What SharedRenderState has done so far. Plain data.
struct SharedRenderStats {
  uint64_t texts_written = 0;  // DCGM texts this replica stored
  uint64_t bytes_written = 0;  // their text bytes
  uint64_t texts_read = 0;     // other replicas' DCGM texts read and handed to the exposition
  uint64_t bytes_read = 0;
  uint64_t points_read = 0;  // other replicas' newest job points handed to the exposition
  uint64_t queries = 0;      // store calls made (writes and reads)
  uint64_t resyncs = 0;      // full reads (the first, after a listener reconnect, periodic)
};

// Makes every replica's /metrics show the whole fleet (docs/scale-out.md). Each replica polls only
// the hosts it leases; Share, run on each tick's report before the exposition takes it:
//  1. stores this replica's DCGM texts of the tick (Store::WriteHostDcgm; only texts that changed
//     since it last stored that host's; texts PostgreSQL cannot hold are left out), and
//  2. adds to the report the DCGM texts (TickReport::dcgm) and newest job points
//     (TickReport::stored_points) that other replicas stored since it last looked, so that the
//     exposition takes them as if this replica had polled those hosts. Job points are in the
//     store already (AddJobMetricsPoints); only their keys travel.
// The totals keys that arrive (store::kTotalsChannel) are kept for TakeMovedTotals.
// What moved is told by the listener's notifications ("<id>@<version>" keys, store.h), so only
// texts and points newer than what it has are read; everything is compared again (the versions
// of every text, the newest point of every unfinished job) at the first Share, when the listener
// says resync (it reconnected), every `resync_interval`, and after a failed read. Nothing older
// than what a host's text or a job's point already is goes into a report. At each periodic resync
// it logs what it wrote and read since the last (the load it adds to the database).
// Not thread-safe but for stats(): Share runs on the control loop's thread.
class SharedRenderState {
 public:
  // `store`, `listener` and `clock` must outlive it.
  SharedRenderState(store::Store& store, store::ChangeListener& listener, const Clock& clock,
                    SharedRenderOptions options = {});

  // Errors: the store's (a failed write is reported after the reads still ran; a failed read
  // leaves the report as far as it got and makes the next Share resync).
  Status Share(TickReport& report);

  // The keys of store::kTotalsChannel (kGpuLedgerKey, kEnergyKey) that arrived with the
  // notifications the Shares since the last call took (all of them after a resync): which totals
  // the families rendered from the store must read again. The loop's thread.
  std::set<std::string> TakeMovedTotals() { return std::exchange(moved_totals_, {}); }

  SharedRenderStats stats() const FW_EXCLUDES(mu_);

 private:
  // Stores the report's own texts that changed.
  Status WriteOwn(const TickReport& report);
  // Adds other replicas' texts of `instance_ids` (versions not yet seen) to the report.
  Status ReadTexts(const std::vector<std::string>& instance_ids, TickReport& report);
  // Adds the newest points of `job_ids` newer than what is known to the report.
  void AddPoints(std::vector<model::JobMetricsPoint> points, TickReport& report);
  void Count(uint64_t SharedRenderStats::*field, uint64_t n) FW_EXCLUDES(mu_);
  // Logs what was written and read since the last call (at each resync but the first).
  void LogLoad(TimeMicros now) FW_EXCLUDES(mu_);

  store::Store& store_;
  store::ChangeListener& listener_;
  const Clock& clock_;
  const SharedRenderOptions options_;
  // The loop's thread only.
  bool resync_due_ = true;
  TimeMicros next_resync_ = 0;
  std::unordered_map<std::string, int64_t> versions_;  // instance id → text version it has
  // Instance id → newest collected_at handed on (its own or read) / stored by this replica.
  std::unordered_map<std::string, TimeMicros> newest_text_;
  std::unordered_map<std::string, std::pair<std::optional<TimeMicros>, std::string>> written_;
  std::unordered_map<std::string, TimeMicros> newest_point_;  // job id → newest point handed on
  std::set<std::string> moved_totals_;                        // for TakeMovedTotals
  SharedRenderStats logged_;                                  // as of the last LogLoad
  TimeMicros logged_at_ = 0;
  mutable Mutex mu_;
  SharedRenderStats stats_ FW_GUARDED_BY(mu_);
};

}  // namespace fleetwatch::server
