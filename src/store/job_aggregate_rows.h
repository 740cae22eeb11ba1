#pragma once

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "store/row_mapping.h"
#include "store/store.h"
#include "util/status.h"

// The energy and job-summary statements (Store: UpdateJobAggregates, ListJobAggregates,
// ListOpenJobAggregates, ListEnergyTotals, ListRunEnergy, ListJobSummariesSince), shared by the
// SQLite and PostgreSQL stores: the SQL is what both accept but for the JSON list of ids (Dialect).
// Each function runs inside the caller's transaction; `prepare(sql)` returns the store's
// Result<Query> (Bind, Exec, Step, Changes and the row readers of row_mapping.h). Errors: the
// database's; NotFound when an update names no job. Stateless.
namespace fleetwatch::store::rows {

template <typename Prepare>
Result<std::vector<bool>> UpdateJobAggregates(Prepare&& prepare,
                                              const std::vector<JobAggregateUpdate>& updates) {
  std::vector<bool> applied;
  std::map<std::pair<std::string, std::string>, std::array<double, 3>> totals;
  for (const JobAggregateUpdate& u : updates) {
    const std::string what = "update the aggregates of job '" + u.job_id + "'";
    int changes = 0;
    if (u.revision == 0) {
      FW_ASSIGN_OR_RETURN(auto exists, prepare("SELECT 1 FROM jobs WHERE id = ?"));
      exists.Bind(u.job_id);
      FW_ASSIGN_OR_RETURN(bool found, exists.Step());
      if (!found) return NotFound("no job with id '" + u.job_id + "'");
      FW_ASSIGN_OR_RETURN(auto insert, prepare("INSERT INTO job_aggregates (job_id, revision, "
                                               "state, summary, energy_joules) VALUES (?, 1, ?, "
                                               "?, ?) ON CONFLICT (job_id) DO NOTHING"));
      insert.Bind(u.job_id)
          .Bind(u.state_json)
          .Bind(u.summary_json)
          .Bind(std::max(0.0, u.job_energy_joules));
      FW_RETURN_IF_ERROR(WithContext(insert.Exec(), what));
      changes = insert.Changes();
    } else {
      FW_ASSIGN_OR_RETURN(
          auto update,
          prepare("UPDATE job_aggregates SET revision = job_aggregates.revision + 1, state = ?, "
                  "summary = COALESCE(job_aggregates.summary, ?), energy_joules = ? WHERE "
                  "job_id = ? AND revision = ?"));
      update.Bind(u.state_json)
          .Bind(u.summary_json)
          .Bind(std::max(0.0, u.job_energy_joules))
          .Bind(u.job_id)
          .Bind(u.revision);
      FW_RETURN_IF_ERROR(WithContext(update.Exec(), what));
      changes = update.Changes();
    }
    applied.push_back(changes > 0);
    if (changes == 0) continue;
    // Summed per (project, user): one upsert each, however many jobs.
    std::array<double, 3>& sum = totals[{u.project_name, u.user_name}];
    sum[0] += std::max(0.0, u.energy_joules);
    sum[1] += std::max(0.0, u.busy_gpu_seconds);
    sum[2] += std::max(0.0, u.carbon_grams);
  }
  for (const auto& [key, sum] : totals) {
    FW_ASSIGN_OR_RETURN(
        auto add,
        prepare("INSERT INTO energy_totals (project_name, user_name, energy_joules, "
                "busy_gpu_seconds, carbon_grams) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                "(project_name, user_name) DO UPDATE SET "
                "energy_joules = energy_totals.energy_joules + excluded.energy_joules, "
                "busy_gpu_seconds = energy_totals.busy_gpu_seconds + excluded.busy_gpu_seconds, "
                "carbon_grams = energy_totals.carbon_grams + excluded.carbon_grams"));
    add.Bind(key.first).Bind(key.second).Bind(sum[0]).Bind(sum[1]).Bind(sum[2]);
    FW_RETURN_IF_ERROR(WithContext(add.Exec(), "add energy of " + key.first + "/" + key.second));
  }
  return applied;
}

template <typename Query>
Result<std::vector<JobAggregate>> ReadJobAggregates(Query& q) {
  std::vector<JobAggregate> rows;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    rows.push_back(JobAggregate{q.Text(0), q.Int64(1), q.Text(2), q.OptionalText(3)});
  }
  return rows;
}

template <typename Prepare>
Result<std::vector<JobAggregate>> ListJobAggregates(Prepare&& prepare, Dialect dialect,
                                                    const std::vector<std::string>& job_ids) {
  if (job_ids.empty()) return std::vector<JobAggregate>();
  const std::string ids_json =
      boost::json::serialize(boost::json::array(job_ids.begin(), job_ids.end()));
  FW_ASSIGN_OR_RETURN(auto q, prepare(std::string("SELECT job_id, revision, state, summary FROM "
                                                  "job_aggregates WHERE job_id IN ") +
                                      (dialect == Dialect::kPostgres
                                           ? "(SELECT jsonb_array_elements_text(?::jsonb))"
                                           : "(SELECT value FROM json_each(?))")));
  q.Bind(ids_json);
  return ReadJobAggregates(q);
}

template <typename Prepare>
Result<std::vector<JobAggregate>> ListOpenJobAggregates(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT job_id, revision, state, summary FROM "
                                      "job_aggregates WHERE summary IS NULL"));
  return ReadJobAggregates(q);
}

template <typename Prepare>
Result<std::vector<EnergyTotal>> ListEnergyTotals(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT project_name, user_name, energy_joules, "
                                      "busy_gpu_seconds, carbon_grams FROM energy_totals "
                                      "ORDER BY project_name, user_name"));
  std::vector<EnergyTotal> totals;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    totals.push_back(EnergyTotal{q.Text(0), q.Text(1), q.Double(2), q.Double(3), q.Double(4)});
  }
  return totals;
}

template <typename Prepare>
Result<std::vector<RunEnergyTotal>> ListRunEnergy(Prepare&& prepare, Dialect dialect,
                                                  const std::vector<std::string>& run_ids) {
  if (run_ids.empty()) return std::vector<RunEnergyTotal>();
  const std::string ids_json =
      boost::json::serialize(boost::json::array(run_ids.begin(), run_ids.end()));
  FW_ASSIGN_OR_RETURN(
      auto q,
      prepare(std::string("SELECT j.run_id, SUM(a.energy_joules) FROM job_aggregates a "
                          "JOIN jobs j ON j.id = a.job_id WHERE j.run_id IN ") +
              (dialect == Dialect::kPostgres ? "(SELECT jsonb_array_elements_text(?::jsonb))"
                                             : "(SELECT value FROM json_each(?))") +
              " GROUP BY j.run_id ORDER BY j.run_id"));
  q.Bind(ids_json);
  std::vector<RunEnergyTotal> out;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(RunEnergyTotal{q.Text(0), q.Double(1)});
  }
  return out;
}

template <typename Prepare>
Result<std::vector<StoredJobSummary>> ListJobSummariesSince(
    Prepare&& prepare, TimeMicros since, const std::optional<std::string>& project_name) {
  // From the jobs that finished in the window (jobs_by_finished_at) to their summaries.
  std::string sql =
      "SELECT j.id, r.id, r.run_name, p.name, u.name, j.finished_at, a.summary FROM jobs j "
      "JOIN job_aggregates a ON a.job_id = j.id JOIN runs r ON r.id = j.run_id "
      "JOIN projects p ON p.id = r.project_id JOIN users u ON u.id = r.user_id "
      "WHERE j.finished_at >= ? AND a.summary IS NOT NULL";
  if (project_name) sql += " AND p.name = ?";
  sql += " ORDER BY j.finished_at DESC, j.id";
  FW_ASSIGN_OR_RETURN(auto q, prepare(sql));
  q.Bind(since);
  if (project_name) q.Bind(*project_name);
  std::vector<StoredJobSummary> out;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(StoredJobSummary{q.Text(0), q.Text(1), q.Text(2), q.Text(3), q.Text(4),
                                   q.Int64(5), q.Text(6)});
  }
  return out;
}

}  // namespace fleetwatch::store::rows
