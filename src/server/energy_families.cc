#include "server/energy_families.h"

#include <algorithm>
#include <array>
#include <functional>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "expose/text_format.h"
#include "model/status.h"

namespace fleetwatch::server {
namespace {

constexpr char kRunEnergy[] = "fleetwatch_run_gpu_energy_joules";
constexpr char kProjectEnergy[] = "fleetwatch_project_gpu_energy_joules_total";
constexpr char kProjectBusy[] = "fleetwatch_project_gpu_busy_seconds_total";
constexpr char kProjectCarbon[] = "fleetwatch_project_carbon_grams_total";

}  // namespace

const std::vector<ServerFamily>& EnergyFamilies() {
  using expose::MetricType;
  using expose::Section;
  static const std::vector<ServerFamily> families = {
      {Section::kRun, kRunEnergy, MetricType::kGauge,
       "GPU energy drawn by the jobs of an active run so far, joules"},
      {Section::kServer, kProjectEnergy, MetricType::kCounter,
       "GPU energy drawn by the jobs of a project's user, running and finished, joules"},
      {Section::kServer, kProjectBusy, MetricType::kCounter,
       "GPU time of the jobs of a project's user weighted by GPU utilization, seconds"},
      {Section::kServer, kProjectCarbon, MetricType::kCounter,
       "Estimated CO2e of the GPU energy of a project's user's jobs (energy times the grid "
       "intensity the operator configured), grams"},
  };
  return families;
}

std::string RenderRunEnergy(const std::vector<RunEnergy>& runs) {
  std::string out;
  for (const RunEnergy& r : runs) {
    const std::array<expose::Label, 5> labels = {{
        {"dstack_project_name", r.project_name},
        {"dstack_user_name", r.user_name},
        {"dstack_run_name", r.run_name},
        {"dstack_run_id", r.run_id},
        {"dstack_run_type", r.run_type},
    }};
    expose::AppendSample(out, kRunEnergy, expose::RenderLabelPairs(labels), r.joules);
  }
  return out;
}

std::vector<std::string> RenderProjectEnergy(const std::vector<store::EnergyTotal>& totals) {
  std::vector<std::string> out(3);
  for (const store::EnergyTotal& t : totals) {
    const std::array<expose::Label, 2> labels = {{
        {"dstack_project_name", t.project_name},
        {"dstack_user_name", t.user_name},
    }};
    const std::string pairs = expose::RenderLabelPairs(labels);
    expose::AppendSample(out[0], kProjectEnergy, pairs, t.energy_joules);
    expose::AppendSample(out[1], kProjectBusy, pairs, t.busy_gpu_seconds);
    expose::AppendSample(out[2], kProjectCarbon, pairs, t.carbon_grams);
  }
  return out;
}

uint64_t RunSetSignature(const std::vector<model::Run>& runs) {
  // A sum of the ids' hashes (order-free) mixed with their count.
  uint64_t sum = 0;
  for (const model::Run& r : runs) sum += std::hash<std::string>()(r.id) * 0x9E3779B97F4A7C15ull;
  return sum ^ (static_cast<uint64_t>(runs.size()) << 1);
}

StoredEnergyFamilies::StoredEnergyFamilies(store::Store& store,
                                           expose::ExpositionSnapshot& snapshot,
                                           TimeMicros interval)
    : store_(store),
      snapshot_(snapshot),
      interval_(interval),
      families_(RegisterFamilies(snapshot, EnergyFamilies())) {}

Status StoredEnergyFamilies::Refresh(const TickReport& report, bool moved) {
  const uint64_t signature = RunSetSignature(report.runs);
  const TimeMicros now = report.started_at;
  dirty_ |= moved || signature != runs_signature_ || now - rendered_at_ >= interval_;
  if (!dirty_) return Status::Ok();
  std::vector<std::string> run_ids;
  run_ids.reserve(report.runs.size());
  for (const model::Run& r : report.runs) run_ids.push_back(r.id);
  FW_ASSIGN_OR_RETURN(std::vector<store::RunEnergyTotal> energy, store_.ListRunEnergy(run_ids));
  FW_ASSIGN_OR_RETURN(std::vector<store::EnergyTotal> totals, store_.ListEnergyTotals());
  std::unordered_map<std::string_view, double> by_run;
  for (const store::RunEnergyTotal& e : energy) by_run[e.run_id] = e.energy_joules;
  std::vector<RunEnergy> runs;
  for (const model::Run& run : report.runs) {
    auto it = by_run.find(run.id);
    if (it == by_run.end()) continue;
    runs.push_back(RunEnergy{run.project_name, run.user_name, run.run_name, run.id,
                             std::string(model::ToString(run.type)), it->second});
  }
  std::sort(runs.begin(), runs.end(), [](const RunEnergy& a, const RunEnergy& b) {
    return std::tie(a.project_name, a.run_name, a.run_id) <
           std::tie(b.project_name, b.run_name, b.run_id);
  });
  std::vector<expose::FragmentChange> changes;
  changes.push_back({families_[0], "all", expose::Fragment{RenderRunEnergy(runs), {}}});
  std::vector<std::string> texts = RenderProjectEnergy(totals);
  for (size_t k = 0; k < texts.size(); ++k) {
    changes.push_back({families_[k + 1], "all", expose::Fragment{std::move(texts[k]), {}}});
  }
  snapshot_.Apply(std::move(changes));
  dirty_ = false;
  runs_signature_ = signature;
  rendered_at_ = now;
  return Status::Ok();
}

}  // namespace fleetwatch::server
