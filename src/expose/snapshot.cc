#include "expose/snapshot.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "expose/gzip.h"
#include "util/check.h"

namespace fleetwatch::expose {

void AdviseHugePages(const char* data, size_t size) {
  constexpr size_t kHuge = size_t{2} << 20;
  if (size < 16 * kHuge) return;  // heap-sized bodies keep their pages mapped between renders
  uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

namespace {

// The bytes a timed sample's value and line end take at most ("-1.2345678901234567e+308\n").
constexpr size_t kTimedValueBytes = 26;

}  // namespace

ExpositionSnapshot::ExpositionSnapshot(TimeMicros time_step) : time_step_(time_step) {
  FW_CHECK(time_step > 0, "a snapshot's time step must be positive");
}

TimeMicros ExpositionSnapshot::EvaluationTime(TimeMicros now) const {
  TimeMicros at = now - now % time_step_;
  if (now < 0 && now % time_step_ != 0) at -= time_step_;
  return at;
}

Result<FamilyId> ExpositionSnapshot::RegisterFamily(Section section, std::string name,
                                                    MetricType type, std::string help) {
  if (!IsValidMetricName(name)) return InvalidArgument("invalid metric name \"" + name + "\"");
  MutexLock lock(mu_);
  if (names_->contains(name)) return InvalidArgument("family " + name + " is already registered");
  auto names = std::make_shared<std::unordered_set<std::string>>(*names_);
  names->insert(name);
  names_ = std::move(names);
  const FamilyId id = slots_.size();
  slots_.push_back(Slot{
      section, std::make_shared<const FamilyHeader>(std::move(name), type, std::move(help)), {}});
  // Stable: after every family of the same or an earlier section.
  auto pos = order_.begin();
  while (pos != order_.end() && slots_[*pos].section <= section) ++pos;
  order_.insert(pos, id);
  ++version_;
  return id;
}

void ExpositionSnapshot::ApplyLocked(FamilyId family, std::string key,
                                     std::shared_ptr<const Fragment> fragment,
                                     Fragments::iterator* hint) {
  FW_CHECK(family < slots_.size(), "a family id that RegisterFamily did not return");
  Fragments& fragments = slots_[family].fragments;
  const bool hit = hint != nullptr && *hint != fragments.end() && (*hint)->first == key;
  const auto it = hit ? *hint : fragments.find(key);
  if (it != fragments.end()) timed_samples_ -= it->second->timed.size();
  if (!fragment || fragment->empty()) {
    if (it != fragments.end()) {
      const auto next = fragments.erase(it);
      if (hint != nullptr) *hint = next;
    }
    return;
  }
  timed_samples_ += fragment->timed.size();
  auto at = it;
  if (at != fragments.end()) {
    at->second = std::move(fragment);
  } else {
    at = fragments.emplace(std::move(key), std::move(fragment)).first;
  }
  if (hint != nullptr) *hint = std::next(at);
}

void ExpositionSnapshot::SetFragment(FamilyId family, std::string key, Fragment fragment) {
  fragment.ShrinkToFit();
  uint64_t version = 0;
  {
    MutexLock lock(mu_);
    ApplyLocked(family, std::move(key), std::make_shared<const Fragment>(std::move(fragment)));
    version = ++version_;
  }
  DropBodiesBefore(version);
}

std::shared_ptr<const Fragment> ExpositionSnapshot::GetFragment(FamilyId family,
                                                                std::string_view key) const {
  MutexLock lock(mu_);
  FW_CHECK(family < slots_.size(), "a family id that RegisterFamily did not return");
  const auto& fragments = slots_[family].fragments;
  const auto it = fragments.find(key);
  return it == fragments.end() ? nullptr : it->second;
}

void ExpositionSnapshot::RemoveFragment(FamilyId family, std::string_view key) {
  uint64_t version = 0;
  {
    MutexLock lock(mu_);
    FW_CHECK(family < slots_.size(), "a family id that RegisterFamily did not return");
    auto& fragments = slots_[family].fragments;
    const auto it = fragments.find(key);
    if (it == fragments.end()) return;  // nothing changes: keep the cached bodies
    timed_samples_ -= it->second->timed.size();
    fragments.erase(it);
    version = ++version_;
  }
  DropBodiesBefore(version);
}

void ExpositionSnapshot::Apply(std::vector<FragmentChange> changes) {
  std::vector<SharedFragmentChange> shared;
  shared.reserve(changes.size());
  for (FragmentChange& c : changes) {
    std::shared_ptr<const Fragment> fragment;
    if (!c.fragment.empty()) {
      c.fragment.ShrinkToFit();
      fragment = std::make_shared<const Fragment>(std::move(c.fragment));
    }
    shared.push_back({c.family, std::move(c.key), std::move(fragment)});
  }
  ApplyShared(std::move(shared));
}

void ExpositionSnapshot::ApplyShared(std::vector<SharedFragmentChange> changes) {
  uint64_t version = 0;
  {
    MutexLock lock(mu_);
    // By family: where its previous change left off (see ApplyLocked).
    std::vector<Fragments::iterator> hints;
    hints.reserve(slots_.size());
    for (Slot& slot : slots_) hints.push_back(slot.fragments.end());
    for (SharedFragmentChange& c : changes) {
      FW_CHECK(c.family < slots_.size(), "a family id that RegisterFamily did not return");
      ApplyLocked(c.family, std::move(c.key), std::move(c.fragment), &hints[c.family]);
    }
    version = ++version_;
  }
  DropBodiesBefore(version);
}

void ExpositionSnapshot::SetDcgm(std::string key, DcgmSamples samples, TimeMicros expires_at) {
  if (samples.empty()) {
    RemoveDcgm(key);
    return;
  }
  auto shared = std::make_shared<const DcgmSamples>(std::move(samples));
  std::shared_ptr<const DcgmSamples> replaced;  // freed after the lock is released
  uint64_t version = 0;
  {
    MutexLock lock(mu_);
    auto [it, inserted] = dcgm_.try_emplace(std::move(key));
    replaced = std::move(it->second.samples);
    it->second = DcgmEntry{std::move(shared), expires_at};
    earliest_dcgm_expiry_ = std::min(earliest_dcgm_expiry_, expires_at);
    version = ++version_;
  }
  DropBodiesBefore(version);
}

void ExpositionSnapshot::ApplyDcgm(std::vector<DcgmChange> changes) {
  std::vector<std::shared_ptr<const DcgmSamples>> made;
  made.reserve(changes.size());
  for (DcgmChange& c : changes) {
    made.push_back(c.samples.empty() ? nullptr
                                     : std::make_shared<const DcgmSamples>(std::move(c.samples)));
  }
  std::vector<std::shared_ptr<const DcgmSamples>> replaced;  // freed after the lock is released
  replaced.reserve(changes.size());
  uint64_t version = 0;
  {
    MutexLock lock(mu_);
    bool changed = false;
    for (size_t i = 0; i < changes.size(); ++i) {
      const DcgmChange& c = changes[i];
      auto it = dcgm_.find(c.key);
      if (made[i] == nullptr) {
        if (it == dcgm_.end()) continue;
        replaced.push_back(std::move(it->second.samples));
        dcgm_.erase(it);
      } else {
        if (it == dcgm_.end()) {
          it = dcgm_.emplace(std::string(c.key), DcgmEntry{}).first;
        } else {
          replaced.push_back(std::move(it->second.samples));
        }
        it->second = DcgmEntry{std::move(made[i]), c.expires_at};
        earliest_dcgm_expiry_ = std::min(earliest_dcgm_expiry_, c.expires_at);
      }
      changed = true;
    }
    if (!changed) return;  // nothing changes: keep the cached bodies
    version = ++version_;
  }
  DropBodiesBefore(version);
}

void ExpositionSnapshot::RemoveDcgm(std::string_view key) {
  uint64_t version = 0;
  {
    MutexLock lock(mu_);
    const auto it = dcgm_.find(key);
    if (it == dcgm_.end()) return;
    dcgm_.erase(it);
    version = ++version_;
  }
  DropBodiesBefore(version);
}

void ExpositionSnapshot::DropExpiredDcgm(TimeMicros now) {
  std::vector<std::shared_ptr<const DcgmSamples>> expired;  // freed after the lock is released
  MutexLock lock(mu_);
  if (now < earliest_dcgm_expiry_) return;
  // Renders already skip these, so the visible exposition does not change: no new version.
  TimeMicros earliest = std::numeric_limits<TimeMicros>::max();
  for (auto it = dcgm_.begin(); it != dcgm_.end();) {
    if (it->second.expires_at <= now) {
      expired.push_back(std::move(it->second.samples));
      it = dcgm_.erase(it);
    } else {
      earliest = std::min(earliest, it->second.expires_at);
      ++it;
    }
  }
  earliest_dcgm_expiry_ = earliest;
}

uint64_t ExpositionSnapshot::version() const {
  MutexLock lock(mu_);
  return version_;
}

ExpositionSnapshot::Rendered ExpositionSnapshot::RenderVersioned(Format format,
                                                                 TimeMicros now) const {
  struct StaticFamily {
    Section section;
    std::shared_ptr<const FamilyHeader> header;
    std::vector<std::shared_ptr<const Fragment>> fragments;
  };
  std::vector<StaticFamily> statics;
  std::vector<std::shared_ptr<const DcgmSamples>> dcgm;
  std::shared_ptr<const std::unordered_set<std::string>> names;
  Rendered rendered{{}, 0, std::numeric_limits<TimeMicros>::max()};
  const TimeMicros evaluated_at = EvaluationTime(now);
  {
    // Only pointer copies under the lock; the bytes are written after it is released.
    MutexLock lock(mu_);
    rendered.version = version_;
    names = names_;
    statics.reserve(order_.size());
    for (const FamilyId id : order_) {
      const Slot& slot = slots_[id];
      if (slot.fragments.empty()) continue;
      StaticFamily& family = statics.emplace_back(StaticFamily{slot.section, slot.header, {}});
      family.fragments.reserve(slot.fragments.size());
      for (const auto& [key, fragment] : slot.fragments) family.fragments.push_back(fragment);
    }
    // Timed samples' values hold for this time step only.
    if (timed_samples_ > 0) rendered.valid_until = evaluated_at + time_step_;
    dcgm.reserve(dcgm_.size());
    for (const auto& [key, entry] : dcgm_) {
      if (entry.expires_at <= now) continue;
      dcgm.push_back(entry.samples);
      rendered.valid_until = std::min(rendered.valid_until, entry.expires_at);
    }
  }

  // DCGM families merged by name across keys, in first-seen order. Jobs mostly have the same
  // families in the same order, with the same (cached) headers: a family whose header is the one
  // the previous job had at the same place joins the same merged family without a lookup.
  struct MergedFamily {
    const FamilyHeader* header;
    bool registered;  // named like a registered family: not rendered
    std::vector<std::string_view> fragments;
  };
  std::vector<MergedFamily> merged;
  std::unordered_map<std::string_view, size_t> merged_index;
  std::vector<std::pair<const FamilyHeader*, size_t>> previous;  // by place: header, merged index
  for (const auto& samples : dcgm) {
    const std::vector<RenderedFamily>& families = samples->families();
    if (previous.size() < families.size()) previous.resize(families.size(), {nullptr, 0});
    for (size_t i = 0; i < families.size(); ++i) {
      const RenderedFamily& family = families[i];
      size_t index = previous[i].second;
      if (previous[i].first != family.header) {
        const std::string& name = family.header->name();
        const auto [it, inserted] = merged_index.try_emplace(name, merged.size());
        if (inserted) merged.push_back({family.header, names->contains(name), {}});
        index = it->second;
        previous[i] = {family.header, index};
      }
      MergedFamily& into = merged[index];
      if (!into.registered) into.fragments.push_back(family.samples.For(format));
    }
  }

  size_t size = 16;
  for (const StaticFamily& f : statics) {
    size += f.header->Lines(format).size();
    for (const auto& fragment : f.fragments) {
      size += fragment->For(format).size();
      for (const TimedSample& t : fragment->timed) size += t.prefix.size() + kTimedValueBytes;
    }
  }
  for (const MergedFamily& f : merged) {
    if (f.fragments.empty()) continue;
    size += f.header->Lines(format).size();
    for (const std::string_view fragment : f.fragments) size += fragment.size();
  }
  std::string& out = rendered.body;
  out.reserve(size);
  AdviseHugePages(out.data(), size);

  bool dcgm_written = false;
  const auto write_dcgm = [&] {
    for (const MergedFamily& f : merged) {
      if (f.fragments.empty()) continue;  // registered: a host cannot shadow ours
      out += f.header->Lines(format);
      for (const std::string_view fragment : f.fragments) out += fragment;
    }
    dcgm_written = true;
  };
  for (const StaticFamily& f : statics) {
    if (!dcgm_written && f.section > Section::kJob) write_dcgm();
    out += f.header->Lines(format);
    for (const auto& fragment : f.fragments) {
      out += fragment->For(format);
      if (!fragment->timed.empty()) AppendTimedSamples(out, fragment->timed, evaluated_at);
    }
  }
  if (!dcgm_written) write_dcgm();
  AppendEnd(out, format);
  return rendered;
}

std::string ExpositionSnapshot::Render(Format format, TimeMicros now) const {
  return RenderVersioned(format, now).body;
}

ExpositionSnapshot::CacheSlot& ExpositionSnapshot::SlotFor(Format format, bool gzip) const {
  return cache_[(format == Format::kOpenMetrics100 ? 2 : 0) + (gzip ? 1 : 0)];
}

ExpositionSnapshot::CachedBody ExpositionSnapshot::Current(const CacheSlot& slot,
                                                           TimeMicros now) const {
  const uint64_t current = version();
  MutexLock lock(cache_mu_);
  return slot.cached.CurrentAt(current, now) ? slot.cached : CachedBody{};
}

void ExpositionSnapshot::DropBodiesBefore(uint64_t version) const {
  std::vector<std::shared_ptr<const std::string>> stale;
  {
    MutexLock lock(cache_mu_);
    for (CacheSlot& slot : cache_) {
      if (slot.cached.body && slot.cached.version < version) {
        stale.push_back(std::move(slot.cached.body));
        slot.cached = {};
      }
    }
  }
  // Freed here, outside the lock (a scrape still writing one keeps it until it is done).
}

std::shared_ptr<const std::string> ExpositionSnapshot::Body(Format format, bool gzip,
                                                            TimeMicros now) const {
  CacheSlot& slot = SlotFor(format, gzip);
  MutexLock render(slot.render_mu);
  if (CachedBody cached = Current(slot, now); cached.body) return cached.body;
  {
    // The stale body goes before the new one is made, so the two are never held together.
    std::shared_ptr<const std::string> stale;
    MutexLock lock(cache_mu_);
    stale = std::move(slot.cached.body);
    slot.cached = {};
  }
  // Plain: a render. Gzip'd: the current plain body if there is one, else a render that is
  // not kept; only the compressed bytes stay.
  CachedBody made = gzip ? Current(SlotFor(format, false), now) : CachedBody{};
  if (!made.body) {
    Rendered rendered = RenderVersioned(format, now);
    made.body = std::make_shared<const std::string>(std::move(rendered.body));
    made.version = rendered.version;
    made.rendered_at = now;
    made.valid_until = rendered.valid_until;
  }
  if (gzip) made.body = std::make_shared<const std::string>(Gzip(*made.body, 1));
  MutexLock lock(cache_mu_);
  slot.cached = made;
  return made.body;
}

}  // namespace fleetwatch::expose
