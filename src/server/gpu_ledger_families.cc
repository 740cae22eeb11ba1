#include "server/gpu_ledger_families.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "expose/text_format.h"
#include "model/gpu_names.h"
#include "model/status.h"
#include "server/gpu_ledger.h"
#include "server/server_families.h"

namespace fleetwatch::server {
namespace {

constexpr char kGpuStateSeconds[] = "fleetwatch_gpu_state_seconds_total";
constexpr char kRunIdleRatio[] = "fleetwatch_run_gpu_idle_ratio";
constexpr char kProjectIdleSeconds[] = "fleetwatch_project_gpu_idle_seconds_total";
constexpr char kProjectIdleCost[] = "fleetwatch_project_idle_cost_dollars_total";

}  // namespace

const std::vector<ServerFamily>& GpuLedgerFamilies() {
  using expose::MetricType;
  using expose::Section;
  static const std::vector<ServerFamily> families = {
      {Section::kInstance, kGpuStateSeconds, MetricType::kCounter,
       "Time each GPU spent in each state (busy, idle_held, reserved_idle, free, unhealthy), "
       "seconds"},
      {Section::kRun, kRunIdleRatio, MetricType::kGauge,
       "Share of the GPU time held by a run's jobs so far that was idle (as 0.0-1.0)"},
      {Section::kServer, kProjectIdleSeconds, MetricType::kCounter,
       "GPU time held by the jobs of a project's user but idle, running and finished, seconds"},
      {Section::kServer, kProjectIdleCost, MetricType::kCounter,
       "Money spent on GPU time held by the jobs of a project's user but idle, USD"},
  };
  return families;
}

std::vector<std::string> RenderGpuLedgerFamilies(const GpuLedgerTotals& totals,
                                                 const std::vector<model::Instance>& instances,
                                                 const std::vector<model::Run>& unfinished_runs) {
  std::vector<std::string> out(GpuLedgerFamilies().size());

  std::vector<const model::Instance*> shown;
  for (const model::Instance& i : instances) {
    if (i.status != model::InstanceStatus::kTerminated) shown.push_back(&i);
  }
  std::sort(shown.begin(), shown.end(), [](const model::Instance* a, const model::Instance* b) {
    return InstanceBefore(*a, *b);
  });
  // The ledger is ordered by instance id, then GPU index.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> ranges;
  for (size_t k = 0; k < totals.ledger.size();) {
    size_t end = k;
    while (end < totals.ledger.size() &&
           totals.ledger[end].instance_id == totals.ledger[k].instance_id) {
      ++end;
    }
    ranges[totals.ledger[k].instance_id] = {k, end};
    k = end;
  }
  for (const model::Instance* instance : shown) {
    auto range = ranges.find(instance->id);
    if (range == ranges.end()) continue;
    for (size_t k = range->second.first; k < range->second.second; ++k) {
      const store::GpuLedgerEntry& e = totals.ledger[k];
      const model::Gpu* gpu = FindGpu(*instance, e.gpu);
      std::string pairs;
      expose::AppendLabelPair(pairs, "dstack_project_name", instance->project_name);
      expose::AppendLabelPair(pairs, "dstack_fleet_name", instance->fleet_name);
      expose::AppendLabelPair(pairs, "dstack_instance_name", instance->name);
      expose::AppendLabelPair(pairs, "dstack_gpu", gpu != nullptr ? model::ShortGpuName(*gpu) : "");
      expose::AppendLabelPair(pairs, "gpu", std::to_string(e.gpu));
      for (GpuState state : kAllGpuStates) {
        std::string with_state = pairs;
        expose::AppendLabelPair(with_state, "state", GpuStateName(state));
        expose::AppendSample(out[0], kGpuStateSeconds, with_state,
                             e.state_seconds[static_cast<size_t>(state)]);
      }
    }
  }

  std::unordered_map<std::string_view, const store::RunGpuTime*> run_times;
  for (const store::RunGpuTime& r : totals.runs) run_times[r.run_id] = &r;
  std::vector<const model::Run*> runs;
  for (const model::Run& r : unfinished_runs) {
    auto it = run_times.find(r.id);
    if (it != run_times.end() && it->second->held_seconds > 0) runs.push_back(&r);
  }
  std::sort(runs.begin(), runs.end(), [](const model::Run* a, const model::Run* b) {
    return std::tie(a->project_name, a->user_name, a->run_name, a->id) <
           std::tie(b->project_name, b->user_name, b->run_name, b->id);
  });
  for (const model::Run* run : runs) {
    const store::RunGpuTime& t = *run_times.at(run->id);
    std::string pairs;
    expose::AppendLabelPair(pairs, "dstack_project_name", run->project_name);
    expose::AppendLabelPair(pairs, "dstack_user_name", run->user_name);
    expose::AppendLabelPair(pairs, "dstack_run_name", run->run_name);
    expose::AppendLabelPair(pairs, "dstack_run_id", run->id);
    expose::AppendLabelPair(pairs, "dstack_run_type", model::ToString(run->type));
    expose::AppendSample(out[1], kRunIdleRatio, pairs,
                         std::clamp(t.idle_seconds / t.held_seconds, 0.0, 1.0));
  }

  for (const store::GpuIdleTotal& t : totals.idle) {
    std::string pairs;
    expose::AppendLabelPair(pairs, "dstack_project_name", t.project_name);
    expose::AppendLabelPair(pairs, "dstack_user_name", t.user_name);
    expose::AppendSample(out[2], kProjectIdleSeconds, pairs, t.idle_seconds);
    expose::AppendSample(out[3], kProjectIdleCost, pairs, t.idle_cost_dollars);
  }
  return out;
}

}  // namespace fleetwatch::server
