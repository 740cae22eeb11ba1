#include "server/shared_render_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <unordered_set>
#include <utility>

#include "model/config_fields.h"
#include "store/change_keys.h"

namespace fleetwatch::server {
namespace {

// Text PostgreSQL's text type holds: no NUL, valid UTF-8.
bool Storable(std::string_view text) {
  return text.find('\0') == std::string_view::npos && model::config::IsValidUtf8(text);
}

// The newest number per id of the channel's "<id>@<number>" keys.
std::map<std::string, int64_t> NewestKeys(const store::ChangeBatch& batch, const char* channel) {
  std::map<std::string, int64_t> newest;
  auto it = batch.keys.find(channel);
  if (it == batch.keys.end()) return newest;
  for (const std::string& key : it->second) {
    std::optional<std::pair<std::string, int64_t>> parsed = store::ParseVersionedKey(key);
    if (!parsed) continue;
    auto [entry, inserted] = newest.try_emplace(parsed->first, parsed->second);
    if (!inserted) entry->second = std::max(entry->second, parsed->second);
  }
  return newest;
}

}  // namespace

SharedRenderState::SharedRenderState(store::Store& store, store::ChangeListener& listener,
                                     const Clock& clock, SharedRenderOptions options)
    : store_(store), listener_(listener), clock_(clock), options_(options) {}

SharedRenderStats SharedRenderState::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

void SharedRenderState::Count(uint64_t SharedRenderStats::*field, uint64_t n) {
  MutexLock lock(mu_);
  stats_.*field += n;
}

Status SharedRenderState::Share(TickReport& report) {
  Status written = WriteOwn(report);
  for (const model::JobMetricsPoint& p : report.stored_points) {
    auto [it, inserted] = newest_point_.try_emplace(p.job_id, p.timestamp_micro);
    if (!inserted) it->second = std::max(it->second, p.timestamp_micro);
  }

  const store::ChangeBatch batch = listener_.Take();
  const TimeMicros now = clock_.Now();
  const bool resync = resync_due_ || batch.resync || now >= next_resync_;
  if (batch.resync) {
    moved_totals_.insert(store::kGpuLedgerKey);
    moved_totals_.insert(store::kEnergyKey);
  } else if (auto totals = batch.keys.find(store::kTotalsChannel); totals != batch.keys.end()) {
    moved_totals_.insert(totals->second.begin(), totals->second.end());
  }
  Status read = Status::Ok();
  if (resync) {
    Count(&SharedRenderStats::resyncs, 1);
    // Every text whose version differs from the one this replica has (a database that lost its
    // unlogged rows starts them again from 1).
    Count(&SharedRenderStats::queries, 1);
    Result<std::vector<std::pair<std::string, int64_t>>> versions = store_.ListHostDcgmVersions();
    if (versions.ok()) {
      std::vector<std::string> moved;
      std::unordered_map<std::string, int64_t> kept;
      for (const auto& [id, version] : *versions) {
        auto it = versions_.find(id);
        if (it == versions_.end() || it->second != version) moved.push_back(id);
        if (it != versions_.end()) kept.emplace(id, it->second);
      }
      versions_ = std::move(kept);  // instances gone lose their entries
      read = ReadTexts(moved, report);
    } else {
      read = versions.status();
    }
    // The newest point of every unfinished job, and only of those.
    std::unordered_set<std::string_view> unfinished;
    for (const model::Run& run : report.runs) {
      for (const model::Job& job : run.jobs) unfinished.insert(job.id);
    }
    std::erase_if(newest_point_, [&](const auto& e) { return !unfinished.count(e.first); });
    std::unordered_set<std::string_view> instances;
    for (const model::Instance& i : report.instances) instances.insert(i.id);
    std::erase_if(newest_text_, [&](const auto& e) { return !instances.count(e.first); });
    std::erase_if(written_, [&](const auto& e) { return !instances.count(e.first); });
    if (read.ok()) {
      Count(&SharedRenderStats::queries, 1);
      Result<std::vector<model::JobMetricsPoint>> points =
          store_.ListNewestMetricsOfUnfinishedJobs();
      if (points.ok()) {
        AddPoints(std::move(*points), report);
      } else {
        read = points.status();
      }
    }
  } else {
    std::vector<std::string> moved;
    for (const auto& [id, version] : NewestKeys(batch, store::kHostDcgmChannel)) {
      auto it = versions_.find(id);
      if (it == versions_.end() || version > it->second) moved.push_back(id);
    }
    read = ReadTexts(moved, report);
    std::vector<std::string> wanted;
    for (const auto& [job_id, at] : NewestKeys(batch, store::kJobPointsChannel)) {
      auto it = newest_point_.find(job_id);
      if (it == newest_point_.end() || at > it->second) wanted.push_back(job_id);
    }
    if (read.ok() && !wanted.empty()) {
      Count(&SharedRenderStats::queries, 1);
      Result<std::vector<model::JobMetricsPoint>> points = store_.ListNewestMetricsOfJobs(wanted);
      if (points.ok()) {
        AddPoints(std::move(*points), report);
      } else {
        read = points.status();
      }
    }
  }
  if (!read.ok()) {
    resync_due_ = true;  // the notifications taken are lost: compare everything next time
  } else if (resync) {
    LogLoad(now);
    resync_due_ = false;
    next_resync_ =
        now +
        std::chrono::duration_cast<std::chrono::microseconds>(options_.resync_interval).count();
  }
  return !written.ok() ? written : read;
}

void SharedRenderState::LogLoad(TimeMicros now) {
  const SharedRenderStats total = stats();
  const double seconds = static_cast<double>(now - logged_at_) / 1e6;
  if (logged_at_ != 0 && seconds < 10) return;  // resyncs close together: one line for both
  if (logged_at_ != 0) {
    spdlog::info(
        "shared render state, last {:.0f} s: wrote {} DCGM texts ({:.1f} KB/s), read {} texts "
        "({:.1f} KB/s) and {} job points, {} store calls ({} resyncs)",
        seconds, total.texts_written - logged_.texts_written,
        static_cast<double>(total.bytes_written - logged_.bytes_written) / 1e3 / seconds,
        total.texts_read - logged_.texts_read,
        static_cast<double>(total.bytes_read - logged_.bytes_read) / 1e3 / seconds,
        total.points_read - logged_.points_read, total.queries - logged_.queries,
        total.resyncs - logged_.resyncs);
  }
  logged_ = total;
  logged_at_ = now;
}

Status SharedRenderState::WriteOwn(const TickReport& report) {
  std::vector<store::HostDcgm> texts;
  uint64_t bytes = 0;
  for (const DcgmReport& d : report.dcgm) {
    auto it = written_.find(d.instance_id);
    if (it != written_.end() && it->second.first == d.dcgm.collected_at &&
        it->second.second == d.dcgm.error) {
      continue;  // stored already
    }
    if (!Storable(d.dcgm.text) || !Storable(d.dcgm.error)) {
      spdlog::debug("DCGM text of instance {} is not shared: not UTF-8 text", d.instance_id);
      continue;
    }
    if (d.dcgm.collected_at) {
      TimeMicros& newest = newest_text_[d.instance_id];
      newest = std::max(newest, *d.dcgm.collected_at);
    }
    bytes += d.dcgm.text.size();
    texts.push_back(store::HostDcgm{.instance_id = d.instance_id,
                                    .collected_at = d.dcgm.collected_at,
                                    .text = d.dcgm.text,
                                    .error = d.dcgm.error,
                                    .received_at = report.ended_at});
  }
  if (texts.empty()) return Status::Ok();
  Count(&SharedRenderStats::queries, 1);
  FW_ASSIGN_OR_RETURN(auto versions, store_.WriteHostDcgm(texts));
  for (const auto& [id, version] : versions) versions_[id] = version;
  for (const store::HostDcgm& t : texts) written_[t.instance_id] = {t.collected_at, t.error};
  Count(&SharedRenderStats::texts_written, texts.size());
  Count(&SharedRenderStats::bytes_written, bytes);
  return Status::Ok();
}

Status SharedRenderState::ReadTexts(const std::vector<std::string>& instance_ids,
                                    TickReport& report) {
  const size_t batch = std::max<size_t>(1, options_.read_batch);
  for (size_t from = 0; from < instance_ids.size(); from += batch) {
    std::vector<std::string> ids(
        instance_ids.begin() + static_cast<ptrdiff_t>(from),
        instance_ids.begin() + static_cast<ptrdiff_t>(std::min(instance_ids.size(), from + batch)));
    Count(&SharedRenderStats::queries, 1);
    FW_ASSIGN_OR_RETURN(std::vector<store::HostDcgm> texts, store_.ListHostDcgm(ids));
    for (store::HostDcgm& t : texts) {
      versions_[t.instance_id] = t.version;
      // A host without a recent text keeps what it showed until that expires.
      if (!t.error.empty() || !t.collected_at) continue;
      auto [newest, inserted] = newest_text_.try_emplace(t.instance_id, *t.collected_at);
      if (!inserted) {
        if (newest->second >= *t.collected_at) continue;  // has that or newer
        newest->second = *t.collected_at;
      }
      Count(&SharedRenderStats::texts_read, 1);
      Count(&SharedRenderStats::bytes_read, t.text.size());
      report.dcgm.push_back(DcgmReport{
          t.instance_id,
          AgentDcgm{.collected_at = t.collected_at, .text = std::move(t.text), .error = {}}});
    }
  }
  return Status::Ok();
}

void SharedRenderState::AddPoints(std::vector<model::JobMetricsPoint> points, TickReport& report) {
  for (model::JobMetricsPoint& p : points) {
    auto [newest, inserted] = newest_point_.try_emplace(p.job_id, p.timestamp_micro);
    if (!inserted) {
      if (newest->second >= p.timestamp_micro) continue;
      newest->second = p.timestamp_micro;
    }
    Count(&SharedRenderStats::points_read, 1);
    report.stored_points.push_back(std::move(p));
  }
}

}  // namespace fleetwatch::server
