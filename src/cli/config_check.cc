#include "cli/config_check.h"

#include <boost/json.hpp>
#include <string>

#include "cli/api_client.h"

namespace fleetwatch::cli {
namespace {

std::string Which(bool given, const std::string& flag, const std::string& name) {
  return given ? flag : "the saved " + name;
}

}  // namespace

Status CheckServerSettings(const ClientSettings& settings, const GivenSettings& given) {
  FW_ASSIGN_OR_RETURN(ApiClient api, ApiClient::Create(settings));
  const std::string url_source = " (" + Which(given.url, "--url", "url") + ")";
  Result<boost::json::value> me = api.Get("/api/users/me");
  if (!me.ok()) {
    const Status& error = me.status();
    switch (error.code()) {
      case StatusCode::kUnauthenticated:
        return FailedPrecondition("the server at " + settings.url + " rejected the token (" +
                                  Which(given.token, "--token", "token") + ")");
      case StatusCode::kUnavailable:
        // "cannot reach the server at U: why", or a server that failed to answer.
        return FailedPrecondition(error.message() + url_source);
      default:
        return FailedPrecondition(settings.url + url_source +
                                  " does not answer as a fleetwatch server: " + error.message());
    }
  }
  if (!me->is_object() || !me->as_object().contains("name")) {
    return FailedPrecondition(settings.url + url_source +
                              " does not answer as a fleetwatch server (GET /api/users/me gave "
                              "no user)");
  }
  if (settings.project.empty()) return Status::Ok();
  Result<boost::json::value> project = api.Get("/api/projects/" + PathSegment(settings.project));
  if (!project.ok()) {
    if (project.status().code() == StatusCode::kUnavailable) {
      return FailedPrecondition(project.status().message() + url_source);
    }
    return FailedPrecondition("project " + settings.project + " (" +
                              Which(given.project, "--project", "project") +
                              "): " + project.status().message());
  }
  return Status::Ok();
}

}  // namespace fleetwatch::cli
