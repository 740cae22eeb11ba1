#include "agent/agent_api.h"

#include "agent/agent_metrics.h"

#include <boost/json/value.hpp>

#include <charconv>

#include "agent/agent_json.h"
#include "agent/gpu_reading_json.h"
#include "agent/job_metrics.h"
#include "http/bearer.h"
#include "model/json_text.h"
#include "util/build_info.h"
#include "util/ids.h"

namespace fleetwatch::agent {
namespace {

namespace json = boost::json;

constexpr int64_t kMaxLogChunk = 1 << 20;

http::Response Json(int status, const json::value& value) {
  http::Response response;
  response.status = status;
  response.body = model::SerializeJson(value);
  return response;
}

http::Response Error(const Status& status) { return http::ErrorResponseFor(status); }

// A non-negative integer query parameter; `fallback` when absent.
Result<int64_t> QueryInteger(const http::Request& request, const std::string& name,
                             int64_t fallback) {
  auto it = request.query.find(name);
  if (it == request.query.end()) return fallback;
  const std::string& text = it->second;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
    return InvalidArgument(name + " must be a non-negative integer");
  }
  return value;
}

// A 0/1 query parameter; false when absent.
Result<bool> QueryFlag(const http::Request& request, const std::string& name) {
  auto it = request.query.find(name);
  if (it == request.query.end()) return false;
  if (it->second != "0" && it->second != "1") return InvalidArgument(name + " must be 0 or 1");
  return it->second == "1";
}

// The "dcgm" field of a poll reply (docs/agent-api.md) for `report`: null when DCGM is off. With
// `raw`, a text is left out of the JSON ("text": ""): the reply carries it after the JSON.
json::value DcgmJson(const std::optional<DcgmReport>& dcgm, bool raw) {
  if (!dcgm) return nullptr;
  const DcgmReport& report = *dcgm;
  json::object out;
  if (report.collected_at) {
    out["collected_at"] = *report.collected_at;
  } else {
    out["collected_at"] = nullptr;
  }
  if (report.text) {
    out["text"] = raw ? std::string_view() : std::string_view(*report.text);
  } else {
    out["error"] = report.error;
  }
  return out;
}

// The "gpus" field of a poll reply with metrics (docs/agent-api.md "GPU readings"): every GPU of
// the inventory, read now; one that cannot be read at all carries only its "error".
json::array GpuReadingsJson(const GpuBackend& gpus, const std::vector<model::Gpu>& inventory) {
  json::array out;
  for (const model::Gpu& gpu : inventory) {
    Result<model::GpuReading> reading = gpus.Read(gpu.index);
    if (!reading.ok()) {
      model::GpuReading failed;
      failed.index = gpu.index;
      failed.uuid = gpu.uuid;
      failed.error = reading.status().message();
      reading = std::move(failed);
    }
    out.push_back(GpuReadingJson(*reading));
  }
  return out;
}

}  // namespace

AgentApi::AgentApi(AgentIdentity identity, HostInventory inventory, JobRuntime& runtime,
                   const GpuBackend& gpus, const Clock& clock, const DcgmExporter* dcgm)
    : identity_(std::move(identity)),
      inventory_(std::move(inventory)),
      runtime_(runtime),
      gpus_(gpus),
      clock_(clock),
      dcgm_(dcgm) {
  router_.Add("GET", "/api/healthcheck", [this](http::Request&) { return Healthcheck(); });
  router_.Add("GET", "/api/inventory", [this](http::Request&) { return Inventory(); });
  router_.Add("GET", "/api/poll", [this](http::Request& r) { return Poll(r); });
  router_.Add("POST", "/api/jobs", [this](http::Request& r) { return StartJob(r); });
  router_.Add("POST", "/api/jobs/{job_id}/stop", [this](http::Request& r) { return StopJob(r); });
  router_.Add("GET", "/api/jobs/{job_id}/logs", [this](http::Request& r) { return JobLogs(r); });
  router_.Add("DELETE", "/api/jobs/{job_id}",
              [this](http::Request& r) { return AcknowledgeJob(r); });
}

namespace {

bool HasBearer(const http::Request& request, std::string_view token) {
  std::optional<std::string_view> sent = http::ParseBearer(request.Header("authorization"));
  return sent && ConstantTimeEquals(*sent, token);
}

}  // namespace

http::Response AgentApi::Handle(http::Request& request) const {
  if (request.path == "/metrics") {
    if (identity_.metrics_token && !HasBearer(request, *identity_.metrics_token)) {
      http::Response response =
          http::JsonError(401, "unauthenticated", "missing or wrong metrics token");
      response.headers.emplace_back("WWW-Authenticate", "Bearer");
      return response;
    }
    if (request.method != "GET") return http::JsonError(405, "method_not_allowed", "use GET");
    return Metrics(request);
  }
  if (!HasBearer(request, identity_.token)) {
    http::Response response =
        http::JsonError(401, "unauthenticated", "missing or wrong agent token");
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
  }
  return router_.Dispatch(request);
}

http::Response AgentApi::Healthcheck() const {
  return Json(200, json::object{{"service", "fleetwatch-agent"},
                                {"version", BuildVersion()},
                                {"agent_id", identity_.agent_id},
                                {"started_at", identity_.started_at}});
}

http::Response AgentApi::Metrics(const http::Request&) const {
  AgentMetricsInput in;
  in.version = std::string(BuildVersion());
  in.agent_id = identity_.agent_id;
  in.hostname = inventory_.hostname;
  in.cgroup = std::string(CgroupModeName(inventory_.cgroup));
  in.started_at = identity_.started_at;
  in.gpus = static_cast<int>(inventory_.gpus.size());
  for (const JobState& state : runtime_.List()) {
    if (state.phase == JobPhase::kRunning) ++in.jobs_running;
    if (state.phase == JobPhase::kExited) ++in.jobs_exited;
    if (state.phase == JobPhase::kFailedToStart) ++in.jobs_failed_to_start;
    if (state.phase == JobPhase::kLost) ++in.jobs_lost;
  }
  if (dcgm_ != nullptr) {
    DcgmReport report = dcgm_->Report();
    in.dcgm_enabled = true;
    in.dcgm_fresh = report.text != nullptr;
    in.dcgm_text = report.text;
    in.dcgm_collected_at = report.collected_at;
    in.dcgm_restarts = dcgm_->restarts();
    in.dcgm_scrape_errors = dcgm_->scrape_errors();
  }
  http::Response response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = RenderAgentMetrics(in);
  return response;
}

http::Response AgentApi::Inventory() const {
  return Json(200, InventoryJson(inventory_, identity_.agent_id));
}

http::Response AgentApi::Poll(const http::Request& request) const {
  Result<bool> with_metrics = QueryFlag(request, "metrics");
  if (!with_metrics.ok()) return Error(with_metrics.status());
  Result<bool> with_dcgm = QueryFlag(request, "dcgm");
  if (!with_dcgm.ok()) return Error(with_dcgm.status());
  Result<bool> dcgm_raw = QueryFlag(request, "dcgm_raw");
  if (!dcgm_raw.ok()) return Error(dcgm_raw.status());
  json::array jobs;
  if (!*with_metrics) {
    // The 1-second status polls: no metrics key, no file reads.
    for (const JobState& state : runtime_.List()) jobs.push_back(JobStateJson(state));
  } else {
    for (const JobSnapshot& snapshot : runtime_.ListWithUsage()) {
      json::object job = JobStateJson(snapshot.state);
      if (snapshot.state.phase == JobPhase::kRunning && snapshot.usage) {
        JobMetricsPoint point{snapshot.usage_read_at, *snapshot.usage,
                              SampleJobGpus(gpus_, snapshot.gpu_indices)};
        job["metrics"] = MetricsPointJson(point);
      } else {
        job["metrics"] = nullptr;
      }
      jobs.push_back(std::move(job));
    }
  }
  json::object reply{
      {"agent_id", identity_.agent_id}, {"now", clock_.Now()}, {"jobs", std::move(jobs)}};
  if (*with_metrics) reply["gpus"] = GpuReadingsJson(gpus_, inventory_.gpus);
  if (!*with_dcgm) return Json(200, std::move(reply));
  std::optional<DcgmReport> dcgm;
  if (dcgm_ != nullptr) dcgm = dcgm_->Report();
  reply["dcgm"] = DcgmJson(dcgm, *dcgm_raw);
  http::Response response = Json(200, std::move(reply));
  if (*dcgm_raw && dcgm && dcgm->text) {
    // The text after the JSON, as dcgm-exporter served it: nothing to escape here or to unescape
    // on the server.
    response.body += *dcgm->text;
    response.content_type = "application/vnd.fleetwatch.poll+dcgm";
    response.headers.emplace_back("Fleetwatch-Dcgm-Text-Bytes", std::to_string(dcgm->text->size()));
  }
  return response;
}

http::Response AgentApi::StartJob(const http::Request& request) {
  Result<JobSpec> spec = ParseStartJobRequest(request.body, inventory_.gpus);
  if (!spec.ok()) return Error(spec.status());
  Result<StartResult> started = runtime_.Start(*spec);
  if (!started.ok()) return Error(started.status());
  return Json(started->created ? 201 : 200, JobStateJson(started->state));
}

http::Response AgentApi::StopJob(const http::Request& request) {
  Result<std::chrono::seconds> grace = ParseStopJobRequest(request.body);
  if (!grace.ok()) return Error(grace.status());
  Result<JobState> state = runtime_.Stop(request.path_params.at("job_id"), *grace);
  if (!state.ok()) return Error(state.status());
  return Json(200, JobStateJson(*state));
}

http::Response AgentApi::JobLogs(const http::Request& request) const {
  Result<int64_t> offset = QueryInteger(request, "offset", 0);
  if (!offset.ok()) return Error(offset.status());
  Result<int64_t> limit = QueryInteger(request, "limit", kMaxLogChunk);
  if (!limit.ok()) return Error(limit.status());
  Result<LogChunk> chunk =
      runtime_.ReadLog(request.path_params.at("job_id"), *offset, std::min(*limit, kMaxLogChunk));
  if (!chunk.ok()) return Error(chunk.status());
  http::Response response;
  response.content_type = "application/octet-stream";
  response.body = std::move(chunk->data);
  response.headers.emplace_back("X-Log-Size", std::to_string(chunk->total_size));
  return response;
}

http::Response AgentApi::AcknowledgeJob(const http::Request& request) {
  Status status = runtime_.Acknowledge(request.path_params.at("job_id"));
  if (!status.ok()) return Error(status);
  return Json(200,
              json::object{{"job_id", request.path_params.at("job_id")}, {"acknowledged", true}});
}

}  // namespace fleetwatch::agent
