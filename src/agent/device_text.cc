#include "agent/device_text.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

#include "http/message.h"

namespace fleetwatch::agent {

std::string DeviceText(std::string_view raw) {
  std::string text(raw);
  text.erase(std::remove(text.begin(), text.end(), '\0'), text.end());
  // JsonEscape already maps invalid UTF-8 to U+FFFD; parsing its output back gives the text.
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse("\"" + http::JsonEscape(text) + "\"", ec);
  if (ec || !value.is_string()) return {};
  return std::string(value.as_string());
}

}  // namespace fleetwatch::agent
