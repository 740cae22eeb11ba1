#include "cli/configuration_file.h"

#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/json_fields.h"

namespace fleetwatch::cli {
namespace {

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Reads at most kMaxConfigurationBytes + 1 bytes, so an oversized input is seen without reading
// all of it.
std::string ReadLimited(std::istream& in) {
  std::string text(kMaxConfigurationBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

}  // namespace

Result<ConfigurationFile> ReadConfigurationFile(const std::string& path) {
  std::string text;
  std::string source = path == "-" ? "stdin" : path;
  if (path == "-") {
    text = ReadLimited(std::cin);
    if (std::cin.bad()) return InvalidArgument("cannot read stdin");
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return InvalidArgument("cannot read " + path + ": " + std::strerror(errno));
    text = ReadLimited(in);
    if (in.bad()) return InvalidArgument("cannot read " + path);
  }
  if (text.size() > kMaxConfigurationBytes) {
    return InvalidArgument(source + " is larger than 1 MiB, more than the server accepts");
  }
  bool json = EndsWith(path, ".json");
  if (path == "-") {
    size_t first = text.find_first_not_of(" \t\r\n");
    json = first != std::string::npos && text[first] == '{';
  }
  return ParseConfigurationText(std::move(text), json, source);
}

Result<ConfigurationFile> ParseConfigurationText(std::string text, bool json,
                                                 std::string_view source) {
  ConfigurationFile file;
  if (json) {
    boost::system::error_code ec;
    boost::json::value value = boost::json::parse(text, ec);
    if (ec) return InvalidArgument(std::string(source) + " is not valid JSON: " + ec.message());
    if (!value.is_object()) {
      return InvalidArgument(std::string(source) + " must hold a JSON object (a configuration)");
    }
    if (const boost::json::value* type = Field(value, "type"); type && !type->is_null()) {
      if (!type->is_string()) {
        return InvalidArgument(std::string(source) + ": `type` must be a string");
      }
      file.type = type->as_string();
    }
    file.content_type = "application/json";
  } else {
    try {
      const YAML::Node root = YAML::Load(text);
      if (!root.IsMap()) {
        return InvalidArgument(std::string(source) + " must hold a YAML mapping (a configuration)");
      }
      if (const YAML::Node type = root["type"]; type && !type.IsNull()) {
        if (!type.IsScalar()) {
          return InvalidArgument(std::string(source) + ": `type` must be a string");
        }
        file.type = type.Scalar();
      }
    } catch (const YAML::Exception& e) {
      return InvalidArgument(std::string(source) + " is not valid YAML (line " +
                             std::to_string(e.mark.line + 1) + ": " + e.msg + ")");
    }
    file.content_type = "application/yaml";
  }
  file.text = std::move(text);
  return file;
}

}  // namespace fleetwatch::cli
