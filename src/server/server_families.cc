#include "server/server_families.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <tuple>
#include <utility>

#include "expose/text_format.h"
#include "model/gpu_names.h"
#include "model/run_spec.h"
#include "model/status.h"
#include "util/check.h"

namespace fleetwatch::server {
namespace {

using expose::AppendSample;
using expose::Label;
using expose::MetricType;
using expose::Section;

// Family names, spelled once.
constexpr char kHostInstanceType[] = "instance";
constexpr char kInstanceDuration[] = "dstack_instance_duration_seconds_total";
constexpr char kInstancePrice[] = "dstack_instance_price_dollars_per_hour";
constexpr char kInstanceGpuCount[] = "dstack_instance_gpu_count";
constexpr char kInstanceStatus[] = "dstack_instance_status";
constexpr char kInstanceUnreachable[] = "dstack_instance_unreachable";
constexpr char kRunCount[] = "dstack_run_count_total";
constexpr char kRunTerminated[] = "dstack_run_count_terminated_total";
constexpr char kRunFailed[] = "dstack_run_count_failed_total";
constexpr char kRunDone[] = "dstack_run_count_done_total";
constexpr char kRuns[] = "dstack_runs";
constexpr char kJobDuration[] = "dstack_job_duration_seconds_total";
constexpr char kJobPrice[] = "dstack_job_price_dollars_per_hour";
constexpr char kJobGpuCount[] = "dstack_job_gpu_count";
constexpr char kJobCpuCount[] = "dstack_job_cpu_count";
constexpr char kJobCpuTime[] = "dstack_job_cpu_time_seconds_total";
constexpr char kJobMemoryTotal[] = "dstack_job_memory_total_bytes";
constexpr char kJobMemoryUsage[] = "dstack_job_memory_usage_bytes";
constexpr char kJobMemoryWorkingSet[] = "dstack_job_memory_working_set_bytes";
constexpr char kJobGpuUsage[] = "dstack_job_gpu_usage_ratio";
constexpr char kJobGpuMemoryTotal[] = "dstack_job_gpu_memory_total_bytes";
constexpr char kJobGpuMemoryUsage[] = "dstack_job_gpu_memory_usage_bytes";
constexpr char kSubmitToProvision[] = "dstack_submit_to_provision_duration_seconds";
constexpr char kPendingRuns[] = "dstack_pending_runs_total";
constexpr char kProjectCost[] = "dstack_project_cost_dollars_total";
constexpr char kProjectGpuSeconds[] = "dstack_project_gpu_seconds_total";
constexpr char kAgentPollErrors[] = "fleetwatch_agent_poll_errors_total";
constexpr char kBuildInfo[] = "fleetwatch_build_info";
constexpr char kDcgmTextErrors[] = "fleetwatch_dcgm_text_errors_total";
constexpr char kDcgmFamiliesDropped[] = "fleetwatch_dcgm_families_dropped_total";

constexpr std::array kAllRunStatuses = {
    model::RunStatus::kPending, model::RunStatus::kSubmitted,   model::RunStatus::kProvisioning,
    model::RunStatus::kRunning, model::RunStatus::kTerminating, model::RunStatus::kTerminated,
    model::RunStatus::kFailed,  model::RunStatus::kDone,
};

double Seconds(TimeMicros micros) { return static_cast<double>(micros) / 1e6; }

constexpr char kReplicaInfo[] = "fleetwatch_replica_info";

// A time-valued sample's line as a scrape at `now` renders it.
void AppendTimedAt(std::string& out, expose::TimedSample sample, TimeMicros now) {
  const std::vector<expose::TimedSample> one = {std::move(sample)};
  expose::AppendTimedSamples(out, one, now);
}

std::vector<const model::Instance*> SortedInstances(const std::vector<model::Instance>& all) {
  std::vector<const model::Instance*> instances;
  for (const model::Instance& i : all) {
    if (InstanceStatusExported(i.status)) instances.push_back(&i);
  }
  std::sort(instances.begin(), instances.end(),
            [](const auto* a, const auto* b) { return InstanceBefore(*a, *b); });
  return instances;
}

void RenderInstances(const ExpositionState& state, TimeMicros now,
                     std::map<std::string, std::string>& out) {
  std::array<std::string*, kInstanceSampleFamilies> texts{};
  for (size_t k = 0; k < texts.size(); ++k) texts[k] = &out[InstanceSampleFamilyNames()[k]];
  for (const model::Instance* i : SortedInstances(state.instances)) {
    const std::string pairs = InstancePairs(*i);
    if (InstanceExported(i->status)) {
      AppendTimedAt(out[kInstanceDuration], InstanceDuration(pairs, i->created_at), now);
    }
    AppendInstanceSamples(*i, pairs, texts);
  }
}

const model::Instance* InstanceOf(const std::map<std::string_view, const model::Instance*>& by_id,
                                  const model::Job& job) {
  if (!job.instance_id) return nullptr;
  auto it = by_id.find(*job.instance_id);
  return it != by_id.end() ? it->second : nullptr;
}

void RenderJobs(const ExpositionState& state, TimeMicros now, const ExpositionOptions& options,
                std::map<std::string, std::string>& out) {
  std::map<std::string_view, const model::Instance*> instances;
  for (const model::Instance& i : state.instances) instances[i.id] = &i;
  struct Entry {
    const model::Run* run;
    const model::Job* job;
  };
  std::vector<Entry> jobs;
  for (const model::Run& run : state.unfinished_runs) {
    for (const model::Job& job : run.jobs) {
      if (JobExported(job.status)) jobs.push_back({&run, &job});
    }
  }
  std::sort(jobs.begin(), jobs.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.run->project_name, a.job->job_name, a.job->id) <
           std::tie(b.run->project_name, b.job->job_name, b.job->id);
  });
  std::array<std::string*, kJobSampleFamilies> texts{};
  for (size_t k = 0; k < texts.size(); ++k) texts[k] = &out[JobSampleFamilyNames()[k]];
  std::map<std::string_view, model::ResourcesRequest> resources;  // run id → requested
  for (const Entry& e : jobs) {
    const model::Run& run = *e.run;
    const model::Job& job = *e.job;
    const model::Instance* instance = InstanceOf(instances, job);
    auto [res, inserted] = resources.try_emplace(run.id);
    if (inserted) {
      if (auto known = state.run_resources.find(run.id); known != state.run_resources.end()) {
        res->second = known->second;
      } else {
        res->second = RunResources(run);
      }
    }
    const std::string pairs = JobPairs(run, job, instance);
    AppendTimedAt(out[kJobDuration], JobDuration(pairs, job.submitted_at), now);
    const model::JobMetricsPoint* point = nullptr;
    if (auto it = state.newest_points.find(job.id); it != state.newest_points.end()) {
      if (now - it->second.timestamp_micro <= options.stale_after) point = &it->second;
    }
    AppendJobSamples(job, instance, res->second, point, pairs, texts);
  }
}

}  // namespace

bool InstanceExported(model::InstanceStatus s) {
  return s == model::InstanceStatus::kProvisioning || s == model::InstanceStatus::kIdle ||
         s == model::InstanceStatus::kBusy || s == model::InstanceStatus::kTerminating;
}

// dstack_instance_status: every instance that exists on a host or is being set up.
bool InstanceStatusExported(model::InstanceStatus s) {
  return s != model::InstanceStatus::kTerminated;
}

bool InstanceBefore(const model::Instance& a, const model::Instance& b) {
  return std::tie(a.project_name, a.name, a.id) < std::tie(b.project_name, b.name, b.id);
}

std::string InstancePairs(const model::Instance& i) {
  // dstack's values: its short GPU name, and "instance", the type it gives every host of an
  // SSH fleet (fleetwatch's hosts, the local one included, are all such hosts).
  const std::string gpu =
      i.resources.gpus.empty() ? "" : model::ShortGpuName(i.resources.gpus.front());
  // fleetwatch's instances are hosts with no backend instance type: the label stays empty.
  const std::array<Label, 8> labels = {{
      {"dstack_project_name", i.project_name},
      {"dstack_fleet_name", i.fleet_name},
      {"dstack_fleet_id", i.fleet_id},
      {"dstack_instance_name", i.name},
      {"dstack_instance_id", i.id},
      {"dstack_instance_type", kHostInstanceType},
      {"dstack_backend", i.backend},
      {"dstack_gpu", gpu},
  }};
  return expose::RenderLabelPairs(labels);
}

expose::TimedSample InstanceDuration(std::string_view pairs, TimeMicros created_at) {
  // The sample line up to its value: AppendSample's, cut before the value.
  std::string line;
  AppendSample(line, kInstanceDuration, pairs, 0);
  line.resize(line.size() - 4);  // "0.0\n"
  return expose::TimedSample{std::move(line), created_at};
}

const std::array<const char*, kInstanceSampleFamilies>& InstanceSampleFamilyNames() {
  static constexpr std::array<const char*, kInstanceSampleFamilies> kNames = {
      kInstancePrice, kInstanceGpuCount, kInstanceStatus, kInstanceUnreachable};
  return kNames;
}

void AppendInstanceSamples(const model::Instance& i, std::string_view pairs,
                           const std::array<std::string*, kInstanceSampleFamilies>& out) {
  if (InstanceExported(i.status)) {
    AppendSample(*out[0], kInstancePrice, pairs, i.price.value_or(0.0));
    AppendSample(*out[1], kInstanceGpuCount, pairs, static_cast<double>(i.resources.gpus.size()));
  }
  std::string with_status(pairs);
  expose::AppendLabelPair(with_status, "status", model::ToString(i.status));
  AppendSample(*out[2], kInstanceStatus, with_status, 1.0);
  AppendSample(*out[3], kInstanceUnreachable, pairs, i.unreachable ? 1 : 0);
}

std::string PollErrorPairs(const model::Instance& i) {
  const std::array<Label, 3> labels = {{
      {"dstack_project_name", i.project_name},
      {"dstack_fleet_name", i.fleet_name},
      {"dstack_instance_name", i.name},
  }};
  return expose::RenderLabelPairs(labels);
}

void AppendPollErrors(std::string& out, std::string_view pairs, uint64_t errors) {
  AppendSample(out, kAgentPollErrors, pairs, static_cast<double>(errors));
}

std::string JobKey(const model::Run& run, const model::Job& job) {
  std::string key;
  key.reserve(run.project_name.size() + job.job_name.size() + job.id.size() + 2);
  key += run.project_name;
  key += '\0';
  key += job.job_name;
  key += '\0';
  key += job.id;
  return key;
}

std::string JobPairs(const model::Run& run, const model::Job& job,
                     const model::Instance* instance) {
  const expose::JobLabelValues values = JobLabelValuesOf(run, job, instance);
  return expose::RenderLabelPairs(expose::JobLabels(values));
}

expose::TimedSample JobDuration(std::string_view pairs, TimeMicros submitted_at) {
  std::string line;
  AppendSample(line, kJobDuration, pairs, 0);
  line.resize(line.size() - 4);  // "0.0\n"
  return expose::TimedSample{std::move(line), submitted_at};
}

const std::array<const char*, kJobSampleFamilies>& JobSampleFamilyNames() {
  static constexpr std::array<const char*, kJobSampleFamilies> kNames = {
      kJobPrice,       kJobGpuCount,         kJobCpuCount, kJobCpuTime,        kJobMemoryTotal,
      kJobMemoryUsage, kJobMemoryWorkingSet, kJobGpuUsage, kJobGpuMemoryTotal, kJobGpuMemoryUsage};
  return kNames;
}

void AppendJobSamples(const model::Job& job, const model::Instance* instance,
                      const model::ResourcesRequest& resources, const model::JobMetricsPoint* point,
                      std::string_view pairs,
                      const std::array<std::string*, kJobSampleFamilies>& out) {
  int64_t memory_total = resources.memory_bytes.value_or(0);
  if (memory_total == 0 && instance != nullptr) memory_total = instance->resources.memory_bytes;
  AppendSample(*out[0], kJobPrice, pairs,
               instance != nullptr ? instance->price.value_or(0.0) : 0.0);
  AppendSample(*out[1], kJobGpuCount, pairs, static_cast<double>(job.gpu_indices.size()));
  AppendSample(*out[2], kJobCpuCount, pairs, resources.cpus);
  AppendSample(*out[4], kJobMemoryTotal, pairs, static_cast<double>(memory_total));
  if (point == nullptr) return;
  AppendSample(*out[3], kJobCpuTime, pairs, Seconds(point->cpu_usage_micro));
  AppendSample(*out[5], kJobMemoryUsage, pairs, static_cast<double>(point->memory_usage_bytes));
  AppendSample(*out[6], kJobMemoryWorkingSet, pairs,
               static_cast<double>(point->memory_working_set_bytes));
  const size_t gpu_samples =
      std::min(point->gpus_util_percent.size(), point->gpus_memory_usage_bytes.size());
  for (size_t i = 0; i < gpu_samples; ++i) {
    std::string gpu_pairs(pairs);
    expose::AppendLabelPair(gpu_pairs, "dstack_gpu_num", std::to_string(i));
    AppendSample(*out[7], kJobGpuUsage, gpu_pairs,
                 static_cast<double>(point->gpus_util_percent[i]) / 100.0);
    // The job's GPUs are in the order of gpu_indices (the order of the point's GPU vectors).
    const model::Gpu* gpu = instance != nullptr && i < job.gpu_indices.size()
                                ? FindGpu(*instance, job.gpu_indices[i])
                                : nullptr;
    AppendSample(*out[8], kJobGpuMemoryTotal, gpu_pairs,
                 gpu != nullptr ? static_cast<double>(gpu->memory_bytes) : 0.0);
    AppendSample(*out[9], kJobGpuMemoryUsage, gpu_pairs,
                 static_cast<double>(point->gpus_memory_usage_bytes[i]));
  }
}

void RenderRunFamilies(const std::vector<store::RunCount>& run_counts,
                       std::map<std::string, std::string>& out) {
  struct Counts {
    int64_t all = 0, terminated = 0, failed = 0, done = 0;
  };
  std::map<std::pair<std::string, std::string>, Counts> by_user;  // (project, user)
  std::map<std::string, std::map<model::RunStatus, int64_t>> by_project;
  for (const store::RunCount& c : run_counts) {
    Counts& counts = by_user[{c.project_name, c.user_name}];
    counts.all += c.all;
    if (c.status == model::RunStatus::kTerminated) counts.terminated += c.all;
    if (c.status == model::RunStatus::kFailed) counts.failed += c.all;
    if (c.status == model::RunStatus::kDone) counts.done += c.all;
    by_project[c.project_name][c.status] += c.undeleted;
  }
  for (const auto& [key, counts] : by_user) {
    const std::array<Label, 2> labels = {{
        {"dstack_project_name", key.first},
        {"dstack_user_name", key.second},
    }};
    std::string pairs = expose::RenderLabelPairs(labels);
    AppendSample(out[kRunCount], kRunCount, pairs, static_cast<double>(counts.all));
    AppendSample(out[kRunTerminated], kRunTerminated, pairs,
                 static_cast<double>(counts.terminated));
    AppendSample(out[kRunFailed], kRunFailed, pairs, static_cast<double>(counts.failed));
    AppendSample(out[kRunDone], kRunDone, pairs, static_cast<double>(counts.done));
  }
  // Every status of every project that has runs, zeros included: a queue that empties reads 0
  // instead of its series vanishing.
  for (const auto& [project, counts] : by_project) {
    for (model::RunStatus status : kAllRunStatuses) {
      const std::array<Label, 2> labels = {{
          {"dstack_project_name", project},
          {"status", model::ToString(status)},
      }};
      auto it = counts.find(status);
      AppendSample(out[kRuns], kRuns, expose::RenderLabelPairs(labels),
                   static_cast<double>(it == counts.end() ? 0 : it->second));
    }
  }
}

void RenderServerCounters(const ExpositionState& state, const ExpositionOptions& options,
                          std::map<std::string, std::string>& out) {
  const std::array<Label, 2> build = {
      {{"version", options.version}, {"revision", options.revision}}};
  AppendSample(out[kBuildInfo], kBuildInfo, expose::RenderLabelPairs(build), 1.0);
  // The histogram and the pending runs per (project, run type), from the persisted totals.
  struct Histogram {
    std::array<int64_t, kSubmitToProvisionBuckets.size() + 1> counts{};
    double sum = 0;
    int64_t count = 0;
  };
  std::map<std::pair<std::string, std::string>, Histogram> provisioned;
  std::map<std::pair<std::string, std::string>, int64_t> pending;
  for (const store::RunEventTotal& t : state.run_events) {
    if (t.kind == store::kRunEventPending) {
      pending[{t.project_name, t.run_type}] += t.count;
    } else if (t.kind == store::kRunEventProvisioned) {
      Histogram& h = provisioned[{t.project_name, t.run_type}];
      const size_t bucket = std::min<size_t>(static_cast<size_t>(std::max(0, t.bucket)),
                                             kSubmitToProvisionBuckets.size());
      h.counts[bucket] += t.count;
      h.sum += t.seconds;
      h.count += t.count;
    }
  }
  const std::string bucket_name = std::string(kSubmitToProvision) + "_bucket";
  for (const auto& [key, histogram] : provisioned) {
    const std::array<Label, 2> labels = {{{"project_name", key.first}, {"run_type", key.second}}};
    std::string pairs = expose::RenderLabelPairs(labels);
    std::string& text = out[kSubmitToProvision];
    int64_t cumulative = 0;
    for (size_t b = 0; b < histogram.counts.size(); ++b) {
      cumulative += histogram.counts[b];
      std::string le = "+Inf";
      if (b < kSubmitToProvisionBuckets.size()) {
        le.clear();
        expose::AppendValue(le, kSubmitToProvisionBuckets[b]);
      }
      std::string with_le = pairs;
      expose::AppendLabelPair(with_le, "le", le);
      AppendSample(text, bucket_name, with_le, static_cast<double>(cumulative));
    }
    AppendSample(text, std::string(kSubmitToProvision) + "_sum", pairs, histogram.sum);
    AppendSample(text, std::string(kSubmitToProvision) + "_count", pairs,
                 static_cast<double>(histogram.count));
  }
  for (const auto& [key, count] : pending) {
    const std::array<Label, 2> labels = {{{"project_name", key.first}, {"run_type", key.second}}};
    AppendSample(out[kPendingRuns], kPendingRuns, expose::RenderLabelPairs(labels),
                 static_cast<double>(count));
  }
  for (const store::UsageTotal& u : state.usage) {
    const std::array<Label, 2> labels = {{
        {"dstack_project_name", u.project_name},
        {"dstack_user_name", u.user_name},
    }};
    std::string pairs = expose::RenderLabelPairs(labels);
    AppendSample(out[kProjectCost], kProjectCost, pairs, u.cost_dollars);
    AppendSample(out[kProjectGpuSeconds], kProjectGpuSeconds, pairs, u.gpu_seconds);
  }
}

void RenderReplicaCounters(const ReplicaState& state, const ExpositionOptions& options,
                           std::map<std::string, std::string>& out) {
  const std::array<Label, 3> info = {{{"replica_id", state.replica_id},
                                      {"version", options.version},
                                      {"revision", options.revision}}};
  AppendSample(out[kReplicaInfo], kReplicaInfo, expose::RenderLabelPairs(info), 1.0);
  AppendSample(out[kDcgmTextErrors], kDcgmTextErrors, "",
               static_cast<double>(state.dcgm_text_errors));
  AppendSample(out[kDcgmFamiliesDropped], kDcgmFamiliesDropped, "",
               static_cast<double>(state.dcgm_families_dropped));
}

model::ResourcesRequest RunResources(const model::Run& run) {
  Result<model::RunConfiguration> config =
      model::ParseRunConfiguration(run.configuration_json, model::ConfigFormat::kJson);
  return config.ok() ? config->resources : model::ResourcesRequest{};
}

const model::Gpu* FindGpu(const model::Instance& instance, int index) {
  for (const model::Gpu& g : instance.resources.gpus) {
    if (g.index == index) return &g;
  }
  return nullptr;
}

bool JobExported(model::JobStatus s) {
  return s == model::JobStatus::kProvisioning || s == model::JobStatus::kPulling ||
         s == model::JobStatus::kRunning || s == model::JobStatus::kTerminating;
}

int SubmitToProvisionBucket(double seconds) {
  size_t b = 0;
  while (b < kSubmitToProvisionBuckets.size() && seconds > kSubmitToProvisionBuckets[b]) ++b;
  return static_cast<int>(b);
}

expose::JobLabelValues JobLabelValuesOf(const model::Run& run, const model::Job& job,
                                        const model::Instance* instance) {
  const model::Gpu* first_gpu = nullptr;
  if (instance != nullptr && !job.gpu_indices.empty()) {
    first_gpu = FindGpu(*instance, job.gpu_indices.front());
  }
  expose::JobLabelValues values;
  values.project_name = run.project_name;
  values.user_name = run.user_name;
  values.run_name = run.run_name;
  values.run_id = run.id;
  values.job_name = job.job_name;
  values.job_id = job.id;
  values.job_num = std::to_string(job.job_num);
  values.replica_num = std::to_string(job.replica_num);
  values.run_type = model::ToString(run.type);
  values.backend = instance != nullptr ? instance->backend : "";
  values.gpu = first_gpu != nullptr ? model::ShortGpuName(*first_gpu) : "";
  return values;
}

const std::vector<ServerFamily>& ServerFamilies() {
  static const std::vector<ServerFamily> kFamilies = {
      {Section::kInstance, kInstanceDuration, MetricType::kCounter,
       "Total seconds the instance is running"},
      {Section::kInstance, kInstancePrice, MetricType::kGauge, "Instance price, USD/hour"},
      {Section::kInstance, kInstanceGpuCount, MetricType::kGauge, "Instance GPU count"},
      {Section::kInstance, kInstanceStatus, MetricType::kGauge,
       "Instance status: 1 for the instance's current status"},
      {Section::kInstance, kInstanceUnreachable, MetricType::kGauge,
       "1 while the instance's agent has not answered for longer than the server's grace period"},
      {Section::kRun, kRunCount, MetricType::kCounter, "Total runs count"},
      {Section::kRun, kRunTerminated, MetricType::kCounter, "Terminated runs count"},
      {Section::kRun, kRunFailed, MetricType::kCounter, "Failed runs count"},
      {Section::kRun, kRunDone, MetricType::kCounter, "Done runs count"},
      {Section::kRun, kRuns, MetricType::kGauge, "Current number of runs in each status"},
      {Section::kJob, kJobDuration, MetricType::kCounter, "Total seconds the job is running"},
      {Section::kJob, kJobPrice, MetricType::kGauge, "Job instance price, USD/hour"},
      {Section::kJob, kJobGpuCount, MetricType::kGauge, "Job GPU count"},
      {Section::kJob, kJobCpuCount, MetricType::kGauge, "Job CPU count"},
      {Section::kJob, kJobCpuTime, MetricType::kCounter,
       "Total CPU time consumed by the job, seconds"},
      {Section::kJob, kJobMemoryTotal, MetricType::kGauge,
       "Total memory allocated for the job, bytes"},
      {Section::kJob, kJobMemoryUsage, MetricType::kGauge,
       "Memory used by the job (including cache), bytes"},
      {Section::kJob, kJobMemoryWorkingSet, MetricType::kGauge,
       "Memory used by the job (not including cache), bytes"},
      {Section::kJob, kJobGpuUsage, MetricType::kGauge, "Job GPU usage, percent (as 0.0-1.0)"},
      {Section::kJob, kJobGpuMemoryTotal, MetricType::kGauge,
       "Total GPU memory allocated for the job, bytes"},
      {Section::kJob, kJobGpuMemoryUsage, MetricType::kGauge, "GPU memory used by the job, bytes"},
      {Section::kServer, kSubmitToProvision, MetricType::kHistogram,
       "Time from when a run has been submitted and first job provisioning"},
      {Section::kServer, kPendingRuns, MetricType::kCounter, "Number of pending runs"},
      {Section::kServer, kProjectCost, MetricType::kCounter,
       "Money spent by the jobs of a project's user, running and finished, USD"},
      {Section::kServer, kProjectGpuSeconds, MetricType::kCounter,
       "GPU time used by the jobs of a project's user, running and finished, seconds"},
      {Section::kServer, kBuildInfo, MetricType::kGauge,
       "What the server was built from: its version and git revision (always 1)"},
  };
  return kFamilies;
}

const std::vector<ServerFamily>& ReplicaFamilies() {
  static const std::vector<ServerFamily> kFamilies = {
      {Section::kServer, kReplicaInfo, MetricType::kGauge,
       "This server process (replica): its id (empty for the only server), version and git "
       "revision (always 1)"},
      {Section::kServer, kAgentPollErrors, MetricType::kCounter,
       "Agent polls of an instance by this server whose reply was not usable (unreachable, HTTP "
       "error or malformed), since it started"},
      {Section::kServer, kDcgmTextErrors, MetricType::kCounter,
       "DCGM texts from hosts this server polled that did not parse; those hosts' DCGM samples "
       "were dropped"},
      {Section::kServer, kDcgmFamiliesDropped, MetricType::kCounter,
       "Families in DCGM texts from hosts this server polled dropped for a name outside DCGM's "
       "or one of the server's"},
  };
  return kFamilies;
}

std::map<std::string, std::string> RenderServerFamilies(const ExpositionState& state,
                                                        TimeMicros now,
                                                        const ExpositionOptions& options) {
  std::map<std::string, std::string> out;
  for (const ServerFamily& f : ServerFamilies()) out[f.name];
  RenderInstances(state, now, out);
  RenderRunFamilies(state.run_counts, out);
  RenderJobs(state, now, options, out);
  RenderServerCounters(state, options, out);
  return out;
}

std::vector<expose::FamilyId> RegisterFamilies(expose::ExpositionSnapshot& snapshot,
                                               std::span<const ServerFamily> families) {
  std::vector<expose::FamilyId> ids;
  ids.reserve(families.size());
  for (const ServerFamily& f : families) {
    Result<expose::FamilyId> id = snapshot.RegisterFamily(f.section, f.name, f.type, f.help);
    if (!id.ok()) spdlog::critical("cannot register {}: {}", f.name, id.status().ToString());
    FW_CHECK(id.ok(), "a server family could not be registered");
    ids.push_back(*id);
  }
  return ids;
}

}  // namespace fleetwatch::server
