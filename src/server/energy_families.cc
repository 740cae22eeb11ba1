#include "server/energy_families.h"

#include <array>

#include "expose/text_format.h"

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

}  // namespace fleetwatch::server
