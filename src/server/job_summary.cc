#include "server/job_summary.h"

#include <algorithm>
#include <cmath>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "model/json_text.h"
#include "server/energy.h"
#include "server/summary_notes.h"

namespace fleetwatch::server {
namespace {

namespace json = boost::json;

double Seconds(TimeMicros micros) { return static_cast<double>(micros) / 1e6; }

// Readers of the fields ToJson writes; each records the first problem in `error`.
class Fields {
 public:
  Fields(const json::object& object, std::string& error) : object_(object), error_(error) {}

  int64_t Int(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v != nullptr && v->is_int64()) return v->get_int64();
    if (v != nullptr && v->is_uint64() && v->get_uint64() <= INT64_MAX) {
      return static_cast<int64_t>(v->get_uint64());
    }
    Fail(key);
    return 0;
  }
  std::optional<int64_t> OptionalInt(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    return Int(key);
  }
  double Number(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v != nullptr && v->is_number()) return v->to_number<double>();
    Fail(key);
    return 0;
  }
  std::optional<double> OptionalNumber(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    return Number(key);
  }
  bool Bool(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v != nullptr && v->is_bool()) return v->get_bool();
    Fail(key);
    return false;
  }
  std::string String(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v != nullptr && v->is_string()) return std::string(v->get_string());
    Fail(key);
    return {};
  }
  std::optional<std::string> OptionalString(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    return String(key);
  }
  const json::array* Array(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v != nullptr && v->is_array()) return &v->get_array();
    Fail(key);
    return nullptr;
  }

 private:
  void Fail(std::string_view key) {
    if (error_.empty()) error_ = "field '" + std::string(key) + "' is missing or of the wrong type";
  }
  const json::object& object_;
  std::string& error_;
};

json::value Optional(const std::optional<int64_t>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}
json::value Optional(const std::optional<double>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}
json::value Optional(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

// Numbers as JSON writes them: finite only (a NaN would not parse back).
double Finite(double d) { return std::isfinite(d) ? d : 0; }

Result<json::object> ParseObject(std::string_view text, std::string_view what) {
  Result<json::value> root = model::ParseStrictJson(text);
  if (!root.ok()) return InvalidArgument(std::string(what) + ": " + root.status().message());
  if (!root->is_object()) return InvalidArgument(std::string(what) + ": not a JSON object");
  return std::move(root->get_object());
}

int64_t XidTotal(const model::XidEvents& xid) {
  int64_t total = 0;
  for (const model::XidEvents::Count& c : xid.counts) {
    total = std::min<int64_t>(model::kMaxGpuReadingCount, total + std::max<int64_t>(0, c.count));
  }
  return total;
}

}  // namespace

AggregateDelta AddPoint(JobAggregates& job, const model::JobMetricsPoint& point) {
  AggregateDelta delta;
  if (job.last_point_at && point.timestamp_micro <= *job.last_point_at) return delta;
  delta.changed = true;
  if (job.last_point_at) {
    const TimeMicros span = point.timestamp_micro - *job.last_point_at;
    const int64_t cpu = point.cpu_usage_micro - job.last_cpu_micro;
    if (cpu >= 0 && span <= kMaxChargedGap) {
      const double cores = static_cast<double>(cpu) / static_cast<double>(span);
      job.cpu_core_seconds += Seconds(cpu);
      job.cpu_span_seconds += Seconds(span);
      job.cpu_peak_cores = std::max(job.cpu_peak_cores, cores);
    }
    // Utilization-weighted GPU time: each GPU's utilization over the interval that ends here.
    const double charged = Seconds(std::min(span, kMaxChargedGap));
    for (size_t i = 0; i < point.gpus_util_percent.size() && i < job.gpus.size(); ++i) {
      const int64_t util = std::clamp<int64_t>(point.gpus_util_percent[i], 0, 100);
      delta.busy_gpu_seconds += static_cast<double>(util) / 100.0 * charged;
    }
  }
  job.last_point_at = point.timestamp_micro;
  job.last_cpu_micro = point.cpu_usage_micro;
  ++job.points;
  job.memory_peak_bytes = std::max(job.memory_peak_bytes, point.memory_usage_bytes);
  for (size_t i = 0; i < job.gpus.size(); ++i) {
    GpuAggregate& gpu = job.gpus[i];
    if (i < point.gpus_util_percent.size()) {
      const int64_t util = std::clamp<int64_t>(point.gpus_util_percent[i], 0, 100);
      ++gpu.samples;
      gpu.util_sum += util;
      gpu.util_max = std::max(gpu.util_max, util);
      if (util < kIdleUtilPercent) ++gpu.idle_samples;
    }
    if (i < point.gpus_memory_usage_bytes.size()) {
      gpu.memory_peak_bytes = std::max(gpu.memory_peak_bytes, point.gpus_memory_usage_bytes[i]);
    }
  }
  job.busy_gpu_seconds += delta.busy_gpu_seconds;
  return delta;
}

AggregateDelta AddReading(JobAggregates& job, const model::GpuReading& reading, TimeMicros at) {
  AggregateDelta delta;
  auto it = std::find_if(job.gpus.begin(), job.gpus.end(),
                         [&](const GpuAggregate& g) { return g.index == reading.index; });
  if (it == job.gpus.end() || !reading.error.empty()) return delta;
  GpuAggregate& gpu = *it;
  if (gpu.last_reading_at && at <= *gpu.last_reading_at) return delta;
  delta.changed = true;
  const bool same_gpu = gpu.uuid.empty() || reading.uuid.empty() || gpu.uuid == reading.uuid;
  std::optional<EnergySample> previous;
  if (gpu.last_reading_at && same_gpu) {
    previous = EnergySample{*gpu.last_reading_at, gpu.last_energy_mj, std::nullopt};
  }
  const EnergyStep step = EnergyBetween(
      previous, EnergySample{at, reading.energy_mj, reading.power_mw}, kMaxChargedGap);
  gpu.energy_joules += step.joules;
  gpu.energy_estimated |= step.estimated;
  delta.energy_joules = step.joules;
  delta.carbon_grams = CarbonGrams(step.joules, job.carbon_intensity);
  job.energy_joules += delta.energy_joules;
  job.carbon_grams += delta.carbon_grams;
  gpu.last_reading_at = at;
  gpu.last_energy_mj = reading.energy_mj;
  if (!reading.uuid.empty()) gpu.uuid = reading.uuid;
  // XID events: counted by the agent since it started; fewer than before means it restarted.
  if (reading.xid) {
    const int64_t total = XidTotal(*reading.xid);
    if (gpu.last_xid_total && same_gpu) {
      gpu.xid_events += total >= *gpu.last_xid_total ? total - *gpu.last_xid_total : total;
    }
    gpu.last_xid_total = total;
  }
  return delta;
}

std::string ToJson(const JobAggregates& job) {
  json::object o;
  o["job_id"] = job.job_id;
  o["run_id"] = job.run_id;
  o["run_name"] = job.run_name;
  o["run_type"] = job.run_type;
  o["job_name"] = job.job_name;
  o["job_num"] = job.job_num;
  o["replica_num"] = job.replica_num;
  o["project_name"] = job.project_name;
  o["user_name"] = job.user_name;
  o["instance_id"] = job.instance_id;
  o["price"] = Optional(job.price);
  o["carbon_intensity"] = Finite(job.carbon_intensity);
  o["cpus"] = job.cpus;
  o["memory_limit_bytes"] = job.memory_limit_bytes;
  o["started_at"] = Optional(job.started_at);
  o["points"] = job.points;
  o["last_point_at"] = Optional(job.last_point_at);
  o["last_cpu_micro"] = job.last_cpu_micro;
  o["cpu_core_seconds"] = Finite(job.cpu_core_seconds);
  o["cpu_span_seconds"] = Finite(job.cpu_span_seconds);
  o["cpu_peak_cores"] = Finite(job.cpu_peak_cores);
  o["memory_peak_bytes"] = job.memory_peak_bytes;
  o["energy_joules"] = Finite(job.energy_joules);
  o["busy_gpu_seconds"] = Finite(job.busy_gpu_seconds);
  o["carbon_grams"] = Finite(job.carbon_grams);
  json::array gpus;
  for (const GpuAggregate& g : job.gpus) {
    json::object x;
    x["index"] = g.index;
    x["uuid"] = g.uuid;
    x["memory_total_bytes"] = g.memory_total_bytes;
    x["samples"] = g.samples;
    x["util_sum"] = g.util_sum;
    x["util_max"] = g.util_max;
    x["idle_samples"] = g.idle_samples;
    x["memory_peak_bytes"] = g.memory_peak_bytes;
    x["last_reading_at"] = Optional(g.last_reading_at);
    x["last_energy_mj"] = Optional(g.last_energy_mj);
    x["energy_joules"] = Finite(g.energy_joules);
    x["energy_estimated"] = g.energy_estimated;
    x["last_xid_total"] = Optional(g.last_xid_total);
    x["xid_events"] = g.xid_events;
    gpus.push_back(std::move(x));
  }
  o["gpus"] = std::move(gpus);
  return json::serialize(o);
}

Result<JobAggregates> JobAggregatesFromJson(std::string_view text) {
  FW_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "job aggregates"));
  std::string error;
  Fields f(o, error);
  JobAggregates job;
  job.job_id = f.String("job_id");
  job.run_id = f.String("run_id");
  job.run_name = f.String("run_name");
  job.run_type = f.String("run_type");
  job.job_name = f.String("job_name");
  job.job_num = static_cast<int>(f.Int("job_num"));
  job.replica_num = static_cast<int>(f.Int("replica_num"));
  job.project_name = f.String("project_name");
  job.user_name = f.String("user_name");
  job.instance_id = f.String("instance_id");
  job.price = f.OptionalNumber("price");
  job.carbon_intensity = f.Number("carbon_intensity");
  job.cpus = static_cast<int>(f.Int("cpus"));
  job.memory_limit_bytes = f.Int("memory_limit_bytes");
  job.started_at = f.OptionalInt("started_at");
  job.points = f.Int("points");
  job.last_point_at = f.OptionalInt("last_point_at");
  job.last_cpu_micro = f.Int("last_cpu_micro");
  job.cpu_core_seconds = f.Number("cpu_core_seconds");
  job.cpu_span_seconds = f.Number("cpu_span_seconds");
  job.cpu_peak_cores = f.Number("cpu_peak_cores");
  job.memory_peak_bytes = f.Int("memory_peak_bytes");
  job.energy_joules = f.Number("energy_joules");
  job.busy_gpu_seconds = f.Number("busy_gpu_seconds");
  job.carbon_grams = f.Number("carbon_grams");
  if (const json::array* gpus = f.Array("gpus")) {
    for (const json::value& v : *gpus) {
      if (!v.is_object()) return InvalidArgument("job aggregates: a GPU is not an object");
      Fields g(v.get_object(), error);
      GpuAggregate gpu;
      gpu.index = static_cast<int>(g.Int("index"));
      gpu.uuid = g.String("uuid");
      gpu.memory_total_bytes = g.Int("memory_total_bytes");
      gpu.samples = g.Int("samples");
      gpu.util_sum = g.Int("util_sum");
      gpu.util_max = g.Int("util_max");
      gpu.idle_samples = g.Int("idle_samples");
      gpu.memory_peak_bytes = g.Int("memory_peak_bytes");
      gpu.last_reading_at = g.OptionalInt("last_reading_at");
      gpu.last_energy_mj = g.OptionalInt("last_energy_mj");
      gpu.energy_joules = g.Number("energy_joules");
      gpu.energy_estimated = g.Bool("energy_estimated");
      gpu.last_xid_total = g.OptionalInt("last_xid_total");
      gpu.xid_events = g.Int("xid_events");
      job.gpus.push_back(std::move(gpu));
    }
  }
  if (!error.empty()) return InvalidArgument("job aggregates: " + error);
  return job;
}

JobSummary SummaryOf(const JobAggregates& job, const JobEnd& end, TimeMicros now) {
  JobSummary s;
  s.job_id = job.job_id;
  s.job_name = job.job_name;
  s.job_num = job.job_num;
  s.replica_num = job.replica_num;
  s.status = end.status;
  s.termination_reason = end.termination_reason;
  s.final = end.finished_at.has_value();
  s.started_at = job.started_at;
  s.finished_at = end.finished_at;
  if (job.started_at) {
    const TimeMicros until = end.finished_at.value_or(now);
    s.duration_seconds = Seconds(std::max<TimeMicros>(0, until - *job.started_at));
  }
  s.cpus = job.cpus;
  s.cpu_mean_cores = job.cpu_span_seconds > 0 ? job.cpu_core_seconds / job.cpu_span_seconds : 0;
  s.cpu_peak_cores = job.cpu_peak_cores;
  s.memory_peak_bytes = job.memory_peak_bytes;
  s.memory_limit_bytes = job.memory_limit_bytes;
  for (const GpuAggregate& g : job.gpus) {
    GpuSummary gs;
    gs.index = g.index;
    gs.memory_total_bytes = g.memory_total_bytes;
    gs.samples = g.samples;
    if (g.samples > 0) {
      gs.util_mean = static_cast<double>(g.util_sum) / static_cast<double>(g.samples);
      gs.idle_share = static_cast<double>(g.idle_samples) / static_cast<double>(g.samples);
    }
    gs.util_max = g.util_max;
    gs.memory_peak_bytes = g.memory_peak_bytes;
    gs.energy_joules = g.energy_joules;
    gs.energy_estimated = g.energy_estimated;
    gs.xid_events = g.xid_events;
    s.energy_estimated |= g.energy_estimated;
    s.gpus.push_back(gs);
  }
  s.energy_joules = job.energy_joules;
  s.busy_gpu_seconds = job.busy_gpu_seconds;
  s.carbon_intensity = job.carbon_intensity;
  s.carbon_grams = job.carbon_grams;
  s.cost_dollars = std::max(0.0, job.price.value_or(0.0)) * s.duration_seconds / 3600.0;
  s.notes = SummaryNotes(s);
  return s;
}

std::string ToJson(const JobSummary& s) {
  json::object o;
  o["job_id"] = s.job_id;
  o["job_name"] = s.job_name;
  o["job_num"] = s.job_num;
  o["replica_num"] = s.replica_num;
  o["status"] = s.status;
  o["termination_reason"] = Optional(s.termination_reason);
  o["final"] = s.final;
  o["started_at"] = Optional(s.started_at);
  o["finished_at"] = Optional(s.finished_at);
  o["duration_seconds"] = Finite(s.duration_seconds);
  o["cpus"] = s.cpus;
  o["cpu_mean_cores"] = Finite(s.cpu_mean_cores);
  o["cpu_peak_cores"] = Finite(s.cpu_peak_cores);
  o["memory_peak_bytes"] = s.memory_peak_bytes;
  o["memory_limit_bytes"] = s.memory_limit_bytes;
  json::array gpus;
  for (const GpuSummary& g : s.gpus) {
    json::object x;
    x["index"] = g.index;
    x["memory_total_bytes"] = g.memory_total_bytes;
    x["samples"] = g.samples;
    x["util_mean_percent"] = Finite(g.util_mean);
    x["util_max_percent"] = g.util_max;
    x["memory_peak_bytes"] = g.memory_peak_bytes;
    x["energy_joules"] = Finite(g.energy_joules);
    x["energy_estimated"] = g.energy_estimated;
    x["idle_share"] = Finite(g.idle_share);
    x["xid_events"] = g.xid_events;
    gpus.push_back(std::move(x));
  }
  o["gpus"] = std::move(gpus);
  o["energy_joules"] = Finite(s.energy_joules);
  o["energy_estimated"] = s.energy_estimated;
  o["busy_gpu_seconds"] = Finite(s.busy_gpu_seconds);
  o["carbon_intensity"] = Finite(s.carbon_intensity);
  o["carbon_grams"] = Finite(s.carbon_grams);
  o["cost_dollars"] = Finite(s.cost_dollars);
  json::array notes;
  for (const SummaryNote& n : s.notes) {
    notes.push_back(json::object{{"rule", n.rule}, {"text", n.text}});
  }
  o["notes"] = std::move(notes);
  return json::serialize(o);
}

Result<JobSummary> JobSummaryFromJson(std::string_view text) {
  FW_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "job summary"));
  std::string error;
  Fields f(o, error);
  JobSummary s;
  s.job_id = f.String("job_id");
  s.job_name = f.String("job_name");
  s.job_num = static_cast<int>(f.Int("job_num"));
  s.replica_num = static_cast<int>(f.Int("replica_num"));
  s.status = f.String("status");
  s.termination_reason = f.OptionalString("termination_reason");
  s.final = f.Bool("final");
  s.started_at = f.OptionalInt("started_at");
  s.finished_at = f.OptionalInt("finished_at");
  s.duration_seconds = f.Number("duration_seconds");
  s.cpus = static_cast<int>(f.Int("cpus"));
  s.cpu_mean_cores = f.Number("cpu_mean_cores");
  s.cpu_peak_cores = f.Number("cpu_peak_cores");
  s.memory_peak_bytes = f.Int("memory_peak_bytes");
  s.memory_limit_bytes = f.Int("memory_limit_bytes");
  if (const json::array* gpus = f.Array("gpus")) {
    for (const json::value& v : *gpus) {
      if (!v.is_object()) return InvalidArgument("job summary: a GPU is not an object");
      Fields g(v.get_object(), error);
      GpuSummary gs;
      gs.index = static_cast<int>(g.Int("index"));
      gs.memory_total_bytes = g.Int("memory_total_bytes");
      gs.samples = g.Int("samples");
      gs.util_mean = g.Number("util_mean_percent");
      gs.util_max = g.Int("util_max_percent");
      gs.memory_peak_bytes = g.Int("memory_peak_bytes");
      gs.energy_joules = g.Number("energy_joules");
      gs.energy_estimated = g.Bool("energy_estimated");
      gs.idle_share = g.Number("idle_share");
      gs.xid_events = g.Int("xid_events");
      s.gpus.push_back(gs);
    }
  }
  s.energy_joules = f.Number("energy_joules");
  s.energy_estimated = f.Bool("energy_estimated");
  s.busy_gpu_seconds = f.Number("busy_gpu_seconds");
  s.carbon_intensity = f.Number("carbon_intensity");
  s.carbon_grams = f.Number("carbon_grams");
  s.cost_dollars = f.Number("cost_dollars");
  if (const json::array* notes = f.Array("notes")) {
    for (const json::value& v : *notes) {
      if (!v.is_object()) return InvalidArgument("job summary: a note is not an object");
      Fields n(v.get_object(), error);
      s.notes.push_back(SummaryNote{n.String("rule"), n.String("text")});
    }
  }
  if (!error.empty()) return InvalidArgument("job summary: " + error);
  return s;
}

}  // namespace fleetwatch::server
