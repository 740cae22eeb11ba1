#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "expose/dcgm.h"
#include "expose/family.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::expose {

// Asks for transparent huge pages on the whole 2 MiB pages of a buffer of 32 MiB or more: such
// a body is a fresh mmap whose 4 KiB pages would otherwise fault one by one as a render writes
// them, most of a 240 MB render's time (bench/exposition). Does nothing where the kernel offers
// no THP, or for smaller buffers (heap memory stays mapped between renders). Thread-safe.
void AdviseHugePages(const char* data, size_t size);

// Where a registered family renders. spec/METRICS.md orders a scrape: instance families, run
// families, job families, DCGM families (dynamic, between kJob and kServer), server families.
// Within a section, families render in registration order.
enum class Section { kInstance, kRun, kJob, kServer };

// Identifies a registered family; valid for the snapshot that returned it.
using FamilyId = size_t;

// One change to a family's fragments; an empty fragment removes `key`.
struct FragmentChange {
  FamilyId family;
  std::string key;
  Fragment fragment;
};

// One change to a family's fragments, the fragment already made shared: for a writer that keeps
// what it set, to compare its next text with, without a copy of its own or a look-up here. A null
// or empty fragment removes `key`; the fragment is held as given (not trimmed).
struct SharedFragmentChange {
  FamilyId family;
  std::string key;
  std::shared_ptr<const Fragment> fragment;
};

// One change to a job's DCGM samples (ExpositionSnapshot::ApplyDcgm): `samples` shown under
// `key` by renders at `now` < `expires_at`; empty samples remove `key`.
struct DcgmChange {
  std::string_view key;  // must stay valid during the call
  DcgmSamples samples;
  TimeMicros expires_at = 0;
};

// The in-memory exposition that GET /metrics serves: pre-rendered fragments that ingest and
// state changes set, and that a scrape only concatenates (docs/expose.md).
//
// A fragment belongs to one family and one key (an instance, a job, a project/user pair...);
// fragments of a family render in ascending key order, so a writer picks keys that sort the way
// the spec orders samples (e.g. project name, '\0', job name, '\0', job id). DCGM fragments are
// per key (a job) with an expiry; DCGM families of all keys merge by name, HELP/TYPE from the
// first key that has the family, in first-seen order.
//
// Time-valued samples (Fragment::timed: ages, durations) are the one thing a scrape computes:
// each render evaluates them at its `now` rounded down to the snapshot's time step, from the
// anchors the writer stored. So two snapshots holding the same fragments render the same bytes
// for the same clock reading however long ago each was written, and a later render never shows
// a smaller value than an earlier one, whichever snapshot (server replica) it comes from, as long
// as their clocks agree. A body is cached only for the step it was evaluated in.
//
// Thread-safe: any number of writers and renderers at once. Fragments are immutable and shared,
// so a render holds the lock only to collect pointers, never while writing bytes or compressing;
// a writer waits at most for that collection.
//
// Memory: each series is held once, in its fragment (whose strings are trimmed to their size) or
// its job's DcgmSamples.
// A scrape's body is rendered when asked for and kept only while it is current: a change drops
// the cached bodies it made stale, and a gzip'd body is kept without the plain one it was made
// from (unless plain was asked for too), so between changes the snapshot holds its fragments
// plus the bodies scrapers asked for, and during a scrape one body more.
class ExpositionSnapshot {
 public:
  // The step time-valued samples are evaluated at: 1 s, the resolution of the tick that used to
  // render them, and what lets concurrent scrapes share one body.
  static constexpr TimeMicros kDefaultTimeStep = 1'000'000;

  ExpositionSnapshot() = default;
  // `time_step` > 0 (checked).
  explicit ExpositionSnapshot(TimeMicros time_step);
  ExpositionSnapshot(const ExpositionSnapshot&) = delete;
  ExpositionSnapshot& operator=(const ExpositionSnapshot&) = delete;

  // Registers a family at the end of `section`. InvalidArgument when `name` is not a valid
  // metric name or is already registered.
  Result<FamilyId> RegisterFamily(Section section, std::string name, MetricType type,
                                  std::string help);

  // Sets (replaces) the fragment of `family` under `key`; an empty fragment removes it.
  // `family` must come from RegisterFamily (checked; an unknown id is a bug and aborts).
  void SetFragment(FamilyId family, std::string key, Fragment fragment);
  // The fragment of `family` under `key`, or null when there is none (for a writer that wants to
  // know whether a change would change anything, without keeping a copy of its own).
  std::shared_ptr<const Fragment> GetFragment(FamilyId family, std::string_view key) const;
  void RemoveFragment(FamilyId family, std::string_view key);
  // Applies all `changes` at once: no render sees some of them without the others.
  void Apply(std::vector<FragmentChange> changes);
  // The same for shared fragments.
  void ApplyShared(std::vector<SharedFragmentChange> changes);

  // Sets (replaces) the DCGM families of `key`, shown by renders at `now` < `expires_at`.
  // Empty `samples` remove `key`. Families whose name is registered are never rendered from DCGM
  // (a host cannot shadow ours).
  void SetDcgm(std::string key, DcgmSamples samples, TimeMicros expires_at);
  void RemoveDcgm(std::string_view key);
  // Applies all `changes` at once (SetDcgm, or RemoveDcgm for empty samples): no render sees
  // some of them without the others; one new version when any changes anything.
  void ApplyDcgm(std::vector<DcgmChange> changes);
  // Forgets DCGM fragments expired at `now`; renders skip them anyway, this frees their memory.
  // Cheap while none has expired (it keeps the earliest expiry).
  void DropExpiredDcgm(TimeMicros now);

  // Counts every change; a render reflects one version.
  uint64_t version() const;

  // The whole exposition in `format` as of `now` (which decides DCGM expiry and, rounded down to
  // the time step, the values of time-valued samples): families in section order, each with one
  // HELP and TYPE and its samples contiguous, families without samples omitted, "# EOF" last in
  // OpenMetrics.
  std::string Render(Format format, TimeMicros now) const;
  // The time `now`'s time-valued samples are evaluated at: `now` rounded down to the time step.
  TimeMicros EvaluationTime(TimeMicros now) const;

  // The body to answer a scrape with: Render(format, now), gzip'd (libdeflate level 1) when
  // `gzip`. Cached per (format, gzip) until the next change, the next DCGM expiry or, while the
  // snapshot holds time-valued samples, the end of the time step; concurrent
  // callers wanting the same body wait for one render instead of each doing it. A gzip'd body is
  // made from the cached plain one when that is current, else from a render that is not kept.
  // Never null.
  std::shared_ptr<const std::string> Body(Format format, bool gzip, TimeMicros now) const;

 private:
  using Fragments = std::map<std::string, std::shared_ptr<const Fragment>, std::less<>>;
  struct Slot {
    Section section;
    std::shared_ptr<const FamilyHeader> header;
    Fragments fragments;
  };
  struct DcgmEntry {
    std::shared_ptr<const DcgmSamples> samples;
    TimeMicros expires_at;
  };
  struct Rendered {
    std::string body;
    uint64_t version;
    // The first DCGM expiry after `now`, or the end of its time step when it has timed samples.
    TimeMicros valid_until;
  };
  struct CachedBody {
    std::shared_ptr<const std::string> body;  // null: none
    uint64_t version = 0;
    TimeMicros rendered_at = 0;
    TimeMicros valid_until = 0;

    bool CurrentAt(uint64_t current_version, TimeMicros now) const {
      return body && version == current_version && now >= rendered_at && now < valid_until;
    }
  };
  struct CacheSlot {
    Mutex render_mu;    // held while rendering: one render per cache slot at a time
    CachedBody cached;  // guarded by cache_mu_
  };

  // Sets `fragment` (null or empty: removes the key). `hint`, when given, is where the family's
  // previous change left off: a writer that changes a family's keys in ascending order finds
  // each key there instead of searching the map; it is left after this key.
  void ApplyLocked(FamilyId family, std::string key, std::shared_ptr<const Fragment> fragment,
                   Fragments::iterator* hint = nullptr) FW_REQUIRES(mu_);
  Rendered RenderVersioned(Format format, TimeMicros now) const FW_EXCLUDES(mu_);
  CacheSlot& SlotFor(Format format, bool gzip) const;
  // What the slot holds when it is current at `now`, else an empty CachedBody.
  CachedBody Current(const CacheSlot& slot, TimeMicros now) const;
  // Lets go of the cached bodies older than `version` (called after a change made them stale).
  void DropBodiesBefore(uint64_t version) const;

  mutable Mutex mu_;
  std::vector<Slot> slots_ FW_GUARDED_BY(mu_);      // by FamilyId
  std::vector<FamilyId> order_ FW_GUARDED_BY(mu_);  // render order
  // Registered names; replaced, never changed, so a render can read the set without the lock
  // (the pointer is copied under it).
  std::shared_ptr<const std::unordered_set<std::string>> names_ FW_GUARDED_BY(mu_) =
      std::make_shared<const std::unordered_set<std::string>>();
  std::map<std::string, DcgmEntry, std::less<>> dcgm_ FW_GUARDED_BY(mu_);
  // At most the earliest expires_at in `dcgm_` (DropExpiredDcgm has nothing to do before it).
  TimeMicros earliest_dcgm_expiry_ FW_GUARDED_BY(mu_) = std::numeric_limits<TimeMicros>::max();
  uint64_t version_ FW_GUARDED_BY(mu_) = 0;
  size_t timed_samples_ FW_GUARDED_BY(mu_) = 0;  // in all fragments
  const TimeMicros time_step_ = kDefaultTimeStep;

  mutable std::array<CacheSlot, 4> cache_;  // [format][gzip]
  // Guards the slots' `cached`; held only to swap pointers, never while rendering. Lock order:
  // a slot's render_mu, then mu_ or cache_mu_ (never both at once).
  mutable Mutex cache_mu_;
};

}  // namespace fleetwatch::expose
