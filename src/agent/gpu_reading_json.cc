#include "agent/gpu_reading_json.h"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

namespace fleetwatch::agent {
namespace {

namespace json = boost::json;

// Sets `key` when `value` is present and within [min, max] (model/gpu_reading.h's ranges); a
// value outside is a driver's sentinel or garbage: left out, "not available".
void Put(json::object& o, std::string_view key, const std::optional<int64_t>& value,
         int64_t min = 0, int64_t max = model::kMaxGpuReadingCount) {
  if (value && *value >= min && *value <= max) o[key] = *value;
}

}  // namespace

json::object GpuReadingJson(const model::GpuReading& r) {
  json::object o;
  o["index"] = r.index;
  o["uuid"] = r.uuid;
  if (!r.error.empty()) o["error"] = r.error;
  Put(o, "util_percent", r.util_percent, 0, 100);
  Put(o, "memory_used_bytes", r.memory_used_bytes, 0, model::kMaxGpuReadingBytes);
  Put(o, "power_mw", r.power_mw, 0, model::kMaxGpuPowerMw);
  Put(o, "energy_mj", r.energy_mj);
  Put(o, "temperature_c", r.temperature_c, model::kMinGpuTemperatureC, model::kMaxGpuTemperatureC);
  if (r.throttle_reasons) {
    json::array names;
    for (const std::string& name : model::ThrottleReasonNames(*r.throttle_reasons)) {
      names.emplace_back(name);
    }
    o["throttle_reasons"] =
        json::object{{"mask", *r.throttle_reasons}, {"names", std::move(names)}};
  }
  if (r.ecc) {
    json::object ecc;
    Put(ecc, "corrected_volatile", r.ecc->corrected_volatile);
    Put(ecc, "uncorrected_volatile", r.ecc->uncorrected_volatile);
    Put(ecc, "corrected_aggregate", r.ecc->corrected_aggregate);
    Put(ecc, "uncorrected_aggregate", r.ecc->uncorrected_aggregate);
    o["ecc"] = std::move(ecc);
  }
  if (r.remapped_rows) {
    // NVML's unsigned 32-bit counts: always within range.
    o["remapped_rows"] = json::object{{"correctable", r.remapped_rows->correctable},
                                      {"uncorrectable", r.remapped_rows->uncorrectable},
                                      {"pending", r.remapped_rows->pending},
                                      {"failure", r.remapped_rows->failure}};
  }
  if (r.retired_pages) {
    json::object pages;
    Put(pages, "single_bit_ecc", r.retired_pages->single_bit_ecc);
    Put(pages, "double_bit_ecc", r.retired_pages->double_bit_ecc);
    if (r.retired_pages->pending) pages["pending"] = *r.retired_pages->pending;
    o["retired_pages"] = std::move(pages);
  }
  if (r.nvlink) {
    json::array links;
    for (const model::NvlinkErrors& link : *r.nvlink) {
      json::object l;
      l["link"] = link.link;
      Put(l, "replay", link.replay);
      Put(l, "recovery", link.recovery);
      Put(l, "crc_flit", link.crc_flit);
      Put(l, "crc_data", link.crc_data);
      links.push_back(std::move(l));
    }
    o["nvlink"] = std::move(links);
  }
  if (r.xid) {
    json::array counts;
    for (const model::XidEvents::Count& c : r.xid->counts) {
      counts.push_back(json::object{{"xid", c.xid}, {"count", c.count}});
    }
    json::object xid;
    xid["counts"] = std::move(counts);
    Put(xid, "last", r.xid->last);
    Put(xid, "last_at", r.xid->last_at);
    o["xid"] = std::move(xid);
  }
  if (r.processes) {
    json::array processes;
    for (const model::GpuProcess& p : *r.processes) {
      json::object process;
      process["pid"] = p.pid;
      Put(process, "used_memory_bytes", p.used_memory_bytes, 0, model::kMaxGpuReadingBytes);
      processes.push_back(std::move(process));
    }
    o["processes"] = std::move(processes);
  }
  if (r.ras) {
    json::array blocks;
    for (const model::RasErrors& b : *r.ras) {
      json::object block;
      block["block"] = b.block;
      Put(block, "correctable", b.correctable);
      Put(block, "uncorrectable", b.uncorrectable);
      blocks.push_back(std::move(block));
    }
    o["ras"] = std::move(blocks);
  }
  return o;
}

}  // namespace fleetwatch::agent
