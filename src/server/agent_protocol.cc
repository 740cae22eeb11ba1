#include "server/agent_protocol.h"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <set>

#include "model/json_text.h"
#include "model/names.h"

namespace fleetwatch::server {
namespace json = boost::json;
namespace {

Status Bad(std::string what) { return InvalidArgument("bad agent reply: " + std::move(what)); }

Result<json::object> ParseObject(std::string_view body) {
  json::error_code ec;
  json::parse_options options;
  options.max_depth = 16;
  json::value v = json::parse(body, ec, {}, options);
  if (ec) return Bad("malformed JSON (" + ec.message() + ")");
  if (!v.is_object()) return Bad("not a JSON object");
  return std::move(v.as_object());
}

Result<std::string> Text(const json::object& o, std::string_view key, size_t max_size = 4096) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return Bad("'" + std::string(key) + "' must be a string");
  if (v->as_string().size() > max_size) return Bad("'" + std::string(key) + "' is too long");
  return std::string(v->as_string());
}

Result<int64_t> Integer(const json::object& o, std::string_view key, int64_t min, int64_t max) {
  const json::value* v = o.if_contains(key);
  int64_t n = 0;
  if (v != nullptr && v->is_int64()) {
    n = v->as_int64();
  } else if (v != nullptr && v->is_uint64() &&
             v->as_uint64() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    n = static_cast<int64_t>(v->as_uint64());
  } else {
    return Bad("'" + std::string(key) + "' must be an integer");
  }
  if (n < min || n > max) return Bad("'" + std::string(key) + "' is out of range");
  return n;
}

Result<std::optional<int64_t>> OptionalInteger(const json::object& o, std::string_view key,
                                               int64_t min, int64_t max) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  FW_ASSIGN_OR_RETURN(int64_t n, Integer(o, key, min, max));
  return std::optional<int64_t>(n);
}

// An honest agent holds the jobs the server gave it plus the ended ones not yet acknowledged.
constexpr size_t kMaxJobsPerPoll = 10'000;

Result<std::string> JobId(const json::object& o) {
  FW_ASSIGN_OR_RETURN(std::string id, Text(o, "job_id", 64));
  if (!model::IsValidJobId(id)) return Bad("'job_id' must be 1 to 64 of [A-Za-z0-9-]");
  return id;
}

Result<std::string> AgentId(const json::object& o) {
  FW_ASSIGN_OR_RETURN(std::string id, Text(o, "agent_id", 64));
  if (!model::IsValidAgentId(id)) return Bad("'agent_id' must be 1 to 64 of [A-Za-z0-9-]");
  return id;
}

constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max() / 4;
constexpr int64_t kMaxBytes = int64_t{1} << 56;
// As the DCGM parser's own cap (expose::DcgmParseLimits::max_bytes).
constexpr size_t kMaxDcgmTextBytes = 4 << 20;

Result<AgentJob> JobFromJson(const json::object& o) {
  AgentJob job;
  FW_ASSIGN_OR_RETURN(job.job_id, JobId(o));
  FW_ASSIGN_OR_RETURN(std::string state, Text(o, "state", 32));
  if (state == "running") {
    job.state = AgentJobState::kRunning;
  } else if (state == "exited") {
    job.state = AgentJobState::kExited;
  } else if (state == "failed_to_start") {
    job.state = AgentJobState::kFailedToStart;
  } else if (state == "lost") {
    job.state = AgentJobState::kLost;
  } else {
    return Bad("unknown job state");
  }
  FW_ASSIGN_OR_RETURN(auto exit_code, OptionalInteger(o, "exit_code", -1024, 1024));
  if (exit_code) job.exit_code = static_cast<int>(*exit_code);
  FW_ASSIGN_OR_RETURN(auto signal, OptionalInteger(o, "signal", 0, 1024));
  if (signal) job.signal = static_cast<int>(*signal);
  if (const json::value* s = o.if_contains("stop_requested")) {
    if (!s->is_bool()) return Bad("'stop_requested' must be a boolean");
    job.stop_requested = s->as_bool();
  }
  FW_ASSIGN_OR_RETURN(job.started_at, OptionalInteger(o, "started_at", 0, kMaxTime));
  FW_ASSIGN_OR_RETURN(job.finished_at, OptionalInteger(o, "finished_at", 0, kMaxTime));
  if (const json::value* e = o.if_contains("error"); e != nullptr && !e->is_null()) {
    FW_ASSIGN_OR_RETURN(job.error, Text(o, "error", 4096));
  }
  if (const json::value* m = o.if_contains("metrics"); m != nullptr && !m->is_null()) {
    if (!m->is_object()) return Bad("'metrics' must be an object");
    const json::object& mo = m->as_object();
    model::JobMetricsPoint point;
    point.job_id = job.job_id;
    FW_ASSIGN_OR_RETURN(point.timestamp_micro, Integer(mo, "timestamp_micro", 0, kMaxTime));
    FW_ASSIGN_OR_RETURN(point.cpu_usage_micro, Integer(mo, "cpu_usage_micro", 0, kMaxTime));
    FW_ASSIGN_OR_RETURN(point.memory_usage_bytes, Integer(mo, "memory_usage_bytes", 0, kMaxBytes));
    FW_ASSIGN_OR_RETURN(point.memory_working_set_bytes,
                        Integer(mo, "memory_working_set_bytes", 0, kMaxBytes));
    const json::value* gpus = mo.if_contains("gpus");
    if (gpus == nullptr || !gpus->is_array()) return Bad("'metrics.gpus' must be a list");
    if (gpus->as_array().size() > 64) return Bad("too many GPUs in a metrics point");
    for (const json::value& g : gpus->as_array()) {
      if (!g.is_object()) return Bad("each GPU of a metrics point must be an object");
      FW_ASSIGN_OR_RETURN(int64_t used,
                          Integer(g.as_object(), "gpu_memory_usage_bytes", 0, kMaxBytes));
      FW_ASSIGN_OR_RETURN(int64_t util, Integer(g.as_object(), "gpu_util_percent", 0, 100));
      point.gpus_memory_usage_bytes.push_back(used);
      point.gpus_util_percent.push_back(util);
    }
    job.metrics = std::move(point);
  }
  return job;
}

// The GPU readings of a poll reply (docs/agent-api.md "GPU readings"). Each reading is absent
// when its key is missing or null; present, it must have its type and range, else the reply
// fails with a message naming the GPU and the field.
constexpr size_t kMaxGpus = 1024;
constexpr size_t kMaxListed = 4096;  // processes, XID numbers
constexpr int64_t kMaxCount = model::kMaxGpuReadingCount;

Status InGpu(size_t position, const Status& status) {
  std::string message = status.message();
  constexpr std::string_view kPrefix = "bad agent reply: ";
  if (message.starts_with(kPrefix)) message.erase(0, kPrefix.size());
  return Bad("gpus[" + std::to_string(position) + "]: " + message);
}

bool Absent(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v == nullptr || v->is_null();
}

// An optional nested object: nullptr when absent or null; Bad when not an object.
Result<const json::object*> OptionalObject(const json::object& o, std::string_view key) {
  if (Absent(o, key)) return static_cast<const json::object*>(nullptr);
  if (!o.at(key).is_object()) return Bad("'" + std::string(key) + "' must be an object");
  return &o.at(key).as_object();
}

// An optional list: nullptr when absent or null; Bad when not a list or longer than `max`.
Result<const json::array*> OptionalList(const json::object& o, std::string_view key, size_t max) {
  if (Absent(o, key)) return static_cast<const json::array*>(nullptr);
  if (!o.at(key).is_array()) return Bad("'" + std::string(key) + "' must be a list");
  if (o.at(key).as_array().size() > max) return Bad("'" + std::string(key) + "' is too long");
  return &o.at(key).as_array();
}

Result<bool> Boolean(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_bool()) return Bad("'" + std::string(key) + "' must be a boolean");
  return v->as_bool();
}

Result<std::optional<bool>> OptionalBoolean(const json::object& o, std::string_view key) {
  if (Absent(o, key)) return std::optional<bool>();
  FW_ASSIGN_OR_RETURN(bool b, Boolean(o, key));
  return std::optional<bool>(b);
}

// Each element of `list` must be an object; `parse` reads one.
template <typename T, typename F>
Result<std::vector<T>> ObjectList(const json::array& list, std::string_view what, F parse) {
  std::vector<T> out;
  for (const json::value& v : list) {
    if (!v.is_object()) return Bad("each entry of '" + std::string(what) + "' must be an object");
    FW_ASSIGN_OR_RETURN(T item, parse(v.as_object()));
    out.push_back(std::move(item));
  }
  return out;
}

bool IsRasBlock(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

Result<model::NvlinkErrors> NvlinkFromJson(const json::object& l) {
  model::NvlinkErrors e;
  FW_ASSIGN_OR_RETURN(int64_t link, Integer(l, "link", 0, 63));
  e.link = static_cast<int>(link);
  FW_ASSIGN_OR_RETURN(e.replay, OptionalInteger(l, "replay", 0, kMaxCount));
  FW_ASSIGN_OR_RETURN(e.recovery, OptionalInteger(l, "recovery", 0, kMaxCount));
  FW_ASSIGN_OR_RETURN(e.crc_flit, OptionalInteger(l, "crc_flit", 0, kMaxCount));
  FW_ASSIGN_OR_RETURN(e.crc_data, OptionalInteger(l, "crc_data", 0, kMaxCount));
  return e;
}

Result<model::XidEvents::Count> XidCountFromJson(const json::object& c) {
  model::XidEvents::Count count;
  FW_ASSIGN_OR_RETURN(count.xid, Integer(c, "xid", 0, kMaxCount));
  FW_ASSIGN_OR_RETURN(count.count, Integer(c, "count", 1, kMaxCount));
  return count;
}

Result<model::GpuProcess> ProcessFromJson(const json::object& p) {
  model::GpuProcess process;
  FW_ASSIGN_OR_RETURN(process.pid, Integer(p, "pid", 0, (int64_t{1} << 32) - 1));
  FW_ASSIGN_OR_RETURN(process.used_memory_bytes,
                      OptionalInteger(p, "used_memory_bytes", 0, model::kMaxGpuReadingBytes));
  return process;
}

Result<model::RasErrors> RasFromJson(const json::object& b) {
  model::RasErrors errors;
  FW_ASSIGN_OR_RETURN(errors.block, Text(b, "block", 64));
  if (!IsRasBlock(errors.block)) return Bad("'block' must be 1 to 64 of [A-Za-z0-9_]");
  FW_ASSIGN_OR_RETURN(errors.correctable, OptionalInteger(b, "correctable", 0, kMaxCount));
  FW_ASSIGN_OR_RETURN(errors.uncorrectable, OptionalInteger(b, "uncorrectable", 0, kMaxCount));
  return errors;
}

Result<model::GpuReading> GpuReadingFromJson(const json::object& o) {
  model::GpuReading r;
  FW_ASSIGN_OR_RETURN(int64_t index, Integer(o, "index", 0, static_cast<int64_t>(kMaxGpus) - 1));
  r.index = static_cast<int>(index);
  if (!Absent(o, "uuid")) {
    FW_ASSIGN_OR_RETURN(r.uuid, Text(o, "uuid", 256));
  }
  if (!Absent(o, "error")) {
    FW_ASSIGN_OR_RETURN(r.error, Text(o, "error", 4096));
  }
  FW_ASSIGN_OR_RETURN(r.util_percent, OptionalInteger(o, "util_percent", 0, 100));
  FW_ASSIGN_OR_RETURN(r.memory_used_bytes,
                      OptionalInteger(o, "memory_used_bytes", 0, model::kMaxGpuReadingBytes));
  FW_ASSIGN_OR_RETURN(r.power_mw, OptionalInteger(o, "power_mw", 0, model::kMaxGpuPowerMw));
  FW_ASSIGN_OR_RETURN(r.energy_mj, OptionalInteger(o, "energy_mj", 0, kMaxCount));
  FW_ASSIGN_OR_RETURN(
      r.temperature_c,
      OptionalInteger(o, "temperature_c", model::kMinGpuTemperatureC, model::kMaxGpuTemperatureC));
  FW_ASSIGN_OR_RETURN(const json::object* throttle, OptionalObject(o, "throttle_reasons"));
  if (throttle != nullptr) {
    FW_ASSIGN_OR_RETURN(r.throttle_reasons,
                        Integer(*throttle, "mask", 0, std::numeric_limits<int64_t>::max()));
    // "names" is the mask spelled out for people; the mask is what counts.
    FW_ASSIGN_OR_RETURN(const json::array* names, OptionalList(*throttle, "names", 64));
    for (size_t i = 0; names != nullptr && i < names->size(); ++i) {
      if (!(*names)[i].is_string() || (*names)[i].as_string().size() > 64) {
        return Bad("'throttle_reasons.names' must be a list of short strings");
      }
    }
  }
  FW_ASSIGN_OR_RETURN(const json::object* ecc, OptionalObject(o, "ecc"));
  if (ecc != nullptr) {
    model::EccCounts counts;
    FW_ASSIGN_OR_RETURN(counts.corrected_volatile,
                        OptionalInteger(*ecc, "corrected_volatile", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(counts.uncorrected_volatile,
                        OptionalInteger(*ecc, "uncorrected_volatile", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(counts.corrected_aggregate,
                        OptionalInteger(*ecc, "corrected_aggregate", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(counts.uncorrected_aggregate,
                        OptionalInteger(*ecc, "uncorrected_aggregate", 0, kMaxCount));
    r.ecc = counts;
  }
  FW_ASSIGN_OR_RETURN(const json::object* rows, OptionalObject(o, "remapped_rows"));
  if (rows != nullptr) {
    model::RemappedRows remapped;
    FW_ASSIGN_OR_RETURN(remapped.correctable, Integer(*rows, "correctable", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(remapped.uncorrectable, Integer(*rows, "uncorrectable", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(remapped.pending, Boolean(*rows, "pending"));
    FW_ASSIGN_OR_RETURN(remapped.failure, Boolean(*rows, "failure"));
    r.remapped_rows = remapped;
  }
  FW_ASSIGN_OR_RETURN(const json::object* retired, OptionalObject(o, "retired_pages"));
  if (retired != nullptr) {
    model::RetiredPages pages;
    FW_ASSIGN_OR_RETURN(pages.single_bit_ecc,
                        OptionalInteger(*retired, "single_bit_ecc", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(pages.double_bit_ecc,
                        OptionalInteger(*retired, "double_bit_ecc", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(pages.pending, OptionalBoolean(*retired, "pending"));
    r.retired_pages = pages;
  }
  FW_ASSIGN_OR_RETURN(const json::array* nvlink, OptionalList(o, "nvlink", 64));
  if (nvlink != nullptr) {
    FW_ASSIGN_OR_RETURN(r.nvlink,
                        ObjectList<model::NvlinkErrors>(*nvlink, "nvlink", NvlinkFromJson));
    std::set<int> links;
    for (const model::NvlinkErrors& e : *r.nvlink) {
      if (!links.insert(e.link).second) {
        return Bad("NVLink link " + std::to_string(e.link) + " is listed twice");
      }
    }
  }
  FW_ASSIGN_OR_RETURN(const json::object* xid, OptionalObject(o, "xid"));
  if (xid != nullptr) {
    model::XidEvents events;
    const json::value* counts = xid->if_contains("counts");
    if (counts == nullptr || !counts->is_array()) return Bad("'xid.counts' must be a list");
    if (counts->as_array().size() > kMaxListed) return Bad("'xid.counts' is too long");
    FW_ASSIGN_OR_RETURN(events.counts, ObjectList<model::XidEvents::Count>(
                                           counts->as_array(), "xid.counts", XidCountFromJson));
    std::set<int64_t> seen;
    for (const model::XidEvents::Count& c : events.counts) {
      if (!seen.insert(c.xid).second) {
        return Bad("XID " + std::to_string(c.xid) + " is listed twice");
      }
    }
    FW_ASSIGN_OR_RETURN(events.last, OptionalInteger(*xid, "last", 0, kMaxCount));
    FW_ASSIGN_OR_RETURN(events.last_at, OptionalInteger(*xid, "last_at", 0, kMaxTime));
    if (events.last.has_value() != events.last_at.has_value() ||
        (events.last && !seen.contains(*events.last))) {
      return Bad("'xid.last' and 'xid.last_at' must name a counted XID together");
    }
    r.xid = std::move(events);
  }
  FW_ASSIGN_OR_RETURN(const json::array* processes, OptionalList(o, "processes", kMaxListed));
  if (processes != nullptr) {
    FW_ASSIGN_OR_RETURN(r.processes,
                        ObjectList<model::GpuProcess>(*processes, "processes", ProcessFromJson));
  }
  FW_ASSIGN_OR_RETURN(const json::array* ras, OptionalList(o, "ras", 64));
  if (ras != nullptr) {
    FW_ASSIGN_OR_RETURN(r.ras, ObjectList<model::RasErrors>(*ras, "ras", RasFromJson));
  }
  return r;
}

// The "gpus" field of a poll reply: nullopt when absent or null.
Result<std::optional<std::vector<model::GpuReading>>> GpuReadingsFromJson(const json::object& o) {
  FW_ASSIGN_OR_RETURN(const json::array* list, OptionalList(o, "gpus", kMaxGpus));
  if (list == nullptr) return std::optional<std::vector<model::GpuReading>>();
  std::vector<model::GpuReading> readings;
  std::set<int> indices;
  for (size_t i = 0; i < list->size(); ++i) {
    const json::value& g = (*list)[i];
    if (!g.is_object()) return Bad("each entry of 'gpus' must be an object");
    Result<model::GpuReading> reading = GpuReadingFromJson(g.as_object());
    if (!reading.ok()) return InGpu(i, reading.status());
    if (!indices.insert(reading->index).second) {
      return Bad("GPU " + std::to_string(reading->index) + " is listed twice in 'gpus'");
    }
    readings.push_back(std::move(*reading));
  }
  return std::optional<std::vector<model::GpuReading>>(std::move(readings));
}

}  // namespace

Result<AgentInventory> ParseAgentInventory(std::string_view body) {
  FW_ASSIGN_OR_RETURN(json::object o, ParseObject(body));
  AgentInventory inv;
  FW_ASSIGN_OR_RETURN(inv.agent_id, AgentId(o));
  FW_ASSIGN_OR_RETURN(inv.hostname, Text(o, "hostname", 255));
  FW_ASSIGN_OR_RETURN(int64_t cpus, Integer(o, "cpus", 1, 1 << 20));
  inv.cpus = static_cast<int>(cpus);
  FW_ASSIGN_OR_RETURN(inv.memory_bytes, Integer(o, "memory_bytes", 0, kMaxBytes));
  if (o.contains("cgroup")) {
    FW_ASSIGN_OR_RETURN(inv.cgroup, Text(o, "cgroup", 16));
  }
  const json::value* gpus = o.if_contains("gpus");
  if (gpus == nullptr || !gpus->is_array()) return Bad("'gpus' must be a list");
  if (gpus->as_array().size() > 1024) return Bad("too many GPUs");
  for (const json::value& g : gpus->as_array()) {
    if (!g.is_object()) return Bad("each GPU must be an object");
    const json::object& go = g.as_object();
    model::Gpu gpu;
    FW_ASSIGN_OR_RETURN(int64_t index, Integer(go, "index", 0, 1023));
    gpu.index = static_cast<int>(index);
    FW_ASSIGN_OR_RETURN(gpu.name, Text(go, "name", 256));
    FW_ASSIGN_OR_RETURN(gpu.uuid, Text(go, "uuid", 256));
    FW_ASSIGN_OR_RETURN(gpu.memory_bytes, Integer(go, "memory_bytes", 0, kMaxBytes));
    FW_ASSIGN_OR_RETURN(gpu.vendor, Text(go, "vendor", 32));
    for (const model::Gpu& other : inv.gpus) {
      if (other.index == gpu.index) return Bad("duplicate GPU index");
    }
    inv.gpus.push_back(std::move(gpu));
  }
  return inv;
}

// The `dcgm` field: null/absent → none; else collected_at and text, or an error.
std::optional<AgentDcgm> DcgmFromJson(const json::object& poll) {
  const json::value* v = poll.if_contains("dcgm");
  if (v == nullptr || v->is_null()) return std::nullopt;
  AgentDcgm dcgm;
  if (!v->is_object()) {
    dcgm.error = "bad agent reply: 'dcgm' must be an object";
    return dcgm;
  }
  const json::object& o = v->as_object();
  Result<std::optional<int64_t>> collected_at = OptionalInteger(o, "collected_at", 0, kMaxTime);
  if (!collected_at.ok()) {
    dcgm.error = collected_at.status().message();
    return dcgm;
  }
  dcgm.collected_at = *collected_at;
  if (o.contains("error") && !o.at("error").is_null()) {
    Result<std::string> error = Text(o, "error", 4096);
    dcgm.error = error.ok() ? *error : error.status().message();
    return dcgm;
  }
  Result<std::string> text = Text(o, "text", kMaxDcgmTextBytes);
  if (!text.ok()) {
    dcgm.error = text.status().message();
  } else if (!dcgm.collected_at) {
    dcgm.error = "bad agent reply: DCGM text without 'collected_at'";
  } else {
    dcgm.text = std::move(*text);
  }
  return dcgm;
}

Result<AgentPoll> ParseAgentPoll(std::string_view body) {
  FW_ASSIGN_OR_RETURN(json::object o, ParseObject(body));
  AgentPoll poll;
  FW_ASSIGN_OR_RETURN(poll.agent_id, AgentId(o));
  FW_ASSIGN_OR_RETURN(poll.now, Integer(o, "now", 0, kMaxTime));
  const json::value* jobs = o.if_contains("jobs");
  if (jobs == nullptr || !jobs->is_array()) return Bad("'jobs' must be a list");
  if (jobs->as_array().size() > kMaxJobsPerPoll) return Bad("too many jobs");
  std::set<std::string_view> seen;
  for (const json::value& j : jobs->as_array()) {
    if (!j.is_object()) return Bad("each job must be an object");
    FW_ASSIGN_OR_RETURN(AgentJob job, JobFromJson(j.as_object()));
    poll.jobs.push_back(std::move(job));
  }
  for (const AgentJob& job : poll.jobs) {
    if (!seen.insert(job.job_id).second) return Bad("job '" + job.job_id + "' is listed twice");
  }
  FW_ASSIGN_OR_RETURN(poll.gpus, GpuReadingsFromJson(o));
  poll.dcgm = DcgmFromJson(o);
  return poll;
}

namespace {

// The digits of the one key "now" in `body`: [begin, end), or nullopt when the key is not written
// exactly once as "now": followed by digits, or the body has a backslash (an escaped key could
// spell "now" too).
std::optional<std::pair<size_t, size_t>> NowDigits(std::string_view body) {
  constexpr std::string_view kKey = "\"now\"";
  if (body.find('\\') != std::string_view::npos) return std::nullopt;
  const size_t at = body.find(kKey);
  if (at == std::string_view::npos || body.find(kKey, at + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  size_t begin = at + kKey.size();
  if (begin >= body.size() || body[begin] != ':') return std::nullopt;
  ++begin;
  size_t end = begin;
  while (end < body.size() && body[end] >= '0' && body[end] <= '9') ++end;
  if (end == begin) return std::nullopt;
  return std::make_pair(begin, end);
}

bool Plain(const AgentPoll& poll) {
  return !poll.dcgm && !poll.gpus &&
         std::none_of(poll.jobs.begin(), poll.jobs.end(),
                      [](const AgentJob& j) { return j.metrics.has_value(); });
}

}  // namespace

Result<AgentPoll> AgentPollParser::Parse(std::string_view body) {
  last_reused_ = false;
  if (!body_.empty() && body.size() + (now_end_ - now_begin_) >= body_.size() + 1 &&
      body.compare(0, now_begin_, body_, 0, now_begin_) == 0) {
    // Same up to now's digits: a run of digits, then the rest exactly as remembered.
    const std::string_view rest = std::string_view(body_).substr(now_end_);
    size_t end = now_begin_;
    while (end < body.size() && body[end] >= '0' && body[end] <= '9') ++end;
    const size_t digits = end - now_begin_;
    int64_t now = 0;
    // JSON has no leading zeros; an integer out of int64's range fails from_chars.
    if (digits >= 1 && (digits == 1 || body[now_begin_] != '0') && body.substr(end) == rest) {
      auto [ptr, ec] = std::from_chars(body.data() + now_begin_, body.data() + end, now);
      if (ec == std::errc() && ptr == body.data() + end && now <= kMaxTime) {
        AgentPoll poll = poll_;
        poll.now = now;
        last_reused_ = true;
        return poll;
      }
    }
  }
  ++generation_;
  Result<AgentPoll> poll = ParseAgentPoll(body);
  if (!poll.ok() || !Plain(*poll)) return poll;
  if (auto now = NowDigits(body)) {
    body_.assign(body);
    now_begin_ = now->first;
    now_end_ = now->second;
    poll_ = *poll;
  } else {
    body_.clear();
  }
  return poll;
}

Result<AgentJob> ParseAgentJob(std::string_view body) {
  FW_ASSIGN_OR_RETURN(json::object o, ParseObject(body));
  return JobFromJson(o);
}

Result<LogChunk> ParseAgentLogChunk(std::string body, std::string_view log_size, int64_t offset,
                                    int64_t limit) {
  if (static_cast<int64_t>(body.size()) > limit) return Bad("more log bytes than asked for");
  int64_t size = 0;
  const char* end = log_size.data() + log_size.size();
  auto [ptr, ec] = std::from_chars(log_size.data(), end, size);
  if (log_size.empty() || ec != std::errc() || ptr != end || size < 0 || size > kMaxBytes) {
    return Bad("'X-Log-Size' must be a byte count");
  }
  if (size < offset + static_cast<int64_t>(body.size())) {
    return Bad("'X-Log-Size' is smaller than the bytes served");
  }
  return LogChunk{std::move(body), size};
}

std::string StartJobRequestToJson(const StartJobRequest& r) {
  json::array commands(r.commands.begin(), r.commands.end());
  json::object env;
  for (const auto& [k, v] : r.env) env[k] = v;
  json::array gpus(r.gpu_indices.begin(), r.gpu_indices.end());
  json::array ips(r.cluster.nodes_ips.begin(), r.cluster.nodes_ips.end());
  json::value memory = nullptr, working_dir = nullptr;
  if (r.memory_bytes) memory = *r.memory_bytes;
  if (r.working_dir) working_dir = *r.working_dir;
  json::value body = {{"job_id", r.job_id},
                      {"job_name", r.job_name},
                      {"run_name", r.run_name},
                      {"commands", std::move(commands)},
                      {"env", std::move(env)},
                      {"working_dir", working_dir},
                      {"gpu_indices", std::move(gpus)},
                      {"cpus", r.cpus},
                      {"memory_bytes", memory},
                      {"cluster", json::object{{"nodes_num", r.cluster.nodes_num},
                                               {"node_rank", r.cluster.node_rank},
                                               {"master_node_ip", r.cluster.master_node_ip},
                                               {"nodes_ips", std::move(ips)},
                                               {"gpus_per_node", r.cluster.gpus_per_node}}}};
  return model::SerializeJson(body);
}

}  // namespace fleetwatch::server
