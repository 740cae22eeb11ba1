#include "api/metrics_route.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "expose/family.h"
#include "http/bearer.h"
#include "http/deferred.h"
#include "model/entities.h"
#include "model/gpu_names.h"
#include "model/status.h"
#include "util/ids.h"

namespace fleetwatch::api {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A q parameter of 0 (q=0, q=0.0, q=0.000) refuses the coding.
bool RefusedByQ(std::string_view params) {
  while (!params.empty()) {
    size_t semi = params.find(';');
    std::string_view param = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    if (param.size() < 2 || std::tolower(static_cast<unsigned char>(param[0])) != 'q') continue;
    std::string_view value = Trim(param.substr(1));
    if (value.empty() || value.front() != '=') continue;
    value = Trim(value.substr(1));
    return !value.empty() && value.find_first_not_of("0.") == std::string_view::npos;
  }
  return false;
}

http::Response Forbidden(std::string_view message) {
  return http::JsonError(403, "forbidden", message);
}

// The token check, then the switch (spec/METRICS.md); nothing when the request may go on.
std::optional<http::Response> RefuseScrape(const http::Request& request,
                                           const MetricsEndpointOptions& options) {
  if (options.auth_token) {
    std::optional<std::string_view> token = http::ParseBearer(request.Header("authorization"));
    if (!token) return Forbidden("Access denied");
    if (!ConstantTimeEquals(*token, *options.auth_token)) return Forbidden("Invalid token");
  }
  if (!options.enabled) return http::JsonError(404, "not_found", "Not Found");
  return std::nullopt;
}

}  // namespace

bool AcceptsGzip(std::string_view accept_encoding) {
  while (!accept_encoding.empty()) {
    size_t comma = accept_encoding.find(',');
    std::string_view item = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view coding = Trim(item.substr(0, semi));
    if (!EqualsIgnoreCase(coding, "gzip")) continue;
    return semi == std::string_view::npos || !RefusedByQ(item.substr(semi + 1));
  }
  return false;
}

namespace {

// What a scrape that passed the checks asked for.
struct ScrapeFormat {
  expose::Format format = expose::Format::kText004;
  bool gzip = false;
};

ScrapeFormat FormatOf(const http::Request& request, const MetricsEndpointOptions& options) {
  return ScrapeFormat{options.openmetrics ? expose::NegotiateFormat(request.Header("accept"))
                                          : expose::Format::kText004,
                      AcceptsGzip(request.Header("accept-encoding"))};
}

http::Response Body(ScrapeFormat f, const expose::ExpositionSnapshot& snapshot,
                    const Clock& clock) {
  std::shared_ptr<const std::string> body = snapshot.Body(f.format, f.gzip, clock.Now());
  http::Response response;
  response.content_type = std::string(expose::ContentType(f.format));
  response.shared_body = std::move(body);  // no copy: the cached body is immutable
  response.headers.emplace_back("Vary", "Accept, Accept-Encoding");
  if (f.gzip) response.headers.emplace_back("Content-Encoding", "gzip");
  return response;
}

}  // namespace

http::Response ServeMetrics(const http::Request& request, const MetricsEndpointOptions& options,
                            const expose::ExpositionSnapshot& snapshot, const Clock& clock) {
  if (std::optional<http::Response> refused = RefuseScrape(request, options)) return *refused;
  return Body(FormatOf(request, options), snapshot, clock);
}

void AddMetricsRoute(http::Router& router, MetricsEndpointOptions options,
                     const expose::ExpositionSnapshot& snapshot,
                     const expose::ExpositionSnapshot& replica, const Clock& clock,
                     server::ScrapeBarrier* barrier) {
  router.Add("GET", "/metrics",
             [switches = options, &snapshot, &clock, barrier](http::Request& request) {
               if (barrier == nullptr || !barrier->Needed()) {
                 return ServeMetrics(request, switches, snapshot, clock);
               }
               if (std::optional<http::Response> refused = RefuseScrape(request, switches)) {
                 return *refused;
               }
               auto [now, later] = http::DeferResponse();
               barrier->Await([later = std::move(later), f = FormatOf(request, switches), &snapshot,
                               &clock](bool) { later.Send(Body(f, snapshot, clock)); });
               return std::move(now);
             });
  router.Add("GET", std::string(kReplicaMetricsPath),
             [switches = std::move(options), &replica, &clock](http::Request& request) {
               return ServeMetrics(request, switches, replica, clock);
             });
}

http::Response ServePrometheusSd(const http::Request& request,
                                 const MetricsEndpointOptions& options, store::Store& store) {
  if (std::optional<http::Response> refused = RefuseScrape(request, options)) return *refused;
  Result<std::vector<model::Instance>> instances = store.ListInstances("");
  if (!instances.ok()) return http::ErrorResponseFor(instances.status());
  boost::json::array groups;
  for (const model::Instance& i : *instances) {
    bool up =
        (i.status == model::InstanceStatus::kIdle || i.status == model::InstanceStatus::kBusy);
    if (!up || i.unreachable || i.hostname.empty() || i.agent_port <= 0) continue;
    std::string host =
        i.hostname.find(':') != std::string::npos ? "[" + i.hostname + "]" : i.hostname;
    boost::json::object labels;
    labels["__metrics_path__"] = "/metrics";
    labels["__scheme__"] = i.tls ? "https" : "http";
    labels["dstack_project_name"] = i.project_name;
    labels["dstack_fleet_name"] = i.fleet_name;
    labels["dstack_instance_name"] = i.name;
    labels["dstack_instance_id"] = i.id;
    labels["dstack_backend"] = i.backend;
    labels["dstack_gpu"] =
        i.resources.gpus.empty() ? "" : model::ShortGpuName(i.resources.gpus.front());
    labels["dstack_gpu_count"] = std::to_string(i.resources.gpus.size());
    groups.push_back(boost::json::object{
        {"targets", boost::json::array{host + ":" + std::to_string(i.agent_port)}},
        {"labels", std::move(labels)}});
  }
  http::Response response;
  response.content_type = "application/json";
  response.body = boost::json::serialize(groups);
  return response;
}

void AddPrometheusSdRoute(http::Router& router, MetricsEndpointOptions options,
                          store::Store& store) {
  router.Add("GET", std::string(kPrometheusSdPath),
             [switches = std::move(options), &store](http::Request& request) {
               return ServePrometheusSd(request, switches, store);
             });
}

}  // namespace fleetwatch::api
