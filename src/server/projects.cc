#include "server/projects.h"

#include <algorithm>
#include <string>

#include "model/names.h"
#include "util/ids.h"

namespace fleetwatch::server {

Result<ProjectWithMembers> ProjectService::Describe(const model::Project& project) {
  FW_ASSIGN_OR_RETURN(std::vector<model::Member> members, store_.ListMembers(project.id));
  std::string owner_name;
  for (const auto& m : members) {
    if (m.user_id == project.owner_id) owner_name = m.user_name;
  }
  return ProjectWithMembers{project, std::move(owner_name), std::move(members)};
}

Result<ProjectWithMembers> ProjectService::Create(const model::User& caller,
                                                  std::string_view name) {
  FW_RETURN_IF_ERROR(model::ValidateName("project name", name));
  model::Project project{NewId(), std::string(name), caller.id, clock_.Now()};
  Status s = store_.CreateProject(project);
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExists("project '" + std::string(name) + "' already exists");
  }
  FW_RETURN_IF_ERROR(s);
  return Describe(project);
}

Result<std::vector<ProjectWithMembers>> ProjectService::List(const model::User& caller) {
  std::vector<model::Project> projects;
  if (caller.global_role == model::GlobalRole::kAdmin) {
    FW_ASSIGN_OR_RETURN(projects, store_.ListProjects());
  } else {
    FW_ASSIGN_OR_RETURN(projects, store_.ListProjectsOfUser(caller.id));
  }
  std::vector<ProjectWithMembers> out;
  for (const auto& p : projects) {
    FW_ASSIGN_OR_RETURN(ProjectWithMembers d, Describe(p));
    out.push_back(std::move(d));
  }
  return out;
}

Result<ProjectWithMembers> ProjectService::Get(const model::User& caller, std::string_view name) {
  FW_ASSIGN_OR_RETURN(ProjectAccess access, auth_.AccessProject(caller, name));
  return Describe(access.project);
}

Result<ProjectWithMembers> ProjectService::SetMember(const model::User& caller,
                                                     std::string_view project,
                                                     std::string_view user_name,
                                                     model::ProjectRole role) {
  FW_ASSIGN_OR_RETURN(ProjectAccess access, auth_.AccessProject(caller, project));
  if (!access.IsAdmin()) return PermissionDenied("only project admins can manage members");
  FW_RETURN_IF_ERROR(model::ValidateName("user name", user_name));
  Result<model::User> user = store_.GetUserByName(user_name);
  if (!user.ok() && user.status().code() == StatusCode::kNotFound) {
    return NotFound("user '" + std::string(user_name) + "' not found");
  }
  FW_RETURN_IF_ERROR(user.status());
  if (role != model::ProjectRole::kAdmin) {
    // Demoting the last admin would leave nobody to manage the project.
    FW_ASSIGN_OR_RETURN(std::vector<model::Member> members, store_.ListMembers(access.project.id));
    bool other_admin = std::any_of(members.begin(), members.end(), [&](const model::Member& m) {
      return m.role == model::ProjectRole::kAdmin && m.user_id != user->id;
    });
    if (!other_admin) {
      return FailedPrecondition("project '" + access.project.name +
                                "' must keep at least one admin");
    }
  }
  FW_RETURN_IF_ERROR(store_.SetMember(access.project.id, user->id, role));
  return Describe(access.project);
}

Result<ProjectWithMembers> ProjectService::RemoveMember(const model::User& caller,
                                                        std::string_view project,
                                                        std::string_view user_name) {
  FW_ASSIGN_OR_RETURN(ProjectAccess access, auth_.AccessProject(caller, project));
  if (!access.IsAdmin()) return PermissionDenied("only project admins can manage members");
  FW_ASSIGN_OR_RETURN(std::vector<model::Member> members, store_.ListMembers(access.project.id));
  auto it = std::find_if(members.begin(), members.end(),
                         [&](const model::Member& m) { return m.user_name == user_name; });
  if (it == members.end()) {
    return NotFound("'" + std::string(model::IsValidName(user_name) ? user_name : "user") +
                    "' is not a member of project '" + access.project.name + "'");
  }
  bool other_admin = std::any_of(members.begin(), members.end(), [&](const model::Member& m) {
    return m.role == model::ProjectRole::kAdmin && m.user_id != it->user_id;
  });
  if (!other_admin) {
    return FailedPrecondition("project '" + access.project.name + "' must keep at least one admin");
  }
  FW_RETURN_IF_ERROR(store_.RemoveMember(access.project.id, it->user_id));
  return Describe(access.project);
}

}  // namespace fleetwatch::server
