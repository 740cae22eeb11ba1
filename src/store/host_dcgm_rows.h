#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "store/row_mapping.h"
#include "store/store.h"
#include "util/status.h"

// The shared render state's statements (Store: WriteHostDcgm, ListHostDcgmVersions, ListHostDcgm,
// ListNewestMetricsOfJobs), shared by the SQLite and PostgreSQL stores: the SQL is what both accept
// but for the JSON list of ids and the newest-point query (Dialect). Each function runs inside the
// caller's transaction; `prepare(sql)` returns the store's Result<Query>. Notifying is the
// PostgreSQL store's own. Errors: the database's, and those each function names. Stateless.
namespace fleetwatch::store::rows {

// The SQL of "column IN (the ids of a JSON array bound as one parameter)".
inline std::string InJsonIds(Dialect dialect) {
  return dialect == Dialect::kPostgres ? "(SELECT jsonb_array_elements_text(?::jsonb))"
                                       : "(SELECT value FROM json_each(?))";
}

inline std::string JsonIds(const std::vector<std::string>& ids) {
  return boost::json::serialize(boost::json::array(ids.begin(), ids.end()));
}

// InvalidArgument for an empty instance id or one given twice.
inline Status CheckHostDcgm(const std::vector<HostDcgm>& texts) {
  std::set<std::string_view> seen;
  for (const HostDcgm& t : texts) {
    if (t.instance_id.empty()) return InvalidArgument("a DCGM text needs an instance id");
    if (!seen.insert(t.instance_id).second) {
      return InvalidArgument("instance '" + t.instance_id + "' has two DCGM texts in one write");
    }
  }
  return Status::Ok();
}

template <typename Prepare>
Result<std::vector<std::pair<std::string, int64_t>>> WriteHostDcgm(
    Prepare&& prepare, Dialect dialect, const std::vector<HostDcgm>& texts) {
  std::vector<std::pair<std::string, int64_t>> written;
  if (texts.empty()) return written;
  std::set<std::string> existing;
  {
    std::vector<std::string> ids;
    for (const HostDcgm& t : texts) ids.push_back(t.instance_id);
    FW_ASSIGN_OR_RETURN(auto q,
                        prepare("SELECT id FROM instances WHERE id IN " + InJsonIds(dialect)));
    q.Bind(JsonIds(ids));
    while (true) {
      FW_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      existing.insert(q.Text(0));
    }
  }
  for (const HostDcgm& t : texts) {
    if (!existing.count(t.instance_id)) continue;
    FW_ASSIGN_OR_RETURN(
        auto q, prepare("INSERT INTO host_dcgm (instance_id, version, collected_at, dcgm_text, "
                        "dcgm_error, received_at) VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT "
                        "(instance_id) DO UPDATE SET version = host_dcgm.version + 1, "
                        "collected_at = excluded.collected_at, dcgm_text = excluded.dcgm_text, "
                        "dcgm_error = excluded.dcgm_error, received_at = excluded.received_at "
                        "RETURNING version"));
    q.Bind(t.instance_id).Bind(t.collected_at).Bind(t.text).Bind(t.error).Bind(t.received_at);
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row)
      return Internal("storing the DCGM text of instance '" + t.instance_id + "' said nothing");
    written.emplace_back(t.instance_id, q.Int64(0));
    // Read to the end, so that the statement is done before the next one.
    FW_ASSIGN_OR_RETURN(bool more, q.Step());
    (void)more;
  }
  return written;
}

template <typename Prepare>
Result<std::vector<std::pair<std::string, int64_t>>> ListHostDcgmVersions(Prepare&& prepare) {
  FW_ASSIGN_OR_RETURN(auto q,
                      prepare("SELECT instance_id, version FROM host_dcgm ORDER BY instance_id"));
  std::vector<std::pair<std::string, int64_t>> versions;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    versions.emplace_back(q.Text(0), q.Int64(1));
  }
  return versions;
}

template <typename Prepare>
Result<std::vector<HostDcgm>> ListHostDcgm(Prepare&& prepare, Dialect dialect,
                                           const std::vector<std::string>& instance_ids) {
  std::vector<HostDcgm> texts;
  if (instance_ids.empty()) return texts;
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT instance_id, version, collected_at, dcgm_text, "
                                      "dcgm_error, received_at FROM host_dcgm WHERE instance_id "
                                      "IN " +
                                      InJsonIds(dialect) + " ORDER BY instance_id"));
  q.Bind(JsonIds(instance_ids));
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    texts.push_back(HostDcgm{.instance_id = q.Text(0),
                             .version = q.Int64(1),
                             .collected_at = q.OptionalInt64(2),
                             .text = q.Text(3),
                             .error = q.Text(4),
                             .received_at = q.Int64(5)});
  }
  return texts;
}

template <typename Prepare>
Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfJobs(
    Prepare&& prepare, Dialect dialect, const std::vector<std::string>& job_ids) {
  if (job_ids.empty()) return std::vector<model::JobMetricsPoint>();
  // PostgreSQL: one backward probe of the primary key (job_id, timestamp_micro) per job. SQLite
  // takes the bare columns of an aggregate query with one MAX() from the row that holds it.
  const std::string sql =
      dialect == Dialect::kPostgres
          ? "SELECT m.job_id, m.timestamp_micro, m.cpu_usage_micro, m.memory_usage_bytes, "
            "m.memory_working_set_bytes, m.gpus_memory_usage_bytes, m.gpus_util_percent FROM "
            "(SELECT DISTINCT jsonb_array_elements_text(?::jsonb) AS id) ids CROSS JOIN LATERAL "
            "(SELECT * FROM job_metrics_points p WHERE p.job_id = ids.id ORDER BY "
            "p.timestamp_micro DESC LIMIT 1) m"
          : "SELECT m.job_id, MAX(m.timestamp_micro), m.cpu_usage_micro, m.memory_usage_bytes, "
            "m.memory_working_set_bytes, m.gpus_memory_usage_bytes, m.gpus_util_percent FROM "
            "job_metrics_points m WHERE m.job_id IN (SELECT value FROM json_each(?)) GROUP BY "
            "m.job_id";
  FW_ASSIGN_OR_RETURN(auto q, prepare(sql));
  q.Bind(JsonIds(job_ids));
  return PointsOf(q);
}

}  // namespace fleetwatch::store::rows
