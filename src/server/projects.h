#pragma once

#include <string_view>
#include <vector>

#include "model/entities.h"
#include "server/auth.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

struct ProjectWithMembers {
  model::Project project;
  std::string owner_name;
  std::vector<model::Member> members;
};

// Projects and their members. Thread-safe.
class ProjectService {
 public:
  ProjectService(store::Store& store, const AuthService& auth, const Clock& clock)
      : store_(store), auth_(auth), clock_(clock) {}

  // Any authenticated user may create a project; they become its admin.
  Result<ProjectWithMembers> Create(const model::User& caller, std::string_view name);
  // The caller's projects; every project for a global admin. By name.
  Result<std::vector<ProjectWithMembers>> List(const model::User& caller);
  Result<ProjectWithMembers> Get(const model::User& caller, std::string_view name);
  // Project admins only. NotFound for an unknown user.
  Result<ProjectWithMembers> SetMember(const model::User& caller, std::string_view project,
                                       std::string_view user_name, model::ProjectRole role);
  // Project admins only. FailedPrecondition when it would leave the project without an admin.
  Result<ProjectWithMembers> RemoveMember(const model::User& caller, std::string_view project,
                                          std::string_view user_name);

 private:
  Result<ProjectWithMembers> Describe(const model::Project& project);

  store::Store& store_;
  const AuthService& auth_;
  const Clock& clock_;
};

}  // namespace fleetwatch::server
