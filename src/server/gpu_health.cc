#include "server/gpu_health.h"

#include <algorithm>
#include <utility>

namespace fleetwatch::server {
namespace {

constexpr size_t kMaxAgentText = 200;
constexpr std::string_view kNoReadings = "agent reports no readings";

// Findings of one reading, each with the status it gives.
class Findings {
 public:
  void Add(GpuHealthStatus status, std::string text) {
    if (status == GpuHealthStatus::kHealthy) return;
    items_.emplace_back(status, std::move(text));
  }
  GpuHealthStatus Worst() const {
    GpuHealthStatus worst = GpuHealthStatus::kHealthy;
    for (const auto& [status, text] : items_) worst = std::max(worst, status);
    return worst;
  }
  // The findings of the worst status, in the order found.
  std::string Reason() const {
    const GpuHealthStatus worst = Worst();
    std::string out;
    for (const auto& [status, text] : items_) {
      if (status != worst) continue;
      if (!out.empty()) out += "; ";
      out += text;
    }
    return out;
  }

 private:
  std::vector<std::pair<GpuHealthStatus, std::string>> items_;
};

std::string Count(int64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// The first `max` bytes of valid UTF-8 `text`, cut before a character rather than inside one.
std::string Cut(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "...";
}

std::string XidWords(const XidEntry& e) {
  return "XID " + std::to_string(e.xid) + " (" + e.meaning + "; action " +
         std::string(ToString(e.action)) + ")";
}

}  // namespace

GpuHealth ClassifyGpu(const model::GpuReading& r, const HealthThresholds& t) {
  using enum GpuHealthStatus;
  GpuHealth h;
  h.index = r.index;
  Findings f;
  if (!r.error.empty()) {
    f.Add(kUnhealthy, "cannot be read: " + Cut(r.error, kMaxAgentText));
  }
  if (r.xid) {
    h.last_xid = r.xid->last;
    h.last_xid_at = r.xid->last_at;
    for (const model::XidEvents::Count& c : r.xid->counts) {
      if (c.count <= 0) continue;
      const XidEntry e = LookUpXid(c.xid);
      f.Add(e.health, XidWords(e));
    }
  }
  if (r.remapped_rows) {
    const model::RemappedRows& rows = *r.remapped_rows;
    if (rows.failure) f.Add(kUnhealthy, "row remapping failed (action replace)");
    if (rows.pending) f.Add(kUnhealthy, "row remapping pending (action reset_gpu)");
    if (rows.uncorrectable >= t.uncorrectable_remapped_rows_degraded) {
      f.Add(kDegraded,
            Count(rows.uncorrectable, "row", "rows") + " remapped after uncorrectable errors");
    }
  }
  if (r.retired_pages) {
    const model::RetiredPages& p = *r.retired_pages;
    const int64_t all = p.single_bit_ecc.value_or(0) + p.double_bit_ecc.value_or(0);
    if (all >= t.retired_pages_unhealthy) {
      f.Add(kUnhealthy, Count(all, "page", "pages") + " retired (action replace)");
    } else if (p.double_bit_ecc.value_or(0) >= t.double_bit_retired_pages_degraded) {
      f.Add(kDegraded,
            Count(*p.double_bit_ecc, "page", "pages") + " retired after double-bit errors");
    }
    if (p.pending.value_or(false)) f.Add(kDegraded, "page retirement pending (action reset_gpu)");
  }
  if (r.ecc) {
    if (r.ecc->uncorrected_volatile.value_or(0) >= t.uncorrected_volatile_degraded) {
      f.Add(kDegraded, Count(*r.ecc->uncorrected_volatile, "uncorrectable ECC error",
                             "uncorrectable ECC errors") +
                           " since the driver loaded");
    }
    if (r.ecc->corrected_volatile.value_or(0) >= t.corrected_volatile_degraded) {
      f.Add(kDegraded,
            Count(*r.ecc->corrected_volatile, "correctable ECC error", "correctable ECC errors") +
                " since the driver loaded");
    }
  }
  if (r.nvlink) {
    for (const model::NvlinkErrors& link : *r.nvlink) {
      const std::string name = "NVLink " + std::to_string(link.link);
      if (link.recovery.value_or(0) >= t.nvlink_recovery_degraded) {
        f.Add(kDegraded, name + ": " + Count(*link.recovery, "recovery", "recoveries"));
      }
      const int64_t crc = link.crc_flit.value_or(0) + link.crc_data.value_or(0);
      if (crc >= t.nvlink_crc_degraded)
        f.Add(kDegraded, name + ": " + Count(crc, "CRC error", "CRC errors"));
    }
  }
  if (r.throttle_reasons) {
    for (const std::string& reason : model::ThrottleReasonNames(*r.throttle_reasons)) {
      if (IsHardwareThrottle(reason)) f.Add(kDegraded, "throttled: " + reason);
    }
  }
  if (r.ras) {
    for (const model::RasErrors& block : *r.ras) {
      if (block.uncorrectable.value_or(0) >= t.ras_uncorrectable_unhealthy) {
        f.Add(kUnhealthy,
              "RAS " + block.block + ": " +
                  Count(*block.uncorrectable, "uncorrectable error", "uncorrectable errors"));
      }
    }
  }
  h.status = f.Worst();
  h.reason = f.Reason();
  return h;
}

Result<DegradedGpuPolicy> ParseDegradedGpuPolicy(std::string_view text) {
  if (text == "use") return DegradedGpuPolicy::kUse;
  if (text == "avoid") return DegradedGpuPolicy::kAvoid;
  return InvalidArgument("degraded GPUs policy must be use or avoid");
}

int64_t GpuHealthMonitor::Monotonic::Update(int64_t value) {
  if (value < last) base += last;
  last = value;
  return base + value;
}

void GpuHealthMonitor::Monotonic::Restart() {
  base += last;
  last = 0;
}

GpuHealthMonitor::GpuHealthMonitor(GpuHealthOptions options) : options_(std::move(options)) {}

void GpuHealthMonitor::Take(HostState& host, const std::vector<model::GpuReading>& readings) {
  std::map<int, GpuState> before = std::move(host.gpus);
  host.gpus.clear();
  for (const model::GpuReading& r : readings) {
    auto old = before.find(r.index);
    GpuState state = old != before.end() ? std::move(old->second) : GpuState{};
    if (old != before.end()) before.erase(old);
    state.reading = r;
    state.health = ClassifyGpu(r, options_.thresholds);
    if (r.xid) {
      for (const model::XidEvents::Count& c : r.xid->counts) state.xids[c.xid].Update(c.count);
      // An XID that no longer shows was counted by an agent that restarted.
      for (auto& entry : state.xids) {
        const int64_t xid = entry.first;
        const bool listed = std::any_of(r.xid->counts.begin(), r.xid->counts.end(),
                                        [xid](const auto& c) { return c.xid == xid; });
        if (!listed && entry.second.last != 0) entry.second.Update(0);
      }
    }
    if (r.ecc && r.ecc->corrected_aggregate) {
      if (!state.ecc_corrected) state.ecc_corrected = Monotonic{};
      state.ecc_corrected->Update(*r.ecc->corrected_aggregate);
    }
    if (r.ecc && r.ecc->uncorrected_aggregate) {
      if (!state.ecc_uncorrected) state.ecc_uncorrected = Monotonic{};
      state.ecc_uncorrected->Update(*r.ecc->uncorrected_aggregate);
    }
    host.gpus[r.index] = std::move(state);
  }
}

InstanceHealth GpuHealthMonitor::Combine(const HostState& host) {
  InstanceHealth out;
  out.readings_at = host.readings_at;
  const GpuHealth* worst = nullptr;
  for (const auto& [index, gpu] : host.gpus) {
    out.gpus.push_back(gpu.health);
    if (gpu.health.status > GpuHealthStatus::kHealthy &&
        (worst == nullptr || gpu.health.status > worst->status)) {
      worst = &gpu.health;
    }
    if (gpu.health.last_xid && gpu.health.last_xid_at &&
        (!out.last_event_at || *gpu.health.last_xid_at > *out.last_event_at)) {
      out.last_event_at = gpu.health.last_xid_at;
      out.last_event = "XID " + std::to_string(*gpu.health.last_xid) + " on GPU " +
                       std::to_string(index) + ": " + LookUpXid(*gpu.health.last_xid).meaning;
    }
  }
  if (worst != nullptr) {
    out.status = worst->status;
    out.reason = "GPU " + std::to_string(worst->index) + ": " + worst->reason;
  }
  return out;
}

void GpuHealthMonitor::Observe(const std::vector<model::Instance>& instances,
                               const std::map<std::string, InstanceObservation>& observations,
                               TimeMicros now) {
  MutexLock lock(mu_);
  ++ticks_;
  bool changed = false;
  // In place: most ticks bring no readings (status polls) and change nothing but `seen`.
  for (const model::Instance& instance : instances) {
    if (instance.status == model::InstanceStatus::kTerminated) continue;
    auto [it, inserted] = hosts_.try_emplace(instance.id);
    HostState& host = it->second;
    host.seen = ticks_;
    bool recompute = inserted;
    if (inserted || host.labels.name != instance.name ||
        host.labels.fleet_name != instance.fleet_name ||
        host.labels.project_name != instance.project_name) {
      // Only what the families' labels and the reasons read.
      host.labels.id = instance.id;
      host.labels.name = instance.name;
      host.labels.fleet_name = instance.fleet_name;
      host.labels.project_name = instance.project_name;
      changed = true;
    }
    auto obs = observations.find(instance.id);
    if (obs != observations.end() && obs->second.reached) {
      const AgentPoll& poll = obs->second.poll;
      if (!host.first_reached_at) host.first_reached_at = now;
      if (!host.agent_id.empty() && poll.agent_id != host.agent_id) {
        // A new agent counts from zero: what the old one counted stays in the totals.
        for (auto& [index, gpu] : host.gpus) {
          for (auto& [xid, counter] : gpu.xids) counter.Restart();
        }
      }
      if (host.agent_id != poll.agent_id) host.agent_id = poll.agent_id;
      if (poll.gpus) {
        Take(host, *poll.gpus);
        host.readings_at = now;
        recompute = changed = true;
      }
    }
    const TimeMicros since = host.readings_at.value_or(host.first_reached_at.value_or(now));
    const bool overdue = !instance.resources.gpus.empty() && host.first_reached_at &&
                         now - since >= options_.no_readings_after && !instance.unreachable;
    if (overdue != host.overdue) {
      host.overdue = overdue;
      recompute = true;
    }
    if (!recompute) continue;
    InstanceHealth health = Combine(host);
    if (overdue) {
      health.status = std::max(health.status, GpuHealthStatus::kDegraded);
      if (health.reason.empty()) health.reason = std::string(kNoReadings);
    }
    if (!(health == host.health)) changed = true;
    host.health = std::move(health);
  }
  // Instances no longer listed (deleted, terminated) are forgotten.
  const uint64_t tick = ticks_;
  if (std::erase_if(hosts_, [tick](const auto& entry) { return entry.second.seen != tick; }) > 0) {
    changed = true;
  }
  if (changed) {
    ++version_;
    UpdateExcluded();
  }
}

bool GpuHealthMonitor::Known(const HostState& host) const {
  return host.readings_at.has_value() || host.health.status != GpuHealthStatus::kHealthy;
}

bool GpuHealthMonitor::IsGpuUnhealthy(std::string_view instance_id, int gpu) const {
  MutexLock lock(mu_);
  auto host = hosts_.find(instance_id);
  if (host == hosts_.end()) return false;
  auto g = host->second.gpus.find(gpu);
  return g != host->second.gpus.end() && g->second.health.status == GpuHealthStatus::kUnhealthy;
}

ExcludedGpus GpuHealthMonitor::Excluded() const {
  MutexLock lock(mu_);
  return excluded_;
}

void GpuHealthMonitor::UpdateExcluded() {
  excluded_.clear();
  for (const auto& [id, host] : hosts_) {
    for (const auto& [index, gpu] : host.gpus) {
      const GpuHealthStatus s = gpu.health.status;
      if (s == GpuHealthStatus::kUnhealthy ||
          (s == GpuHealthStatus::kDegraded && options_.degraded == DegradedGpuPolicy::kAvoid)) {
        excluded_[id][index] = "GPU " + std::to_string(index) + " of " + host.labels.name + " is " +
                               std::string(ToString(s)) + ": " + gpu.health.reason;
      }
    }
  }
}

std::optional<InstanceHealth> GpuHealthMonitor::HealthOf(std::string_view instance_id) const {
  MutexLock lock(mu_);
  auto host = hosts_.find(instance_id);
  if (host == hosts_.end() || !Known(host->second)) return std::nullopt;
  return host->second.health;
}

std::map<std::string, InstanceHealth> GpuHealthMonitor::AllHealth() const {
  MutexLock lock(mu_);
  std::map<std::string, InstanceHealth> out;
  for (const auto& [id, host] : hosts_) {
    if (Known(host)) out.emplace(id, host.health);
  }
  return out;
}

std::map<std::string, InstanceExport> GpuHealthMonitor::Export() const {
  MutexLock lock(mu_);
  std::map<std::string, InstanceExport> out;
  for (const auto& [id, host] : hosts_) {
    if (!Known(host)) continue;
    InstanceExport& e = out[id];
    e.instance = host.labels;
    e.health = host.health;
    for (const auto& [index, gpu] : host.gpus) {
      GpuExport g;
      g.index = index;
      g.health = gpu.health;
      for (const auto& [xid, counter] : gpu.xids)
        g.counters.xid_totals[xid] = counter.base + counter.last;
      if (gpu.ecc_corrected)
        g.counters.ecc_corrected_total = gpu.ecc_corrected->base + gpu.ecc_corrected->last;
      if (gpu.ecc_uncorrected) {
        g.counters.ecc_uncorrected_total = gpu.ecc_uncorrected->base + gpu.ecc_uncorrected->last;
      }
      g.remapped_rows = gpu.reading.remapped_rows;
      g.power_mw = gpu.reading.power_mw;
      g.temperature_c = gpu.reading.temperature_c;
      g.throttle_reasons = gpu.reading.throttle_reasons;
      e.gpus.push_back(std::move(g));
    }
  }
  return out;
}

uint64_t GpuHealthMonitor::version() const {
  MutexLock lock(mu_);
  return version_;
}

}  // namespace fleetwatch::server
