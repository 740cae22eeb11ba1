#include "cli/json_fields.h"

#include <boost/json.hpp>
#include <cmath>

namespace fleetwatch::cli {

const boost::json::value* Field(const boost::json::value& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  return object.as_object().if_contains(key);
}

std::string StringField(const boost::json::value& object, std::string_view key,
                        std::string_view fallback) {
  const boost::json::value* field = Field(object, key);
  if (field == nullptr || !field->is_string()) return std::string(fallback);
  return std::string(field->as_string());
}

std::optional<int64_t> IntField(const boost::json::value& object, std::string_view key) {
  const boost::json::value* field = Field(object, key);
  if (field == nullptr) return std::nullopt;
  if (field->is_int64()) return field->as_int64();
  if (field->is_uint64() && field->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(field->as_uint64());
  }
  if (field->is_double()) {
    double d = field->as_double();
    if (std::trunc(d) == d && std::fabs(d) < 9e18) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::optional<double> NumberField(const boost::json::value& object, std::string_view key) {
  const boost::json::value* field = Field(object, key);
  if (field == nullptr) return std::nullopt;
  if (field->is_double()) return field->as_double();
  if (field->is_int64()) return static_cast<double>(field->as_int64());
  if (field->is_uint64()) return static_cast<double>(field->as_uint64());
  return std::nullopt;
}

const boost::json::array& ArrayField(const boost::json::value& object, std::string_view key) {
  static const boost::json::array* const kEmpty = new boost::json::array();
  const boost::json::value* field = Field(object, key);
  if (field == nullptr || !field->is_array()) return *kEmpty;
  return field->as_array();
}

Result<const boost::json::array*> Items(const boost::json::value& reply) {
  const boost::json::value* items = Field(reply, "items");
  if (items == nullptr || !items->is_array()) {
    return Internal("unexpected reply from the server: no \"items\" list");
  }
  return &items->as_array();
}

}  // namespace fleetwatch::cli
