#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "model/gpu_reading.h"
#include "server/gpu_health_catalogue.h"
#include "server/reconciler.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

// GPU health: each GPU's readings (model::GpuReading, as its agent reports them with every
// metrics poll) classified healthy, degraded or unhealthy with the catalogue's rules
// (gpu_health_catalogue.h), and an instance's health the worst of its GPUs'. Unhealthy GPUs take
// no new jobs; degraded ones take them or not by policy (ExcludedGpus).

// The health of one GPU as its last reading shows it.
struct GpuHealth {
  int index = 0;
  GpuHealthStatus status = GpuHealthStatus::kHealthy;
  // Empty when healthy; else the findings of the worst status, "; "-separated, e.g.
  // "XID 79 (GPU has fallen off the bus; action reboot)". Agent text in it (a reading's error)
  // is cut to 200 bytes (at a character boundary, "..." added); renderers escape it.
  std::string reason;
  std::optional<int64_t> last_xid;        // the newest XID the agent saw on this GPU
  std::optional<TimeMicros> last_xid_at;  // when it saw it

  bool operator==(const GpuHealth&) const = default;
};

// Classifies one reading. Absent readings count as nothing wrong. Pure.
GpuHealth ClassifyGpu(const model::GpuReading& reading,
                      const HealthThresholds& thresholds = DefaultHealthThresholds());

// An instance's health: the worst of its GPUs', or degraded with "agent reports no readings"
// when a host with GPUs has sent none for a while.
struct InstanceHealth {
  GpuHealthStatus status = GpuHealthStatus::kHealthy;
  // Empty when healthy; else "GPU 1: <its reason>" of the worst GPU (the lowest index among
  // equals), or "agent reports no readings".
  std::string reason;
  std::vector<GpuHealth> gpus;              // by index, as last reported
  std::optional<TimeMicros> readings_at;    // when the last readings arrived
  std::optional<TimeMicros> last_event_at;  // the newest XID of any GPU
  std::string last_event;  // "XID 79 on GPU 1: GPU has fallen off the bus"; empty: none

  bool operator==(const InstanceHealth&) const = default;
};

// Whether degraded GPUs take new jobs: `use` (default) or `avoid`. Set by --degraded-gpus or
// FLEETWATCH_DEGRADED_GPUS.
enum class DegradedGpuPolicy { kUse, kAvoid };
// "use" or "avoid"; anything else is InvalidArgument naming the accepted values.
Result<DegradedGpuPolicy> ParseDegradedGpuPolicy(std::string_view text);

// The cumulative counters of one GPU, kept so that they never go backwards when the agent
// restarts (its XID counts start again from 0) or the driver reloads: a count lower than the
// last one adds the last one to an offset. The offsets live in memory only: after a server
// restart the exported counters start again from the agents' current counts (Prometheus sees a
// counter reset, as after any process restart).
struct GpuCounters {
  std::map<int64_t, int64_t> xid_totals;       // XID → events since the server started
  std::optional<int64_t> ecc_corrected_total;  // aggregate counts, guarded the same way
  std::optional<int64_t> ecc_uncorrected_total;
};

// What the exposition renders for one GPU: its last reading, its health and its counters.
struct GpuExport {
  int index = 0;
  GpuHealth health;
  GpuCounters counters;
  std::optional<model::RemappedRows> remapped_rows;
  std::optional<int64_t> power_mw;
  std::optional<int64_t> temperature_c;
  std::optional<int64_t> throttle_reasons;
};

struct InstanceExport {
  model::Instance instance;  // the labels' source: id, name, fleet and project names only
  InstanceHealth health;
  std::vector<GpuExport> gpus;  // by index
};

struct GpuHealthOptions {
  DegradedGpuPolicy degraded = DegradedGpuPolicy::kUse;
  // A reachable host with GPUs that has sent no readings for this long (3 metrics intervals)
  // is degraded: "agent reports no readings".
  TimeMicros no_readings_after = 30'000'000;
  HealthThresholds thresholds = DefaultHealthThresholds();
};

// Keeps every instance's GPU health from the readings as they arrive. Observe is called by the
// control loop once per tick; the queries from any thread. Thread-safe (one mutex; queries copy).
// State is in memory only and starts empty: an instance's health is unknown (healthy, nothing
// excluded) until its first readings arrive.
class GpuHealthMonitor {
 public:
  explicit GpuHealthMonitor(GpuHealthOptions options = {});

  // Takes a tick's poll replies: each reached poll with readings replaces its instance's. An
  // agent that restarted (new agent id) keeps its counters' totals. Instances no longer listed
  // are forgotten.
  void Observe(const std::vector<model::Instance>& instances,
               const std::map<std::string, InstanceObservation>& observations, TimeMicros now)
      FW_EXCLUDES(mu_);

  // Whether GPU `gpu` of instance `instance_id` is unhealthy now (false when unknown).
  bool IsGpuUnhealthy(std::string_view instance_id, int gpu) const FW_EXCLUDES(mu_);

  // The GPUs that take no new jobs (unhealthy ones; degraded ones too under `avoid`), by
  // instance id and GPU index, each with why: "GPU 1 of gpus-0 is unhealthy: XID 79 (...)".
  ExcludedGpus Excluded() const FW_EXCLUDES(mu_);

  // The instance's health; nullopt when no readings ever arrived for it and it is not overdue.
  std::optional<InstanceHealth> HealthOf(std::string_view instance_id) const FW_EXCLUDES(mu_);

  // HealthOf every instance that has it, by instance id.
  std::map<std::string, InstanceHealth> AllHealth() const FW_EXCLUDES(mu_);

  // Everything the exposition renders, of every instance that has readings or is overdue, by
  // instance id.
  std::map<std::string, InstanceExport> Export() const FW_EXCLUDES(mu_);
  // Changes whenever Export's result may have changed.
  uint64_t version() const FW_EXCLUDES(mu_);

  DegradedGpuPolicy degraded_policy() const { return options_.degraded; }

 private:
  struct Monotonic {
    int64_t base = 0;
    int64_t last = 0;
    int64_t Update(int64_t value);
    void Restart();  // the source restarted: its next values start from 0
  };
  struct GpuState {
    model::GpuReading reading;
    GpuHealth health;
    std::map<int64_t, Monotonic> xids;
    std::optional<Monotonic> ecc_corrected;
    std::optional<Monotonic> ecc_uncorrected;
  };
  struct HostState {
    model::Instance labels;  // id, name, fleet and project names only
    uint64_t seen = 0;       // the last Observe that listed it
    bool overdue = false;    // "agent reports no readings"
    std::string agent_id;
    std::optional<TimeMicros> first_reached_at;
    std::optional<TimeMicros> readings_at;
    std::map<int, GpuState> gpus;
    InstanceHealth health;
  };
  void Take(HostState& host, const std::vector<model::GpuReading>& readings);
  static InstanceHealth Combine(const HostState& host);
  bool Known(const HostState& host) const;
  void UpdateExcluded() FW_REQUIRES(mu_);

  const GpuHealthOptions options_;
  mutable Mutex mu_;
  std::map<std::string, HostState, std::less<>> hosts_ FW_GUARDED_BY(mu_);
  uint64_t version_ FW_GUARDED_BY(mu_) = 0;
  uint64_t ticks_ FW_GUARDED_BY(mu_) = 0;     // Observe calls
  ExcludedGpus excluded_ FW_GUARDED_BY(mu_);  // Excluded(), brought up to date by Observe
};

}  // namespace fleetwatch::server
