#include "server/users.h"

#include <algorithm>

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

Result<NewUser> UserService::RefreshToken(const model::User& caller, std::string_view name) {
  if (caller.name != name && caller.global_role != model::GlobalRole::kAdmin) {
    return PermissionDenied("only global admins can refresh another user's token");
  }
  FW_ASSIGN_OR_RETURN(model::User user, store_.GetUserByName(name));
  NewUser refreshed{std::move(user), NewToken()};
  FW_RETURN_IF_ERROR(store_.SetUserTokenHash(refreshed.user.id, Sha256Hex(refreshed.token)));
  return refreshed;
}

Status UserService::DeleteUsers(const model::User& caller, const std::vector<std::string>& names) {
  if (caller.global_role != model::GlobalRole::kAdmin) {
    return PermissionDenied("only global admins can delete users");
  }
  if (names.empty()) return InvalidArgument("name at least one user to delete");
  for (size_t i = 0; i < names.size(); ++i) {
    FW_RETURN_IF_ERROR(model::ValidateName("user name", names[i]));
    if (names[i] == caller.name) return InvalidArgument("you cannot delete yourself");
    if (std::find(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(i), names[i]) !=
        names.begin() + static_cast<std::ptrdiff_t>(i)) {
      return InvalidArgument("user '" + names[i] + "' is named twice");
    }
  }
  return store_.DeleteUsers(names);
}

Result<model::User> UserService::SetGlobalRole(const model::User& caller, std::string_view name,
                                               model::GlobalRole role) {
  if (caller.global_role != model::GlobalRole::kAdmin) {
    return PermissionDenied("only global admins can change global roles");
  }
  FW_ASSIGN_OR_RETURN(model::User user, store_.GetUserByName(name));
  Status set = store_.SetUserGlobalRole(user.id, role);
  if (set.code() == StatusCode::kFailedPrecondition) {
    return FailedPrecondition("user '" + user.name +
                              "' is the last global admin: make another user an admin first");
  }
  FW_RETURN_IF_ERROR(set);
  user.global_role = role;
  return user;
}

}  // namespace fleetwatch::server
