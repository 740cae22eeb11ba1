#include "server/exposition_updater.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "expose/text_format.h"
#include "model/run_spec.h"
#include "model/status.h"
#include "util/check.h"
#include "util/memory.h"

namespace fleetwatch::server {
namespace {

// The snapshot key of a job's DCGM samples: sorts like the spec orders jobs.
std::string DcgmKey(const model::Run& run, const model::Job& job) {
  std::string key = run.project_name;
  key += '\0';
  key += job.job_name;
  key += '\0';
  key += job.id;
  return key;
}

}  // namespace

ExpositionUpdater::ExpositionUpdater(store::Store& store, const Clock& clock,
                                     expose::ExpositionSnapshot& snapshot,
                                     ExpositionOptions options)
    : store_(store), clock_(clock), snapshot_(snapshot), options_(options) {
  for (const ServerFamily& f : ServerFamilies()) {
    Result<expose::FamilyId> id = snapshot_.RegisterFamily(f.section, f.name, f.type, f.help);
    if (!id.ok()) spdlog::critical("cannot register {}: {}", f.name, id.status().ToString());
    // Constant, valid names registered once: a failure is a programming error.
    FW_CHECK(id.ok(), "a server family could not be registered");
    ids_[f.name] = *id;
    server_family_names_.emplace_back(f.name);
  }
}

Status ExpositionUpdater::Load(const TickReport& report, ExpositionState& state) {
  state.instances = report.instances;
  state.unfinished_runs = report.runs;
  FW_ASSIGN_OR_RETURN(std::vector<model::JobMetricsPoint> newest,
                      store_.ListNewestMetricsOfUnfinishedJobs());
  for (model::JobMetricsPoint& p : newest) {
    std::string job_id = p.job_id;
    state.newest_points.insert_or_assign(std::move(job_id), std::move(p));
  }
  FW_ASSIGN_OR_RETURN(state.run_counts, store_.CountRuns());
  FW_ASSIGN_OR_RETURN(state.usage, store_.ListUsageTotals());
  return Status::Ok();
}

void ExpositionUpdater::IngestDcgm(const std::vector<DcgmReport>& reports,
                                   const ExpositionState& state) {
  std::map<std::string_view, const model::Instance*> instances;
  for (const model::Instance& i : state.instances) instances[i.id] = &i;
  // Jobs that may have DCGM samples: exported ones, by snapshot key.
  std::map<std::string, std::pair<const model::Run*, const model::Job*>> active;
  // Their keys by instance: a host's text goes to the jobs on that host only.
  std::map<std::string_view, std::vector<const std::string*>> keys_on;
  for (const model::Run& run : state.unfinished_runs) {
    for (const model::Job& job : run.jobs) {
      if (!JobExported(job.status)) continue;
      auto it = active.emplace(DcgmKey(run, job), std::make_pair(&run, &job)).first;
      if (job.instance_id) keys_on[*job.instance_id].push_back(&it->first);
    }
  }
  // Jobs that ended lose their DCGM samples now rather than when they expire.
  for (auto it = dcgm_keys_.begin(); it != dcgm_keys_.end();) {
    if (active.count(it->first)) {
      ++it;
      continue;
    }
    snapshot_.RemoveDcgm(it->first);
    it = dcgm_keys_.erase(it);
  }
  for (const DcgmReport& report : reports) {
    if (!report.dcgm.error.empty() || !report.dcgm.collected_at) {
      spdlog::debug("DCGM of instance {}: {}", report.instance_id, report.dcgm.error);
      continue;  // what the host sent before stays until it expires
    }
    auto instance_it = instances.find(report.instance_id);
    if (instance_it == instances.end()) continue;
    const model::Instance& instance = *instance_it->second;
    // The jobs on this host, each with its GPUs' UUIDs and its labels (views into `values`,
    // which is complete before any view is taken).
    std::vector<const std::string*> keys;
    if (auto it = keys_on.find(instance.id); it != keys_on.end()) keys = it->second;
    std::vector<std::vector<std::string>> uuids(keys.size());
    std::vector<expose::JobLabelValues> values;
    values.reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto& [run, job] = active.at(*keys[i]);
      for (int index : job->gpu_indices) {
        const model::Gpu* gpu = FindGpu(instance, index);
        if (gpu != nullptr && !gpu->uuid.empty()) uuids[i].push_back(gpu->uuid);
      }
      values.push_back(JobLabelValuesOf(*run, *job, &instance));
    }
    std::vector<std::array<expose::Label, 11>> labels;
    std::vector<expose::DcgmJob> jobs;
    labels.reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      jobs.push_back({uuids[i], labels.emplace_back(expose::JobLabels(values[i]))});
    }
    // One pass over the text for every job on the host; nothing refers to the text after it.
    Result<expose::RelabeledDcgm> relabeled =
        expose::RelabelDcgmText(report.dcgm.text, jobs, server_family_names_, &dcgm_headers_);
    if (!relabeled.ok()) {
      ++dcgm_text_errors_;
      spdlog::warn("DCGM text of instance {} ({}) dropped: {}", instance.name, instance.hostname,
                   relabeled.status().message());
      for (const std::string* key : keys) {
        snapshot_.RemoveDcgm(*key);
        dcgm_keys_.erase(*key);
      }
      continue;
    }
    dcgm_families_dropped_ += relabeled->foreign_families;
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string& key = *keys[i];
      std::vector<expose::RenderedFamily>& families = relabeled->jobs[i];
      if (families.empty()) {
        snapshot_.RemoveDcgm(key);
        dcgm_keys_.erase(key);
        continue;
      }
      snapshot_.SetDcgm(key, std::move(families),
                        *report.dcgm.collected_at + options_.dcgm_max_age);
      dcgm_keys_[key] = active.at(key).second->id;
    }
  }
  // Headers of families no job exports any more.
  dcgm_headers_.Prune();
}

Status ExpositionUpdater::Update(const TickReport& report) {
  MutexLock lock(mu_);
  for (const RunEvents::Provisioned& p : report.run_events.provisioned) {
    submit_to_provision_[{p.project_name, std::string(model::ToString(p.run_type))}].Observe(
        p.seconds);
  }
  for (const RunEvents::Pending& p : report.run_events.pending) {
    ++pending_runs_[{p.project_name, std::string(model::ToString(p.run_type))}];
  }
  ExpositionState state;
  FW_RETURN_IF_ERROR(Load(report, state));
  IngestDcgm(report.dcgm, state);
  TimeMicros now = clock_.Now();
  snapshot_.DropExpiredDcgm(now);
  // A fleet's DCGM samples replaced: many small blocks freed, which glibc would keep.
  if (!report.dcgm.empty()) ReleaseFreedMemory();
  for (const auto& [instance_id, count] : report.bad_replies) poll_errors_[instance_id] += count;
  state.agent_poll_errors = poll_errors_;
  state.dcgm_text_errors = dcgm_text_errors_;
  state.dcgm_families_dropped = dcgm_families_dropped_;
  state.submit_to_provision = submit_to_provision_;
  // Each run's configuration is parsed once, not on every tick.
  std::map<std::string, model::ResourcesRequest> resources;
  for (const model::Run& run : state.unfinished_runs) {
    auto known = run_resources_.find(run.id);
    resources.emplace(run.id,
                      known != run_resources_.end() ? std::move(known->second) : RunResources(run));
  }
  run_resources_ = std::move(resources);
  state.run_resources.swap(run_resources_);
  state.pending_runs = pending_runs_;
  std::map<std::string, std::string> samples = RenderServerFamilies(state, now, options_);
  run_resources_.swap(state.run_resources);
  std::vector<expose::FragmentChange> changes;
  for (auto& [name, text] : samples) {
    // Compared with what the snapshot holds, so that the samples are held once, there.
    const expose::FamilyId id = ids_.at(name);
    std::shared_ptr<const expose::Fragment> current = snapshot_.GetFragment(id, "all");
    if (current ? current->text == text : text.empty()) continue;
    // One fragment per family: the samples are already in spec order.
    changes.push_back(expose::FragmentChange{id, "all", expose::Fragment{std::move(text), {}}});
  }
  if (!changes.empty()) snapshot_.Apply(std::move(changes));
  return Status::Ok();
}

}  // namespace fleetwatch::server
