#include "server/users.h"

#include "model/names.h"
#include "util/ids.h"

namespace fleetwatch::server {
namespace {

bool IsAcceptableToken(std::string_view token) {
  if (token.size() < 16 || token.size() > 256) return false;
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace

Result<std::optional<std::string>> UserService::Bootstrap(std::optional<std::string> admin_token) {
  if (admin_token && !IsAcceptableToken(*admin_token)) {
    return InvalidArgument(
        "FLEETWATCH_SERVER_ADMIN_TOKEN must be 16 to 256 printable ASCII characters without "
        "spaces");
  }
  std::string token = admin_token ? *admin_token : NewToken();
  TimeMicros now = clock_.Now();
  model::User admin{NewId(), "admin", model::GlobalRole::kAdmin, now};
  model::Project main{NewId(), "main", admin.id, now};
  FW_ASSIGN_OR_RETURN(bool created, store_.Bootstrap(admin, Sha256Hex(token), main));
  if (!created) return std::optional<std::string>();
  return std::optional<std::string>(std::move(token));
}

Result<NewUser> UserService::CreateUser(const model::User& caller, std::string_view name,
                                        model::GlobalRole role) {
  if (caller.global_role != model::GlobalRole::kAdmin) {
    return PermissionDenied("only global admins can create users");
  }
  FW_RETURN_IF_ERROR(model::ValidateName("user name", name));
  NewUser created{{NewId(), std::string(name), role, clock_.Now()}, NewToken()};
  Status s = store_.CreateUser(created.user, Sha256Hex(created.token));
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExists("user '" + std::string(name) + "' already exists");
  }
  FW_RETURN_IF_ERROR(s);
  return created;
}

Result<std::vector<model::User>> UserService::ListUsers(const model::User& caller) {
  if (caller.global_role != model::GlobalRole::kAdmin) {
    return PermissionDenied("only global admins can list users");
  }
  return store_.ListUsers();
}

}  // namespace fleetwatch::server
