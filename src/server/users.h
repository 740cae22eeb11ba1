#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// A user just created, with the only copy of their token in plain text.
struct NewUser {
  model::User user;
  std::string token;
};

// Users, tokens and the first start. Thread-safe.
class UserService {
 public:
  UserService(store::Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // On the very first start creates the `admin` user (global admin) and project `main`. The
  // admin's token is `admin_token` when given (it must be 16..256 printable ASCII characters
  // without spaces) or a new random one. Returns the token when the bootstrap happened now,
  // nullopt when the store was already set up.
  Result<std::optional<std::string>> Bootstrap(std::optional<std::string> admin_token);

  // Global admins only (PermissionDenied otherwise).
  Result<NewUser> CreateUser(const model::User& caller, std::string_view name,
                             model::GlobalRole role);
  Result<std::vector<model::User>> ListUsers(const model::User& caller);

  // Gives user `name` a new random token and returns it (the only copy); the old token stops
  // working at once. A user may refresh their own token; global admins anyone's
  // (PermissionDenied otherwise, NotFound for an unknown user).
  Result<NewUser> RefreshToken(const model::User& caller, std::string_view name);

  // Global admins only. Deletes the named users at once (all or none; see store.h for what stays).
  // InvalidArgument for an empty list, a duplicate or the caller's own name; NotFound for an
  // unknown user; FailedPrecondition when no global admin would remain.
  Status DeleteUsers(const model::User& caller, const std::vector<std::string>& names);

  // Global admins only. Returns the user with the new role. NotFound for an unknown user;
  // FailedPrecondition when it would demote the last global admin.
  Result<model::User> SetGlobalRole(const model::User& caller, std::string_view name,
                                    model::GlobalRole role);

 private:
  store::Store& store_;
  const Clock& clock_;
};

}  // namespace fleetwatch::server
