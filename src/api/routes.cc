#include "api/routes.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <string>

#include "api/json_mapping.h"
#include "api/metrics_route.h"
#include "http/deferred.h"
#include "model/json_text.h"
#include "model/names.h"
#include "util/build_info.h"
#include "util/time_format.h"

namespace fleetwatch::api {
namespace json = boost::json;
namespace {

HostHealth HealthOf(const Services& s) {
  return s.gpu_health != nullptr ? s.gpu_health->AllHealth() : HostHealth{};
}

http::Response JsonResponse(const json::value& value, int status = 200) {
  http::Response r;
  r.status = status;
  r.body = model::SerializeJson(value);
  return r;
}

json::value Items(json::array items) { return json::object{{"items", std::move(items)}}; }

// Wraps a handler that needs the authenticated caller.
using UserHandler = std::function<http::Response(http::Request&, const model::User&)>;
http::Handler Authed(const Services& s, UserHandler handler) {
  return [&s, handler = std::move(handler)](http::Request& request) {
    Result<model::User> user = s.auth.Authenticate(request.Header("authorization"));
    if (!user.ok()) return ErrorResponse(user.status());
    return handler(request, *user);
  };
}

// Wraps a handler of /api/project/{project}/...: authenticates and checks membership.
using ProjectHandler =
    std::function<http::Response(http::Request&, const model::User&, const server::ProjectAccess&)>;
http::Handler InProject(const Services& s, ProjectHandler handler) {
  return Authed(
      s, [&s, handler = std::move(handler)](http::Request& request, const model::User& user) {
        Result<server::ProjectAccess> access =
            s.auth.AccessProject(user, request.path_params.at("project"));
        if (!access.ok()) return ErrorResponse(access.status());
        return handler(request, user, *access);
      });
}

// The format of a configuration body from its Content-Type. Plain text and no type are read as
// YAML (JSON is YAML too, but JSON bodies should say so to get JSON's error messages).
Result<model::ConfigFormat> ConfigFormatOf(const http::Request& request) {
  std::string type(request.Header("content-type"));
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (type == "application/json") return model::ConfigFormat::kJson;
  if (type.empty() || type == "application/yaml" || type == "application/x-yaml" ||
      type == "text/yaml" || type == "text/x-yaml" || type == "text/plain") {
    return model::ConfigFormat::kYaml;
  }
  return Status(StatusCode::kInvalidArgument,
                "unsupported Content-Type: send the configuration as application/yaml or "
                "application/json");
}

// A log read's answer: the chunk as text/plain with its X-Log-Size and the job's X-Job-Status,
// or the error (with Retry-After when the job's host was busy).
http::Response LogResponse(server::LiveLogResult read, const std::string& job_status) {
  if (!read.chunk.ok()) {
    http::Response error = ErrorResponse(read.chunk.status());
    if (read.retry_after_seconds) {
      error.headers.emplace_back("Retry-After", std::to_string(*read.retry_after_seconds));
    }
    return error;
  }
  http::Response r;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(read.chunk->data);
  r.headers.emplace_back("X-Log-Size", std::to_string(read.chunk->size));
  r.headers.emplace_back("X-Job-Status", job_status);
  return r;
}

Result<int> QueryInt(const http::Request& request, const std::string& key, int fallback, int min,
                     int max) {
  auto it = request.query.find(key);
  if (it == request.query.end()) return fallback;
  int value = 0;
  const std::string& text = it->second;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) {
    return InvalidArgument("query parameter '" + key + "' must be an integer from " +
                           std::to_string(min) + " to " + std::to_string(max));
  }
  return value;
}

Result<std::vector<model::RunStatus>> QueryStatuses(const http::Request& request) {
  std::vector<model::RunStatus> out;
  auto it = request.query.find("status");
  if (it == request.query.end() || it->second.empty()) return out;
  std::string_view rest = it->second;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    std::optional<model::RunStatus> status = model::Parse<model::RunStatus>(item);
    if (!status) {
      return InvalidArgument(
          "query parameter 'status' must be a comma-separated list of run statuses (pending, "
          "submitted, provisioning, running, terminating, terminated, failed, done)");
    }
    out.push_back(*status);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return out;
}

http::Response Created(const json::value& value) { return JsonResponse(value, 201); }

// A user with their new token: the only time the token is shown.
json::value UserWithTokenToJson(const server::NewUser& user) {
  json::value out = UserToJson(user.user);
  out.as_object()["token"] = user.token;
  return out;
}

Result<model::GlobalRole> GetGlobalRole(const json::object& body) {
  FW_ASSIGN_OR_RETURN(std::string text, GetString(body, "global_role"));
  std::optional<model::GlobalRole> role = model::Parse<model::GlobalRole>(text);
  if (!role) return InvalidArgument("'global_role' must be admin or user");
  return *role;
}

// A member that must be a list of strings.
Result<std::vector<std::string>> GetStringList(const json::object& body, std::string_view key) {
  const json::value* list = body.if_contains(key);
  Status bad = InvalidArgument("'" + std::string(key) + "' must be a list of strings");
  if (list == nullptr || !list->is_array()) return bad;
  std::vector<std::string> out;
  for (const json::value& item : list->get_array()) {
    if (!item.is_string()) return bad;
    out.emplace_back(item.get_string());
  }
  return out;
}

// No body, or an empty JSON object.
bool IsEmptyBody(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
  Result<json::object> object = ParseJsonObject(body, {});
  return object.ok() && object->empty();
}

// Adds each run's idle GPU share and its cost ("gpu_idle_ratio": null while its jobs have held no
// GPU; "idle_cost": USD) to the runs' JSON objects (same order as `runs`).
Status AddGpuIdleFields(const Services& s, const std::vector<model::Run>& runs,
                        std::vector<json::value*> objects) {
  if (s.waste == nullptr) return Status::Ok();
  std::vector<std::string> ids;
  ids.reserve(runs.size());
  for (const model::Run& r : runs) ids.push_back(r.id);
  FW_ASSIGN_OR_RETURN(auto times, s.waste->RunTimes(ids));
  for (size_t k = 0; k < runs.size() && k < objects.size(); ++k) {
    json::object& o = objects[k]->as_object();
    auto it = times.find(runs[k].id);
    const bool held = it != times.end() && it->second.held_seconds > 0;
    o["gpu_idle_ratio"] =
        held ? json::value(std::clamp(it->second.idle_seconds / it->second.held_seconds, 0.0, 1.0))
             : json::value(nullptr);
    o["idle_cost"] = it != times.end() ? it->second.idle_cost_dollars : 0.0;
  }
  return Status::Ok();
}

// A waste report's JSON: its grouping, its start, one item per group and their total.
json::value WasteToJson(const std::vector<server::WasteRow>& rows, std::string_view by,
                        TimeMicros since) {
  auto item = [](const server::WasteRow& r) {
    json::object o{
        {"held_seconds", r.held_seconds},
        {"idle_seconds", r.idle_seconds},
        {"idle_ratio", r.held_seconds > 0
                           ? json::value(std::clamp(r.idle_seconds / r.held_seconds, 0.0, 1.0))
                           : json::value(nullptr)},
        {"idle_cost", r.idle_cost_dollars}};
    return o;
  };
  json::array items;
  server::WasteRow total;
  for (const server::WasteRow& r : rows) {
    json::object o{{"project_name", r.project_name}};
    if (by != "project") o["user_name"] = r.user_name;
    if (by == "run") {
      o["run_name"] = r.run_name;
      o["run_id"] = r.run_id;
    }
    for (auto& [k, v] : item(r)) o[k] = v;
    items.push_back(std::move(o));
    total.held_seconds += r.held_seconds;
    total.idle_seconds += r.idle_seconds;
    total.idle_cost_dollars += r.idle_cost_dollars;
  }
  return json::object{{"by", by},
                      {"since", FormatTimestamp(since)},
                      {"items", std::move(items)},
                      {"total", item(total)}};
}

// The right-sizing notes section of a waste report: per project, each note's jobs, runs, GPU time
// held, cost and a few example runs.
json::array NotesToJson(const std::vector<server::ProjectNotes>& projects) {
  json::array out;
  for (const server::ProjectNotes& p : projects) {
    json::array items;
    for (const server::NoteTotal& n : p.notes) {
      items.push_back(json::object{
          {"rule", n.rule},
          {"jobs", n.jobs},
          {"runs", n.runs},
          {"held_seconds", n.held_seconds},
          {"cost", n.cost_known ? json::value(n.cost_dollars) : json::value(nullptr)},
          {"example_runs", json::array(n.example_runs.begin(), n.example_runs.end())}});
    }
    out.push_back(json::object{
        {"project_name", p.project_name}, {"jobs", p.jobs}, {"items", std::move(items)}});
  }
  return out;
}

// The waste report a request asks for (?since=7d&by=project), of `project` or of all projects.
http::Response WasteResponse(const Services& s, const http::Request& req,
                             const std::optional<std::string>& project) {
  if (s.waste == nullptr) return ErrorResponse(NotFound("waste reports are not available"));
  auto since_it = req.query.find("since");
  Result<TimeMicros> since = server::ParseWasteSince(
      since_it != req.query.end() ? std::string_view(since_it->second) : std::string_view("7d"));
  if (!since.ok()) return ErrorResponse(since.status());
  auto by_it = req.query.find("by");
  const std::string by = by_it != req.query.end() ? by_it->second : std::string("project");
  Result<server::WasteGrouping> grouping = server::ParseWasteGrouping(by);
  if (!grouping.ok()) return ErrorResponse(grouping.status());
  auto rows = s.waste->Report(project, *since, *grouping);
  if (!rows.ok()) return ErrorResponse(rows.status());
  auto notes = s.waste->Notes(project, *since);
  if (!notes.ok()) return ErrorResponse(notes.status());
  json::value report = WasteToJson(*rows, by, s.clock.Now() - *since);
  report.as_object()["notes"] = NotesToJson(*notes);
  return JsonResponse(report);
}

void AddUserRoutes(http::Router& router, const Services& s) {
  router.Add("GET", "/api/server/info", Authed(s, [&s](http::Request&, const model::User&) {
               // Replicas as of this replica's last tick (docs/scale-out.md).
               const server::ReplicaView replica = s.controller.Replica();
               return JsonResponse(json::object{{"version", BuildVersion()},
                                                {"revision", BuildRevision()},
                                                {"server_time", FormatTimestamp(s.clock.Now())},
                                                {"database", s.database},
                                                {"replicas", replica.live_replicas},
                                                {"replica_id", replica.id},
                                                {"leased_instances", replica.leased}});
             }));
  router.Add("GET", "/api/users/me", Authed(s, [](http::Request&, const model::User& user) {
               return JsonResponse(UserToJson(user));
             }));
  router.Add("GET", "/api/users", Authed(s, [&s](http::Request&, const model::User& user) {
               Result<std::vector<model::User>> users = s.users.ListUsers(user);
               if (!users.ok()) return ErrorResponse(users.status());
               json::array items;
               for (const auto& u : *users) items.push_back(UserToJson(u));
               return JsonResponse(Items(std::move(items)));
             }));
  router.Add("POST", "/api/users", Authed(s, [&s](http::Request& req, const model::User& user) {
               if (user.global_role != model::GlobalRole::kAdmin) {
                 return ErrorResponse(PermissionDenied("only global admins can create users"));
               }
               Result<json::object> body = ParseJsonObject(req.body, {"name", "global_role"});
               if (!body.ok()) return ErrorResponse(body.status());
               Result<std::string> name = GetString(*body, "name");
               if (!name.ok()) return ErrorResponse(name.status());
               model::GlobalRole role = model::GlobalRole::kUser;
               if (body->contains("global_role")) {
                 Result<model::GlobalRole> parsed = GetGlobalRole(*body);
                 if (!parsed.ok()) return ErrorResponse(parsed.status());
                 role = *parsed;
               }
               Result<server::NewUser> created = s.users.CreateUser(user, *name, role);
               if (!created.ok()) return ErrorResponse(created.status());
               return Created(UserWithTokenToJson(*created));
             }));
  // Token lifecycle and deletion, in dstack's shapes where it has them (POST /api/users/delete
  // {"users": [...]}) and in ours otherwise.
  auto refresh = [&s](const http::Request& req, const model::User& caller, std::string_view name) {
    if (!IsEmptyBody(req.body)) return ErrorResponse(InvalidArgument("this request takes no body"));
    Result<server::NewUser> refreshed = s.users.RefreshToken(caller, name);
    if (!refreshed.ok()) return ErrorResponse(refreshed.status());
    return JsonResponse(UserWithTokenToJson(*refreshed));
  };
  router.Add("POST", "/api/users/me/refresh_token",
             Authed(s, [refresh](http::Request& req, const model::User& user) {
               return refresh(req, user, user.name);
             }));
  router.Add("POST", "/api/users/{user}/refresh_token",
             Authed(s, [refresh](http::Request& req, const model::User& user) {
               return refresh(req, user, req.path_params.at("user"));
             }));
  router.Add("POST", "/api/users/{user}/role",
             Authed(s, [&s](http::Request& req, const model::User& user) {
               Result<json::object> body = ParseJsonObject(req.body, {"global_role"});
               if (!body.ok()) return ErrorResponse(body.status());
               Result<model::GlobalRole> role = GetGlobalRole(*body);
               if (!role.ok()) return ErrorResponse(role.status());
               auto changed = s.users.SetGlobalRole(user, req.path_params.at("user"), *role);
               if (!changed.ok()) return ErrorResponse(changed.status());
               return JsonResponse(UserToJson(*changed));
             }));
  router.Add("DELETE", "/api/users/{user}",
             Authed(s, [&s](http::Request& req, const model::User& user) {
               Status deleted = s.users.DeleteUsers(user, {req.path_params.at("user")});
               if (!deleted.ok()) return ErrorResponse(deleted);
               return JsonResponse(json::object());
             }));
  router.Add("POST", "/api/users/delete",
             Authed(s, [&s](http::Request& req, const model::User& user) {
               Result<json::object> body = ParseJsonObject(req.body, {"users"});
               if (!body.ok()) return ErrorResponse(body.status());
               Result<std::vector<std::string>> names = GetStringList(*body, "users");
               if (!names.ok()) return ErrorResponse(names.status());
               Status deleted = s.users.DeleteUsers(user, *names);
               if (!deleted.ok()) return ErrorResponse(deleted);
               return JsonResponse(json::object());
             }));
}

void AddProjectRoutes(http::Router& router, const Services& s) {
  router.Add("GET", "/api/projects", Authed(s, [&s](http::Request&, const model::User& user) {
               auto projects = s.projects.List(user);
               if (!projects.ok()) return ErrorResponse(projects.status());
               json::array items;
               for (const auto& p : *projects) items.push_back(ProjectToJson(p));
               return JsonResponse(Items(std::move(items)));
             }));
  router.Add("POST", "/api/projects", Authed(s, [&s](http::Request& req, const model::User& user) {
               Result<json::object> body = ParseJsonObject(req.body, {"name"});
               if (!body.ok()) return ErrorResponse(body.status());
               Result<std::string> name = GetString(*body, "name");
               if (!name.ok()) return ErrorResponse(name.status());
               auto project = s.projects.Create(user, *name);
               if (!project.ok()) return ErrorResponse(project.status());
               return Created(ProjectToJson(*project));
             }));
  router.Add("GET", "/api/projects/{project}",
             Authed(s, [&s](http::Request& req, const model::User& user) {
               auto project = s.projects.Get(user, req.path_params.at("project"));
               if (!project.ok()) return ErrorResponse(project.status());
               return JsonResponse(ProjectToJson(*project));
             }));
  router.Add(
      "POST", "/api/projects/{project}/members",
      Authed(s, [&s](http::Request& req, const model::User& user) {
        Result<json::object> body = ParseJsonObject(req.body, {"user_name", "project_role"});
        if (!body.ok()) return ErrorResponse(body.status());
        Result<std::string> name = GetString(*body, "user_name");
        if (!name.ok()) return ErrorResponse(name.status());
        Result<std::string> role_text = GetString(*body, "project_role");
        if (!role_text.ok()) return ErrorResponse(role_text.status());
        std::optional<model::ProjectRole> role = model::Parse<model::ProjectRole>(*role_text);
        if (!role) {
          return ErrorResponse(InvalidArgument("'project_role' must be admin, manager or user"));
        }
        auto project = s.projects.SetMember(user, req.path_params.at("project"), *name, *role);
        if (!project.ok()) return ErrorResponse(project.status());
        return JsonResponse(ProjectToJson(*project));
      }));
  router.Add("DELETE", "/api/projects/{project}/members/{user}",
             Authed(s, [&s](http::Request& req, const model::User& user) {
               auto project = s.projects.RemoveMember(user, req.path_params.at("project"),
                                                      req.path_params.at("user"));
               if (!project.ok()) return ErrorResponse(project.status());
               return JsonResponse(ProjectToJson(*project));
             }));
}

void AddFleetRoutes(http::Router& router, const Services& s) {
  router.Add(
      "GET", "/api/project/{project}/fleets",
      InProject(s, [&s](http::Request&, const model::User&, const server::ProjectAccess& access) {
        auto fleets = s.fleets.List(access);
        if (!fleets.ok()) return ErrorResponse(fleets.status());
        json::array items;
        const HostProblems problems = s.controller.HostProblems();
        const HostHealth health = HealthOf(s);
        for (const auto& f : *fleets) items.push_back(FleetToJson(f, problems, health));
        return JsonResponse(Items(std::move(items)));
      }));
  router.Add(
      "POST", "/api/project/{project}/fleets",
      InProject(s, [&s](http::Request& req, const model::User&,
                        const server::ProjectAccess& access) {
        if (!access.CanManage()) {
          return ErrorResponse(PermissionDenied("only project admins and managers can add fleets"));
        }
        Result<model::ConfigFormat> format = ConfigFormatOf(req);
        if (!format.ok()) {
          http::Response r = ErrorResponse(format.status());
          r.status = 415;
          return r;
        }
        auto fleet = s.fleets.Apply(access, req.body, *format);
        if (!fleet.ok()) return ErrorResponse(fleet.status());
        return Created(FleetToJson(*fleet));
      }));
  router.Add("GET", "/api/project/{project}/fleets/{fleet}",
             InProject(s, [&s](http::Request& req, const model::User&,
                               const server::ProjectAccess& access) {
               auto fleet = s.fleets.Get(access, req.path_params.at("fleet"));
               if (!fleet.ok()) return ErrorResponse(fleet.status());
               return JsonResponse(FleetToJson(*fleet, s.controller.HostProblems(), HealthOf(s)));
             }));
  router.Add("DELETE", "/api/project/{project}/fleets/{fleet}",
             InProject(s, [&s](http::Request& req, const model::User&,
                               const server::ProjectAccess& access) {
               Status deleted = s.fleets.Delete(access, req.path_params.at("fleet"));
               if (!deleted.ok()) return ErrorResponse(deleted);
               return JsonResponse(json::object());
             }));
  router.Add(
      "GET", "/api/project/{project}/instances",
      InProject(s, [&s](http::Request&, const model::User&, const server::ProjectAccess& access) {
        auto instances = s.fleets.ListInstances(access);
        if (!instances.ok()) return ErrorResponse(instances.status());
        json::array items;
        const HostProblems problems = s.controller.HostProblems();
        const HostHealth health = HealthOf(s);
        for (const auto& i : *instances) items.push_back(InstanceToJson(i, problems, health));
        return JsonResponse(Items(std::move(items)));
      }));
}

void AddRunRoutes(http::Router& router, const Services& s) {
  router.Add("GET", "/api/project/{project}/runs",
             InProject(s, [&s](http::Request& req, const model::User&,
                               const server::ProjectAccess& access) {
               Result<std::vector<model::RunStatus>> statuses = QueryStatuses(req);
               if (!statuses.ok()) return ErrorResponse(statuses.status());
               Result<int> limit = QueryInt(req, "limit", 100, 1, 1000);
               if (!limit.ok()) return ErrorResponse(limit.status());
               // Configurations (up to 1 MiB each) only when asked for.
               Result<int> configuration = QueryInt(req, "configuration", 0, 0, 1);
               if (!configuration.ok()) return ErrorResponse(configuration.status());
               auto runs = s.runs.List(access, *statuses, *limit);
               if (!runs.ok()) return ErrorResponse(runs.status());
               json::array items;
               for (const auto& r : *runs) items.push_back(RunToJson(r, *configuration == 1));
               std::vector<json::value*> objects;
               for (json::value& v : items) objects.push_back(&v);
               if (Status idle = AddGpuIdleFields(s, *runs, objects); !idle.ok()) {
                 return ErrorResponse(idle);
               }
               return JsonResponse(Items(std::move(items)));
             }));
  router.Add("POST", "/api/project/{project}/runs",
             InProject(s, [&s](http::Request& req, const model::User& user,
                               const server::ProjectAccess& access) {
               Result<model::ConfigFormat> format = ConfigFormatOf(req);
               if (!format.ok()) {
                 http::Response r = ErrorResponse(format.status());
                 r.status = 415;
                 return r;
               }
               auto run = s.runs.Submit(access, user, req.body, *format);
               if (!run.ok()) return ErrorResponse(run.status());
               return Created(RunToJson(*run));
             }));
  router.Add("GET", "/api/project/{project}/runs/{run}",
             InProject(s, [&s](http::Request& req, const model::User&,
                               const server::ProjectAccess& access) {
               auto run = s.runs.Get(access, req.path_params.at("run"));
               if (!run.ok()) return ErrorResponse(run.status());
               json::value out = RunToJson(*run);
               if (Status idle = AddGpuIdleFields(s, {*run}, {&out}); !idle.ok()) {
                 return ErrorResponse(idle);
               }
               return JsonResponse(out);
             }));
  router.Add("DELETE", "/api/project/{project}/runs/{run}",
             InProject(s, [&s](http::Request& req, const model::User& user,
                               const server::ProjectAccess& access) {
               Status deleted = s.runs.Delete(access, user, req.path_params.at("run"));
               if (!deleted.ok()) return ErrorResponse(deleted);
               return JsonResponse(json::object());
             }));
  router.Add("POST", "/api/project/{project}/runs/{run}/stop",
             InProject(s, [&s](http::Request& req, const model::User& user,
                               const server::ProjectAccess& access) {
               bool abort = false;
               if (!req.body.empty()) {
                 Result<json::object> body = ParseJsonObject(req.body, {"abort"});
                 if (!body.ok()) return ErrorResponse(body.status());
                 if (const json::value* a = body->if_contains("abort")) {
                   if (!a->is_bool()) {
                     return ErrorResponse(InvalidArgument("'abort' must be true or false"));
                   }
                   abort = a->as_bool();
                 }
               }
               auto run = s.runs.Stop(access, user, req.path_params.at("run"), abort);
               if (!run.ok()) return ErrorResponse(run.status());
               return JsonResponse(RunToJson(*run));
             }));
  router.Add("GET", "/api/project/{project}/runs/{run}/logs",
             InProject(s, [&s](http::Request& req, const model::User&,
                               const server::ProjectAccess& access) {
               Result<int> job_num = QueryInt(req, "job_num", 0, 0, 1'000'000);
               if (!job_num.ok()) return ErrorResponse(job_num.status());
               Result<int> replica_num = QueryInt(req, "replica_num", 0, 0, 1'000'000);
               if (!replica_num.ok()) return ErrorResponse(replica_num.status());
               Result<int> offset = QueryInt(req, "offset", 0, 0, std::numeric_limits<int>::max());
               if (!offset.ok()) return ErrorResponse(offset.status());
               auto run = s.runs.Get(access, req.path_params.at("run"));
               if (!run.ok()) return ErrorResponse(run.status());
               for (const model::Job& job : run->jobs) {
                 if (job.job_num != *job_num || job.replica_num != *replica_num) continue;
                 // Answered when the log is there: a slow host holds no worker thread.
                 auto [now, later] = http::DeferResponse();
                 s.live_logs.Read(
                     job, *offset, 1 << 20,
                     [later = std::move(later), status = std::string(model::ToString(job.status))](
                         server::LiveLogResult read) {
                       later.Send(LogResponse(std::move(read), status));
                     });
                 return std::move(now);
               }
               return ErrorResponse(NotFound("run '" + run->run_name + "' has no job " +
                                             std::to_string(*job_num) + " replica " +
                                             std::to_string(*replica_num)));
             }));
}

void AddMetricsRoutes(http::Router& router, const Services& s) {
  router.Add(
      "GET", "/api/project/{project}/metrics/job/{run}",
      InProject(
          s, [&s](http::Request& req, const model::User&, const server::ProjectAccess& access) {
            server::JobMetricsQuery query;
            if (auto it = req.query.find("run_id"); it != req.query.end() && !it->second.empty()) {
              query.run_id = it->second;
            }
            Result<int> job_num = QueryInt(req, "job_num", 0, 0, 1'000'000);
            if (!job_num.ok()) return ErrorResponse(job_num.status());
            Result<int> replica_num = QueryInt(req, "replica_num", 0, 0, 1'000'000);
            if (!replica_num.ok()) return ErrorResponse(replica_num.status());
            Result<int> limit = QueryInt(req, "limit", 1, 1, 100'000);
            if (!limit.ok()) return ErrorResponse(limit.status());
            query.job_num = *job_num;
            query.replica_num = *replica_num;
            query.limit = *limit;
            for (const char* key : {"after", "before"}) {
              auto it = req.query.find(key);
              if (it == req.query.end() || it->second.empty()) continue;
              Result<TimeMicros> t = ParseTimestamp(it->second);
              if (!t.ok()) {
                return ErrorResponse(InvalidArgument(std::string("query parameter '") + key +
                                                     "' must be an RFC 3339 timestamp"));
              }
              (std::string_view(key) == "after" ? query.after : query.before) = *t;
            }
            auto series = s.metrics.Get(access, req.path_params.at("run"), query);
            if (!series.ok()) {
              if (series.status().code() == StatusCode::kNotFound) {
                return http::JsonError(400, "resource_not_exists", series.status().message());
              }
              return ErrorResponse(series.status());
            }
            json::array metrics;
            for (const server::MetricSeries& m : *series) {
              json::array timestamps, values;
              for (TimeMicros t : m.timestamps)
                timestamps.push_back(json::string(FormatTimestampSeconds(t)));
              for (int64_t v : m.values) values.push_back(v);
              metrics.push_back(json::object{{"name", m.name},
                                             {"timestamps", std::move(timestamps)},
                                             {"values", std::move(values)}});
            }
            return JsonResponse(json::object{{"metrics", std::move(metrics)}});
          }));
  // docs/api.md "Run summary": each job's summary (a running job's so far).
  router.Add(
      "GET", "/api/project/{project}/runs/{run}/summary",
      InProject(
          s, [&s](http::Request& req, const model::User&, const server::ProjectAccess& access) {
            Result<server::RunSummary> summary = s.summaries.Get(access, req.path_params.at("run"));
            if (!summary.ok()) {
              if (summary.status().code() == StatusCode::kNotFound) {
                return http::JsonError(400, "resource_not_exists", summary.status().message());
              }
              return ErrorResponse(summary.status());
            }
            http::Response response;
            response.status = 200;
            response.body = server::ToJson(*summary);
            return response;
          }));
}

void AddWasteRoutes(http::Router& router, const Services& s) {
  // Project members read their project's waste; the whole server's is for global admins.
  router.Add("GET", "/api/project/{project}/waste",
             InProject(s, [&s](http::Request& req, const model::User&,
                               const server::ProjectAccess& access) {
               return WasteResponse(s, req, access.project.name);
             }));
  router.Add("GET", "/api/waste", Authed(s, [&s](http::Request& req, const model::User& user) {
               if (user.global_role != model::GlobalRole::kAdmin) {
                 return ErrorResponse(
                     PermissionDenied("only global admins see every project's "
                                      "waste; ask for one project's instead"));
               }
               return WasteResponse(s, req, std::nullopt);
             }));
}

}  // namespace

http::Response ErrorResponse(const Status& status) { return http::ErrorResponseFor(status); }

bool NeedsUserToken(std::string_view path) {
  if (!path.starts_with("/api/")) return false;
  if (path.ends_with('/')) path.remove_suffix(1);  // the router's rule: "/x/" is "/x"
  return path != kPrometheusSdPath;
}

void AddApiRoutes(http::Router& router, const Services& services) {
  AddUserRoutes(router, services);
  AddProjectRoutes(router, services);
  AddFleetRoutes(router, services);
  AddRunRoutes(router, services);
  AddMetricsRoutes(router, services);
  AddWasteRoutes(router, services);
}

}  // namespace fleetwatch::api
