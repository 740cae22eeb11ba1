#include "server/job_summary_service.h"

#include <map>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "model/names.h"
#include "model/status.h"

namespace fleetwatch::server {

Result<RunSummary> JobSummaryService::Get(const ProjectAccess& access, std::string_view run_name) {
  if (!model::IsValidName(run_name)) return NotFound("run not found");
  Result<model::Run> run = store_.GetRun(access.project.id, run_name);
  if (!run.ok()) {
    if (run.status().code() == StatusCode::kNotFound) {
      return NotFound("run '" + std::string(run_name) + "' not found");
    }
    return run.status();
  }
  std::vector<std::string> ids;
  for (const model::Job& job : run->jobs) ids.push_back(job.id);
  FW_ASSIGN_OR_RETURN(std::vector<store::JobAggregate> rows, store_.ListJobAggregates(ids));
  std::map<std::string, const store::JobAggregate*> by_id;
  for (const store::JobAggregate& row : rows) by_id[row.job_id] = &row;
  const TimeMicros now = clock_.Now();
  RunSummary out;
  for (const model::Job& job : run->jobs) {
    JobEnd end;
    end.status = std::string(model::ToString(job.status));
    if (job.termination_reason) {
      end.termination_reason = std::string(model::ToString(*job.termination_reason));
    }
    end.finished_at = job.finished_at;
    auto row = by_id.find(job.id);
    std::optional<JobSummary> summary;
    if (row != by_id.end() && row->second->summary_json) {
      Result<JobSummary> stored = JobSummaryFromJson(*row->second->summary_json);
      if (!stored.ok()) return Internal("job " + job.id + ": " + stored.status().message());
      summary = std::move(stored).value();
    } else if (row != by_id.end()) {
      Result<JobAggregates> aggregates = JobAggregatesFromJson(row->second->state_json);
      if (!aggregates.ok()) return Internal("job " + job.id + ": " + aggregates.status().message());
      // A job that ended after the last tick: its summary as of its end, until the tick stores it.
      summary = SummaryOf(*aggregates, end, now);
    } else {
      JobAggregates none;
      none.job_id = job.id;
      none.job_name = job.job_name;
      none.job_num = job.job_num;
      none.replica_num = job.replica_num;
      none.started_at = job.started_at;
      summary = SummaryOf(none, end, now);
    }
    out.energy_joules += summary->energy_joules;
    out.energy_estimated |= summary->energy_estimated;
    out.carbon_grams += summary->carbon_grams;
    out.cost_dollars += summary->cost_dollars;
    out.jobs.push_back(std::move(*summary));
  }
  out.run = std::move(run).value();
  out.run.jobs.clear();
  return out;
}

std::string ToJson(const RunSummary& s) {
  boost::json::array jobs;
  for (const JobSummary& job : s.jobs) {
    boost::system::error_code ec;
    jobs.push_back(boost::json::parse(ToJson(job), ec));  // ToJson writes valid JSON
  }
  boost::json::object o;
  o["project_name"] = s.run.project_name;
  o["run_name"] = s.run.run_name;
  o["run_id"] = s.run.id;
  o["user_name"] = s.run.user_name;
  o["status"] = std::string(model::ToString(s.run.status));
  o["energy_joules"] = s.energy_joules;
  o["energy_estimated"] = s.energy_estimated;
  o["carbon_grams"] = s.carbon_grams;
  o["cost_dollars"] = s.cost_dollars;
  o["jobs"] = std::move(jobs);
  return boost::json::serialize(o);
}

}  // namespace fleetwatch::server
