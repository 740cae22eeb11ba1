#include "server/job_metrics.h"

#include <cmath>

#include "model/names.h"
#include "model/run_spec.h"

namespace fleetwatch::server {

std::vector<MetricSeries> ComputeJobMetrics(const std::vector<model::JobMetricsPoint>& points,
                                            const JobAllocation& allocation) {
  if (points.size() < 2) return {};
  const size_t n = points.size() - 1;
  std::vector<TimeMicros> timestamps;
  for (size_t k = 0; k < n; ++k) timestamps.push_back(points[k].timestamp_micro);
  auto series = [&](std::string name, auto value_of) {
    MetricSeries s{std::move(name), timestamps, {}};
    for (size_t k = 0; k < n; ++k) s.values.push_back(value_of(k));
    return s;
  };
  std::vector<MetricSeries> out;
  out.push_back(series("cpu_usage_percent", [&](size_t k) -> int64_t {
    const model::JobMetricsPoint& p = points[k];
    const model::JobMetricsPoint& prev = points[k + 1];
    TimeMicros dt = p.timestamp_micro - prev.timestamp_micro;
    if (dt <= 0) return 0;
    double percent = static_cast<double>(p.cpu_usage_micro - prev.cpu_usage_micro) /
                     static_cast<double>(dt) * 100.0;
    return static_cast<int64_t>(std::nearbyint(std::max(percent, 0.0)));  // half to even
  }));
  out.push_back(
      series("memory_usage_bytes", [&](size_t k) { return points[k].memory_usage_bytes; }));
  out.push_back(series("memory_working_set_bytes",
                       [&](size_t k) { return points[k].memory_working_set_bytes; }));
  out.push_back(series("cpus_detected_num", [&](size_t) -> int64_t { return allocation.cpus; }));
  out.push_back(
      series("memory_total_bytes", [&](size_t) { return allocation.memory_total_bytes; }));
  out.push_back(series("gpus_detected_num", [&](size_t) -> int64_t { return allocation.gpus; }));
  if (allocation.gpus > 0) {
    out.push_back(series("gpu_memory_total_bytes",
                         [&](size_t) { return allocation.gpu_memory_total_bytes; }));
  }
  size_t gpus = points[0].gpus_util_percent.size();
  bool steady = true;
  for (size_t k = 0; k < n; ++k) {
    steady = steady && points[k].gpus_util_percent.size() == gpus &&
             points[k].gpus_memory_usage_bytes.size() == gpus;
  }
  if (steady) {
    for (size_t i = 0; i < gpus; ++i) {
      out.push_back(series("gpu_memory_usage_bytes_gpu" + std::to_string(i),
                           [&](size_t k) { return points[k].gpus_memory_usage_bytes[i]; }));
    }
    for (size_t i = 0; i < gpus; ++i) {
      out.push_back(series("gpu_util_percent_gpu" + std::to_string(i),
                           [&](size_t k) { return points[k].gpus_util_percent[i]; }));
    }
  }
  return out;
}

Result<std::vector<MetricSeries>> JobMetricsService::Get(const ProjectAccess& access,
                                                         std::string_view run_name,
                                                         const JobMetricsQuery& query) {
  auto not_found = [&](std::string what) { return NotFound(std::move(what)); };
  if (!model::IsValidName(run_name)) return not_found("run not found");
  model::Run run;
  if (query.run_id) {
    Result<model::Run> by_id = store_.GetRunById(*query.run_id);
    if (!by_id.ok() || by_id->project_id != access.project.id || by_id->run_name != run_name) {
      return not_found("run '" + std::string(run_name) + "' with that run_id not found");
    }
    run = std::move(by_id).value();
  } else {
    Result<model::Run> newest = store_.GetRun(access.project.id, run_name);
    if (!newest.ok()) {
      if (newest.status().code() == StatusCode::kNotFound) {
        return not_found("run '" + std::string(run_name) + "' not found");
      }
      return newest.status();
    }
    run = std::move(newest).value();
  }
  const model::Job* job = nullptr;
  for (const model::Job& j : run.jobs) {
    if (j.job_num == query.job_num && j.replica_num == query.replica_num) job = &j;
  }
  if (job == nullptr) {
    return not_found("run '" + run.run_name + "' has no job " + std::to_string(query.job_num) +
                     " replica " + std::to_string(query.replica_num));
  }
  FW_ASSIGN_OR_RETURN(
      std::vector<model::JobMetricsPoint> points,
      store_.ListJobMetricsPoints(job->id, query.after, query.before, query.limit + 1));
  JobAllocation allocation;
  allocation.gpus = static_cast<int>(job->gpu_indices.size());
  Result<model::RunConfiguration> config =
      model::ParseRunConfiguration(run.configuration_json, model::ConfigFormat::kJson);
  if (config.ok()) {
    allocation.cpus = config->resources.cpus;
    allocation.memory_total_bytes = config->resources.memory_bytes.value_or(0);
  }
  if (job->instance_id) {
    FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances,
                        store_.ListInstances(access.project.id));
    for (const model::Instance& instance : instances) {
      if (instance.id != *job->instance_id) continue;
      if (allocation.memory_total_bytes == 0) {
        allocation.memory_total_bytes = instance.resources.memory_bytes;
      }
      for (const model::Gpu& g : instance.resources.gpus) {
        if (!job->gpu_indices.empty() && g.index == job->gpu_indices[0]) {
          allocation.gpu_memory_total_bytes = g.memory_bytes;
        }
      }
    }
  }
  return ComputeJobMetrics(points, allocation);
}

}  // namespace fleetwatch::server
