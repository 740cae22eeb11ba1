#include "store/row_mapping.h"

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

namespace fleetwatch::store::rows {
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

std::string Sql(std::string_view select, std::string_view rest) {
  std::string sql(select);
  sql += rest;
  return sql;
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

Status WithContext(const Status& status, const std::string& context) {
  if (status.ok()) return status;
  return {status.code(), context + ": " + status.message()};
}

std::string Placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += i == 0 ? "?" : ", ?";
  return out;
}

}  // namespace fleetwatch::store::rows
