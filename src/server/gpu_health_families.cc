#include "server/gpu_health_families.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "expose/text_format.h"
#include "model/gpu_reading.h"
#include "util/check.h"

namespace fleetwatch::server {
namespace {

using expose::AppendLabelPair;
using expose::AppendSample;
using expose::MetricType;

}  // namespace

const std::array<ServerFamily, kGpuHealthFamilies>& GpuHealthFamilies() {
  constexpr expose::Section kInstance = expose::Section::kInstance;
  static constexpr std::array<ServerFamily, kGpuHealthFamilies> kFamilies = {{
      {kInstance, "fleetwatch_instance_health", MetricType::kGauge,
       "Instance health (the worst of its GPUs), 1 for the current status"},
      {kInstance, "fleetwatch_gpu_health", MetricType::kGauge,
       "GPU health, 1 for the current status"},
      {kInstance, "fleetwatch_gpu_xid_errors_total", MetricType::kCounter,
       "XID errors reported for the GPU, with the recommended action"},
      {kInstance, "fleetwatch_gpu_ecc_errors_total", MetricType::kCounter,
       "ECC errors over the GPU's life, by type"},
      {kInstance, "fleetwatch_gpu_remapped_rows", MetricType::kGauge,
       "Memory rows remapped by the GPU, by the kind of error that caused it"},
      {kInstance, "fleetwatch_gpu_power_watts", MetricType::kGauge, "GPU power draw in watts"},
      {kInstance, "fleetwatch_gpu_temperature_celsius", MetricType::kGauge,
       "GPU core temperature in degrees Celsius"},
      {kInstance, "fleetwatch_gpu_throttle", MetricType::kGauge,
       "GPU clock throttle reasons, 1 for each active reason"},
  }};
  return kFamilies;
}

std::string GpuHealthKey(const model::Instance& instance) {
  std::string key = instance.project_name;
  key += '\0';
  key += instance.name;
  key += '\0';
  key += instance.id;
  return key;
}

void AppendGpuHealthSamples(const InstanceExport& e,
                            const std::array<std::string*, kGpuHealthFamilies>& out) {
  const auto& f = GpuHealthFamilies();
  std::string base;
  AppendLabelPair(base, "dstack_project_name", e.instance.project_name);
  AppendLabelPair(base, "dstack_fleet_name", e.instance.fleet_name);
  AppendLabelPair(base, "dstack_instance_name", e.instance.name);
  for (GpuHealthStatus s : kAllGpuHealthStatuses) {
    std::string pairs = base;
    AppendLabelPair(pairs, "status", ToString(s));
    AppendSample(*out[0], f[0].name, pairs, s == e.health.status ? 1.0 : 0.0);
  }
  for (const GpuExport& g : e.gpus) {
    std::string gpu = base;
    AppendLabelPair(gpu, "gpu", std::to_string(g.index));
    for (GpuHealthStatus s : kAllGpuHealthStatuses) {
      std::string pairs = gpu;
      AppendLabelPair(pairs, "status", ToString(s));
      AppendSample(*out[1], f[1].name, pairs, s == g.health.status ? 1.0 : 0.0);
    }
    for (const auto& [xid, total] : g.counters.xid_totals) {
      std::string pairs = gpu;
      AppendLabelPair(pairs, "xid", std::to_string(xid));
      AppendLabelPair(pairs, "action", ToString(LookUpXid(xid).action));
      AppendSample(*out[2], f[2].name, pairs, static_cast<double>(total));
    }
    const std::pair<const char*, const std::optional<int64_t>*> ecc[] = {
        {"corrected", &g.counters.ecc_corrected_total},
        {"uncorrected", &g.counters.ecc_uncorrected_total}};
    for (const auto& [type, value] : ecc) {
      if (!*value) continue;
      std::string pairs = gpu;
      AppendLabelPair(pairs, "type", type);
      AppendSample(*out[3], f[3].name, pairs, static_cast<double>(**value));
    }
    if (g.remapped_rows) {
      const std::pair<const char*, int64_t> rows[] = {
          {"correctable", g.remapped_rows->correctable},
          {"uncorrectable", g.remapped_rows->uncorrectable}};
      for (const auto& [kind, value] : rows) {
        std::string pairs = gpu;
        AppendLabelPair(pairs, "kind", kind);
        AppendSample(*out[4], f[4].name, pairs, static_cast<double>(value));
      }
    }
    if (g.power_mw) AppendSample(*out[5], f[5].name, gpu, static_cast<double>(*g.power_mw) / 1000);
    if (g.temperature_c) {
      AppendSample(*out[6], f[6].name, gpu, static_cast<double>(*g.temperature_c));
    }
    if (g.throttle_reasons) {
      // Active reasons only: nine series per GPU, mostly zeros, would be a tenth of the scrape
      // at a thousand hosts; a reason that clears ends its series.
      for (const std::string& reason : model::ThrottleReasonNames(*g.throttle_reasons)) {
        std::string pairs = gpu;
        AppendLabelPair(pairs, "reason", reason);
        AppendSample(*out[7], f[7].name, pairs, 1.0);
      }
    }
  }
}

GpuHealthExposition::GpuHealthExposition(const GpuHealthMonitor& monitor,
                                         expose::ExpositionSnapshot& snapshot)
    : monitor_(monitor), snapshot_(snapshot) {
  const std::vector<expose::FamilyId> ids = RegisterFamilies(snapshot_, GpuHealthFamilies());
  std::copy(ids.begin(), ids.end(), ids_.begin());
}

void GpuHealthExposition::Update() {
  MutexLock lock(mu_);
  const uint64_t version = monitor_.version();
  if (updated_ && version == version_) return;
  updated_ = true;
  version_ = version;
  std::map<std::string, std::array<std::string, kGpuHealthFamilies>> next;
  std::vector<expose::FragmentChange> changes;
  for (const auto& [id, e] : monitor_.Export()) {
    std::array<std::string, kGpuHealthFamilies> texts;
    std::array<std::string*, kGpuHealthFamilies> out;
    for (size_t k = 0; k < kGpuHealthFamilies; ++k) out[k] = &texts[k];
    AppendGpuHealthSamples(e, out);
    std::string key = GpuHealthKey(e.instance);
    auto old = rendered_.find(key);
    for (size_t k = 0; k < kGpuHealthFamilies; ++k) {
      if (old != rendered_.end() && old->second[k] == texts[k]) continue;
      changes.push_back({ids_[k], key, expose::Fragment{texts[k], {}}});
    }
    next.emplace(std::move(key), std::move(texts));
  }
  for (const auto& [key, texts] : rendered_) {
    if (next.count(key)) continue;
    for (size_t k = 0; k < kGpuHealthFamilies; ++k) changes.push_back({ids_[k], key, {}});
  }
  rendered_ = std::move(next);
  if (!changes.empty()) snapshot_.Apply(std::move(changes));
}

}  // namespace fleetwatch::server
