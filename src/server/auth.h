#pragma once

#include <string_view>

#include "model/entities.h"
#include "store/store.h"
#include "util/status.h"

namespace fleetwatch::server {

// What a caller may do inside one project.
struct ProjectAccess {
  model::Project project;
  model::ProjectRole role = model::ProjectRole::kUser;  // global admins act as project admins
  model::User user = {};                                // the caller

  bool CanManage() const { return role != model::ProjectRole::kUser; }  // fleets, others' runs
  bool IsAdmin() const { return role == model::ProjectRole::kAdmin; }   // members
};

// Turns bearer tokens into users and users into project access. Thread-safe (the store is).
class AuthService {
 public:
  explicit AuthService(store::Store& store) : store_(store) {}

  // `authorization` is the raw header value. Unauthenticated when it is missing, not
  // "Bearer <token>", or the token is unknown.
  Result<model::User> Authenticate(std::string_view authorization) const;

  // NotFound for an unknown project; PermissionDenied when `user` is neither a member nor a
  // global admin. The message never reveals more than the caller could know.
  Result<ProjectAccess> AccessProject(const model::User& user, std::string_view project_name) const;

 private:
  store::Store& store_;
};

}  // namespace fleetwatch::server
