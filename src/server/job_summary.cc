#include "server/job_summary.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

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

// The JSON of aggregates and summaries is written and read from one field list per struct
// (VisitAggregates, VisitSummary below): each list calls `io(key, member)` per field,
// `io.Defaulted` for a field that older servers did not write (missing: the member keeps its
// default) and `io.Array` for a list of objects. JsonWriter writes them; JsonReader reads them back
// and records the first problem.

// Numbers as JSON writes them: finite only (a NaN would not parse back).
double Finite(double d) { return std::isfinite(d) ? d : 0; }

// Writes the JSON text directly (no JSON tree: a tick stores thousands of aggregates): keys in
// the order visited, numbers in their shortest form that reads back the same (std::to_chars),
// strings escaped as JSON requires.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) { out_ += '{'; }
  // Closes the object.
  void End() { out_ += '}'; }

  template <typename T>
  void operator()(std::string_view key, const T& value) {
    Key(key);
    Value(value);
  }
  template <typename T>
  void Defaulted(std::string_view key, const T& value) {
    (*this)(key, value);
  }
  template <typename T, typename Visit>
  void Array(std::string_view key, std::string_view /*what*/, const std::vector<T>& items,
             Visit&& visit) {
    Key(key);
    out_ += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out_ += ',';
      JsonWriter w(out_);
      visit(w, items[i]);
      w.End();
    }
    out_ += ']';
  }

 private:
  void Key(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    String(key);
    out_ += ':';
  }
  void String(std::string_view text) {
    out_ += '"';
    for (const char c : text) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        case '\b':
          out_ += "\\b";
          break;
        case '\f':
          out_ += "\\f";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            static constexpr char kHex[] = "0123456789abcdef";
            out_ += "\\u00";
            out_ += kHex[(c >> 4) & 0xf];
            out_ += kHex[c & 0xf];
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }
  template <typename N>
  void Number(N n) {
    char buffer[32];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, n);
    out_.append(buffer, ec == std::errc() ? end : buffer);
  }
  void Value(const std::string& v) { String(v); }
  void Value(bool v) { out_ += v ? "true" : "false"; }
  void Value(int v) { Number(v); }
  void Value(int64_t v) { Number(v); }
  void Value(double v) { Number(Finite(v)); }
  template <typename T>
  void Value(const std::optional<T>& v) {
    if (v) {
      Value(*v);
    } else {
      out_ += "null";
    }
  }

  std::string& out_;
  bool first_ = true;
};

class JsonReader {
 public:
  JsonReader(const json::object& object, std::string& error) : object_(object), error_(error) {}

  template <typename T>
  void operator()(std::string_view key, T& value) {
    Read(key, object_.if_contains(key), value);
  }
  template <typename T>
  void Defaulted(std::string_view key, T& value) {
    if (const json::value* v = object_.if_contains(key)) Read(key, v, value);
  }
  template <typename T, typename Visit>
  void Array(std::string_view key, std::string_view what, std::vector<T>& items, Visit&& visit) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr || !v->is_array()) return Fail(key);
    for (const json::value& item : v->get_array()) {
      if (!item.is_object()) {
        if (error_.empty()) error_ = std::string(what) + " is not an object";
        return;
      }
      T t{};
      JsonReader r(item.get_object(), error_);
      visit(r, t);
      items.push_back(std::move(t));
    }
  }

 private:
  void Read(std::string_view key, const json::value* v, int64_t& out) {
    if (v != nullptr && v->is_int64()) {
      out = v->get_int64();
    } else if (v != nullptr && v->is_uint64() && v->get_uint64() <= INT64_MAX) {
      out = static_cast<int64_t>(v->get_uint64());
    } else {
      Fail(key);
    }
  }
  void Read(std::string_view key, const json::value* v, int& out) {
    int64_t wide = 0;
    Read(key, v, wide);
    if (wide < INT_MIN || wide > INT_MAX) return Fail(key);
    out = static_cast<int>(wide);
  }
  void Read(std::string_view key, const json::value* v, double& out) {
    if (v != nullptr && v->is_number()) {
      out = v->to_number<double>();
    } else {
      Fail(key);
    }
  }
  void Read(std::string_view key, const json::value* v, bool& out) {
    if (v != nullptr && v->is_bool()) {
      out = v->get_bool();
    } else {
      Fail(key);
    }
  }
  void Read(std::string_view key, const json::value* v, std::string& out) {
    if (v != nullptr && v->is_string()) {
      out = std::string(v->get_string());
    } else {
      Fail(key);
    }
  }
  template <typename T>
  void Read(std::string_view key, const json::value* v, std::optional<T>& out) {
    if (v == nullptr || v->is_null()) {
      out.reset();
      return;
    }
    T t{};
    Read(key, v, t);
    out = std::move(t);
  }
  void Fail(std::string_view key) {
    if (error_.empty()) error_ = "field '" + std::string(key) + "' is missing or of the wrong type";
  }

  const json::object& object_;
  std::string& error_;
};

// The fields of JobAggregates (`Job`: it, const or not) and of its GPUs.
template <typename Io, typename Job>
void VisitAggregates(Io& io, Job& job) {
  io("job_id", job.job_id);
  io("run_id", job.run_id);
  io("run_name", job.run_name);
  io("run_type", job.run_type);
  io("job_name", job.job_name);
  io("job_num", job.job_num);
  io("replica_num", job.replica_num);
  io("project_name", job.project_name);
  io("user_name", job.user_name);
  io("instance_id", job.instance_id);
  io("price", job.price);
  io("carbon_intensity", job.carbon_intensity);
  io("cpus", job.cpus);
  io("memory_limit_bytes", job.memory_limit_bytes);
  io("started_at", job.started_at);
  io("points", job.points);
  io("last_point_at", job.last_point_at);
  io("last_cpu_micro", job.last_cpu_micro);
  io("cpu_core_seconds", job.cpu_core_seconds);
  io("cpu_span_seconds", job.cpu_span_seconds);
  io("cpu_peak_cores", job.cpu_peak_cores);
  io("memory_peak_bytes", job.memory_peak_bytes);
  io("energy_joules", job.energy_joules);
  io("busy_gpu_seconds", job.busy_gpu_seconds);
  io("carbon_grams", job.carbon_grams);
  io.Array("gpus", "a GPU", job.gpus, [](auto& gio, auto& g) {
    gio("index", g.index);
    gio("uuid", g.uuid);
    gio("memory_total_bytes", g.memory_total_bytes);
    gio("samples", g.samples);
    gio("util_sum", g.util_sum);
    gio("util_max", g.util_max);
    gio("idle_samples", g.idle_samples);
    gio.Defaulted("covered_seconds", g.covered_seconds);
    gio.Defaulted("util_percent_seconds", g.util_percent_seconds);
    gio.Defaulted("idle_seconds", g.idle_seconds);
    gio("memory_peak_bytes", g.memory_peak_bytes);
    gio("last_reading_at", g.last_reading_at);
    gio("last_energy_mj", g.last_energy_mj);
    gio("last_power_mw", g.last_power_mw);
    gio("energy_joules", g.energy_joules);
    gio("energy_estimated", g.energy_estimated);
    gio("last_xid_total", g.last_xid_total);
    gio("xid_events", g.xid_events);
  });
}

// The fields of JobSummary (`Summary`: it, const or not), of its GPUs and of its notes.
template <typename Io, typename Summary>
void VisitSummary(Io& io, Summary& s) {
  io("job_id", s.job_id);
  io("job_name", s.job_name);
  io("job_num", s.job_num);
  io("replica_num", s.replica_num);
  io("status", s.status);
  io("termination_reason", s.termination_reason);
  io("final", s.final);
  io("started_at", s.started_at);
  io("finished_at", s.finished_at);
  io("duration_seconds", s.duration_seconds);
  io("cpus", s.cpus);
  io("cpu_mean_cores", s.cpu_mean_cores);
  io("cpu_peak_cores", s.cpu_peak_cores);
  io("memory_peak_bytes", s.memory_peak_bytes);
  io("memory_limit_bytes", s.memory_limit_bytes);
  io.Array("gpus", "a GPU", s.gpus, [](auto& gio, auto& g) {
    gio("index", g.index);
    gio("memory_total_bytes", g.memory_total_bytes);
    gio("samples", g.samples);
    gio("util_mean_percent", g.util_mean);
    gio("util_max_percent", g.util_max);
    gio("memory_peak_bytes", g.memory_peak_bytes);
    gio("energy_joules", g.energy_joules);
    gio("energy_estimated", g.energy_estimated);
    gio("idle_share", g.idle_share);
    gio("xid_events", g.xid_events);
  });
  io("energy_joules", s.energy_joules);
  io("energy_estimated", s.energy_estimated);
  io("busy_gpu_seconds", s.busy_gpu_seconds);
  io("carbon_intensity", s.carbon_intensity);
  io("carbon_grams", s.carbon_grams);
  io("cost_dollars", s.cost_dollars);
  io.Defaulted("price", s.price);
  io.Array("notes", "a note", s.notes, [](auto& nio, auto& n) {
    nio("rule", n.rule);
    nio("text", n.text);
  });
}

template <typename T, typename Visit>
std::string WriteJson(const T& value, Visit&& visit) {
  std::string out;
  out.reserve(1024);
  JsonWriter w(out);
  visit(w, value);
  w.End();
  return out;
}

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

// What a GPU drew between the job's start and its first reading of it, `current` (docs on
// AddReading).
EnergyStep EnergyBeforeFirstReading(TimeMicros started_at, const EnergySample& current,
                                    const std::optional<GpuBaseline>& before,
                                    std::string_view job_uuid, std::string_view reading_uuid) {
  auto same = [](std::string_view a, std::string_view b) {
    return a.empty() || b.empty() || a == b;
  };
  if (before && before->at < current.at && same(before->uuid, reading_uuid) &&
      same(before->uuid, job_uuid)) {
    EnergyStep step = EnergyBetween(EnergySample{before->at, before->energy_mj, std::nullopt},
                                    current, kMaxChargedGap);
    const TimeMicros from = std::max(started_at, before->at);
    step.joules *=
        static_cast<double>(current.at - from) / static_cast<double>(current.at - before->at);
    return step;
  }
  // No earlier reading: the first one's power over the time since the start.
  return EnergyBetween(EnergySample{started_at, std::nullopt, std::nullopt},
                       EnergySample{current.at, std::nullopt, current.power_mw}, kMaxChargedGap);
}

}  // namespace

AggregateDelta AddPoint(JobAggregates& job, const model::JobMetricsPoint& point) {
  AggregateDelta delta;
  if (job.last_point_at && point.timestamp_micro <= *job.last_point_at) return delta;
  delta.changed = true;
  double charged = 0;  // the seconds this point's samples cover
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
    charged = Seconds(std::min(span, kMaxChargedGap));
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
      gpu.covered_seconds += charged;
      gpu.util_percent_seconds += static_cast<double>(util) * charged;
      if (util < kIdleUtilPercent) gpu.idle_seconds += charged;
    }
    if (i < point.gpus_memory_usage_bytes.size()) {
      gpu.memory_peak_bytes = std::max(gpu.memory_peak_bytes, point.gpus_memory_usage_bytes[i]);
    }
  }
  job.busy_gpu_seconds += delta.busy_gpu_seconds;
  return delta;
}

AggregateDelta AddReading(JobAggregates& job, const model::GpuReading& reading, TimeMicros at,
                          const std::optional<GpuBaseline>& before) {
  AggregateDelta delta;
  auto it = std::find_if(job.gpus.begin(), job.gpus.end(),
                         [&](const GpuAggregate& g) { return g.index == reading.index; });
  if (it == job.gpus.end() || !reading.error.empty()) return delta;
  GpuAggregate& gpu = *it;
  if (gpu.last_reading_at && at <= *gpu.last_reading_at) return delta;
  delta.changed = true;
  const bool same_gpu = gpu.uuid.empty() || reading.uuid.empty() || gpu.uuid == reading.uuid;
  const EnergySample current{at, reading.energy_mj, reading.power_mw};
  EnergyStep step;
  if (gpu.last_reading_at) {
    std::optional<EnergySample> previous;
    if (same_gpu) previous = EnergySample{*gpu.last_reading_at, gpu.last_energy_mj, std::nullopt};
    step = EnergyBetween(previous, current, kMaxChargedGap);
  } else if (job.started_at && *job.started_at < at) {
    step = EnergyBeforeFirstReading(*job.started_at, current, before, gpu.uuid, reading.uuid);
  }
  gpu.energy_joules += step.joules;
  gpu.energy_estimated |= step.estimated;
  delta.energy_joules = step.joules;
  delta.carbon_grams = CarbonGrams(step.joules, job.carbon_intensity);
  job.energy_joules += delta.energy_joules;
  job.carbon_grams += delta.carbon_grams;
  gpu.last_reading_at = at;
  gpu.last_energy_mj = reading.energy_mj;
  gpu.last_power_mw = reading.power_mw;
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

AggregateDelta AddEnd(JobAggregates& job, TimeMicros finished_at) {
  AggregateDelta delta;
  for (GpuAggregate& gpu : job.gpus) {
    if (!gpu.last_reading_at || !gpu.last_power_mw || *gpu.last_power_mw <= 0 ||
        finished_at <= *gpu.last_reading_at) {
      continue;
    }
    const TimeMicros span = std::min(finished_at - *gpu.last_reading_at, kMaxChargedGap);
    const double joules = static_cast<double>(*gpu.last_power_mw) / 1000.0 *
                          (static_cast<double>(span) / 1'000'000.0);
    gpu.energy_joules += joules;
    gpu.energy_estimated = true;
    gpu.last_reading_at = finished_at;  // charged up to here: never again
    delta.energy_joules += joules;
    delta.changed = true;
  }
  delta.carbon_grams = CarbonGrams(delta.energy_joules, job.carbon_intensity);
  job.energy_joules += delta.energy_joules;
  job.carbon_grams += delta.carbon_grams;
  return delta;
}

std::string ToJson(const JobAggregates& job) {
  return WriteJson(job, [](auto& io, const JobAggregates& j) { VisitAggregates(io, j); });
}

Result<JobAggregates> JobAggregatesFromJson(std::string_view text) {
  FW_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "job aggregates"));
  std::string error;
  JsonReader reader(o, error);
  JobAggregates job;
  VisitAggregates(reader, job);
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
    if (g.covered_seconds > 0) {
      gs.util_mean = g.util_percent_seconds / g.covered_seconds;
      gs.idle_share = g.idle_seconds / g.covered_seconds;
    } else if (g.samples > 0) {
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
  s.price = job.price;
  s.notes = SummaryNotes(s);
  return s;
}

std::string ToJson(const JobSummary& summary) {
  return WriteJson(summary, [](auto& io, const JobSummary& s) { VisitSummary(io, s); });
}

Result<JobSummary> JobSummaryFromJson(std::string_view text) {
  FW_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "job summary"));
  std::string error;
  JsonReader reader(o, error);
  JobSummary s;
  VisitSummary(reader, s);
  if (!error.empty()) return InvalidArgument("job summary: " + error);
  return s;
}

}  // namespace fleetwatch::server
