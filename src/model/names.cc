#include "model/names.h"

#include <string>

namespace fleetwatch::model {

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 41) return false;
  if (name[0] < 'a' || name[0] > 'z') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

bool IsProtocolId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool IsValidJobId(std::string_view id) { return IsProtocolId(id); }

bool IsValidAgentId(std::string_view id) { return IsProtocolId(id); }

Status ValidateName(std::string_view what, std::string_view name) {
  if (IsValidName(name)) return Status::Ok();
  if (name.empty()) return InvalidArgument(std::string(what) + " must not be empty");
  if (name.size() > 41) {
    return InvalidArgument(std::string(what) + " is too long (" + std::to_string(name.size()) +
                           " characters; at most 41)");
  }
  return InvalidArgument(std::string(what) +
                         " must start with a lowercase letter and contain only lowercase letters, "
                         "digits and '-' (pattern ^[a-z][a-z0-9-]{0,40}$)");
}

}  // namespace fleetwatch::model
