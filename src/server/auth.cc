#include "server/auth.h"

#include <string>

#include "http/bearer.h"
#include "model/names.h"
#include "util/ids.h"

namespace fleetwatch::server {

Result<model::User> AuthService::Authenticate(std::string_view authorization) const {
  if (authorization.empty()) {
    return Unauthenticated("missing Authorization header: send 'Authorization: Bearer <token>'");
  }
  std::optional<std::string_view> token = http::ParseBearer(authorization);
  if (!token) return Unauthenticated("the Authorization header must be 'Bearer <token>'");
  if (token->size() > 512) return Unauthenticated("invalid token");
  Result<model::User> user = store_.GetUserByTokenHash(Sha256Hex(*token));
  if (!user.ok()) {
    if (user.status().code() == StatusCode::kNotFound) return Unauthenticated("invalid token");
    return user.status();
  }
  return user;
}

Result<ProjectAccess> AuthService::AccessProject(const model::User& user,
                                                 std::string_view project_name) const {
  if (!model::IsValidName(project_name)) return NotFound("project not found");
  Result<model::Project> project = store_.GetProject(project_name);
  if (!project.ok()) {
    if (project.status().code() == StatusCode::kNotFound) {
      return NotFound("project '" + std::string(project_name) + "' not found");
    }
    return project.status();
  }
  if (user.global_role == model::GlobalRole::kAdmin) {
    return ProjectAccess{std::move(project).value(), model::ProjectRole::kAdmin, user};
  }
  FW_ASSIGN_OR_RETURN(std::optional<model::ProjectRole> role,
                      store_.GetMemberRole(project->id, user.id));
  if (!role) {
    return PermissionDenied("user '" + user.name + "' is not a member of project '" +
                            std::string(project_name) + "'");
  }
  return ProjectAccess{std::move(project).value(), *role, user};
}

}  // namespace fleetwatch::server
