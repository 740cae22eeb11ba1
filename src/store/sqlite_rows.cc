#include "store/sqlite_rows.h"

#include <charconv>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "model/entities.h"
#include "model/status.h"
#include "store/secret_cipher.h"
#include "store/sqlite_query.h"

namespace fleetwatch::store::sqlite {
namespace {

// GPU names and the like come from hosts: bytes are kept as they are, valid UTF-8 or not.
Result<boost::json::value> ParseJson(std::string_view text, std::string_view what) {
  boost::json::parse_options options;
  options.allow_invalid_utf8 = true;
  std::error_code ec;
  boost::json::value value = boost::json::parse(text, ec, {}, options);
  if (ec) return Internal("stored " + std::string(what) + " is not JSON: " + ec.message());
  return value;
}

std::string StdString(const boost::json::string& s) { return std::string(s.data(), s.size()); }

}  // namespace

std::string ResourcesToJson(const model::InstanceResources& resources) {
  boost::json::array gpus;
  for (const model::Gpu& gpu : resources.gpus) {
    gpus.push_back(boost::json::object{{"index", gpu.index},
                                       {"name", gpu.name},
                                       {"uuid", gpu.uuid},
                                       {"memory_bytes", gpu.memory_bytes},
                                       {"vendor", gpu.vendor}});
  }
  return boost::json::serialize(boost::json::object{{"cpus", resources.cpus},
                                                    {"memory_bytes", resources.memory_bytes},
                                                    {"gpus", std::move(gpus)}});
}

Result<model::InstanceResources> ResourcesFromJson(std::string_view text) {
  FW_ASSIGN_OR_RETURN(boost::json::value value, ParseJson(text, "instance resources"));
  try {
    const boost::json::object& object = value.as_object();
    model::InstanceResources resources;
    resources.cpus = static_cast<int>(object.at("cpus").as_int64());
    resources.memory_bytes = object.at("memory_bytes").as_int64();
    for (const boost::json::value& item : object.at("gpus").as_array()) {
      const boost::json::object& g = item.as_object();
      model::Gpu gpu;
      gpu.index = static_cast<int>(g.at("index").as_int64());
      gpu.name = StdString(g.at("name").as_string());
      gpu.uuid = StdString(g.at("uuid").as_string());
      gpu.memory_bytes = g.at("memory_bytes").as_int64();
      gpu.vendor = StdString(g.at("vendor").as_string());
      resources.gpus.push_back(std::move(gpu));
    }
    return resources;
  } catch (const std::exception& e) {
    return Internal(std::string("stored instance resources are malformed: ") + e.what());
  }
}

std::string GpuIndicesToJson(const std::vector<int>& indices) {
  boost::json::array array;
  for (int index : indices) array.push_back(index);
  return boost::json::serialize(array);
}

Result<std::vector<int>> GpuIndicesFromJson(std::string_view text) {
  FW_ASSIGN_OR_RETURN(boost::json::value value, ParseJson(text, "job GPU indices"));
  try {
    std::vector<int> indices;
    for (const boost::json::value& item : value.as_array()) {
      indices.push_back(static_cast<int>(item.as_int64()));
    }
    return indices;
  } catch (const std::exception& e) {
    return Internal(std::string("stored job GPU indices are malformed: ") + e.what());
  }
}

// GPU figures of a metrics point: "12,0,100" (empty for none). Plain text keeps ingest cheap.
std::string Int64ListToText(const std::vector<int64_t>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out;
}

Result<std::vector<int64_t>> Int64ListFromText(std::string_view text) {
  std::vector<int64_t> values;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || ptr != item.data() + item.size()) {
      return Internal("stored metrics point is malformed");
    }
    values.push_back(v);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return values;
}

// The rows of a query whose columns are job_id, timestamp_micro, cpu_usage_micro,
// memory_usage_bytes, memory_working_set_bytes, gpus_memory_usage_bytes, gpus_util_percent.
Result<std::vector<model::JobMetricsPoint>> PointsOf(Query& q) {
  std::vector<model::JobMetricsPoint> points;
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    model::JobMetricsPoint p;
    p.job_id = q.Text(0);
    p.timestamp_micro = q.Int64(1);
    p.cpu_usage_micro = q.Int64(2);
    p.memory_usage_bytes = q.Int64(3);
    p.memory_working_set_bytes = q.Int64(4);
    FW_ASSIGN_OR_RETURN(p.gpus_memory_usage_bytes, Int64ListFromText(q.Text(5)));
    FW_ASSIGN_OR_RETURN(p.gpus_util_percent, Int64ListFromText(q.Text(6)));
    points.push_back(std::move(p));
  }
  return points;
}

std::string Sql(std::string_view select, std::string_view rest) {
  std::string sql(select);
  sql += rest;
  return sql;
}

Result<model::User> ReadUser(const Query& q) {
  model::User user;
  user.id = q.Text(0);
  user.name = q.Text(1);
  FW_ASSIGN_OR_RETURN(user.global_role, ParseColumn<model::GlobalRole>(q, 2, "global role"));
  user.created_at = q.Int64(3);
  return user;
}

model::Project ReadProject(const Query& q) {
  model::Project project;
  project.id = q.Text(0);
  project.name = q.Text(1);
  project.owner_id = q.Text(2);
  project.created_at = q.Int64(3);
  return project;
}

Result<model::Fleet> ReadFleet(const Query& q) {
  model::Fleet fleet;
  fleet.id = q.Text(0);
  fleet.project_id = q.Text(1);
  fleet.project_name = q.Text(2);
  fleet.name = q.Text(3);
  FW_ASSIGN_OR_RETURN(fleet.status, ParseColumn<model::FleetStatus>(q, 4, "fleet status"));
  fleet.configuration_json = q.Text(5);
  fleet.created_at = q.Int64(6);
  return fleet;
}

// An agent token as stored: always encrypted (a copy of the database alone reveals none).
Result<std::string> DecryptAgentToken(const SecretCipher& cipher, std::string_view stored,
                                      std::string_view instance_name) {
  Result<std::string> token = cipher.Decrypt(stored);
  if (!token.ok()) {
    return Internal("stored agent token of instance '" + std::string(instance_name) +
                    "' cannot be decrypted: " + token.status().message());
  }
  return token;
}

Result<model::Instance> ReadInstance(const Query& q, const SecretCipher& cipher) {
  model::Instance instance;
  instance.id = q.Text(0);
  instance.project_id = q.Text(1);
  instance.project_name = q.Text(2);
  instance.fleet_id = q.Text(3);
  instance.fleet_name = q.Text(4);
  instance.name = q.Text(5);
  instance.instance_num = q.Int(6);
  FW_ASSIGN_OR_RETURN(instance.status, ParseColumn<model::InstanceStatus>(q, 7, "instance status"));
  instance.backend = q.Text(8);
  instance.hostname = q.Text(9);
  instance.agent_port = q.Int(10);
  FW_ASSIGN_OR_RETURN(instance.agent_token, DecryptAgentToken(cipher, q.Text(11), instance.name));
  instance.price = q.OptionalDouble(12);
  FW_ASSIGN_OR_RETURN(instance.resources, ResourcesFromJson(q.Text(13)));
  instance.created_at = q.Int64(14);
  instance.unreachable = q.Int(15) != 0;
  instance.last_seen_at = q.OptionalInt64(16);
  instance.agent_id = q.Text(17);
  instance.tls = q.Int(18) != 0;
  instance.tls_ca_cert = q.Text(19);
  instance.tls_fingerprint = q.Text(20);
  return instance;
}

Result<model::Run> ReadRun(const Query& q) {
  model::Run run;
  run.id = q.Text(0);
  run.project_id = q.Text(1);
  run.project_name = q.Text(2);
  run.user_id = q.Text(3);
  run.user_name = q.Text(4);
  run.run_name = q.Text(5);
  FW_ASSIGN_OR_RETURN(run.type, ParseColumn<model::RunType>(q, 6, "run type"));
  FW_ASSIGN_OR_RETURN(run.status, ParseColumn<model::RunStatus>(q, 7, "run status"));
  FW_ASSIGN_OR_RETURN(run.termination_reason, ParseOptionalColumn<model::RunTerminationReason>(
                                                  q, 8, "run termination reason"));
  run.submitted_at = q.Int64(9);
  run.finished_at = q.OptionalInt64(10);
  run.configuration_json = q.Text(11);
  run.cost = q.Double(12);
  return run;
}

Result<model::Job> ReadJob(const Query& q) {
  model::Job job;
  job.id = q.Text(0);
  job.run_id = q.Text(1);
  job.job_name = q.Text(2);
  job.job_num = q.Int(3);
  job.replica_num = q.Int(4);
  FW_ASSIGN_OR_RETURN(job.status, ParseColumn<model::JobStatus>(q, 5, "job status"));
  FW_ASSIGN_OR_RETURN(job.termination_reason, ParseOptionalColumn<model::JobTerminationReason>(
                                                  q, 6, "job termination reason"));
  job.exit_code = q.OptionalInt(7);
  job.instance_id = q.OptionalText(8);
  job.instance_name = q.OptionalText(9);
  FW_ASSIGN_OR_RETURN(job.gpu_indices, GpuIndicesFromJson(q.Text(10)));
  job.submitted_at = q.Int64(11);
  job.finished_at = q.OptionalInt64(12);
  job.started_at = q.OptionalInt64(13);
  job.status_detail = q.OptionalText(14);
  return job;
}

}  // namespace fleetwatch::store::sqlite
