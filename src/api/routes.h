#pragma once

#include <string_view>

#include "http/router.h"
#include "server/auth.h"
#include "server/fleet_controller.h"
#include "server/fleets.h"
#include "server/gpu_health.h"
#include "server/gpu_waste.h"
#include "server/job_metrics.h"
#include "server/job_summary_service.h"
#include "server/live_logs.h"
#include "server/projects.h"
#include "server/runs.h"
#include "server/users.h"
#include "util/clock.h"

namespace fleetwatch::api {

// The services the REST handlers call. All must outlive the router.
struct Services {
  const server::AuthService& auth;
  server::UserService& users;
  server::ProjectService& projects;
  server::FleetService& fleets;
  server::RunService& runs;
  server::FleetController& controller;
  server::LiveLogs& live_logs;
  server::JobMetricsService& metrics;
  server::JobSummaryService& summaries;
  const Clock& clock;
  std::string_view database;  // "sqlite" or "postgresql", for GET /api/server/info
  // The GPU ledger's totals: waste reports and the runs' idle share (null: not shown).
  const server::GpuWasteService* waste = nullptr;
  // The instances' GPU health, shown with each instance; null: none shown.
  const server::GpuHealthMonitor* gpu_health = nullptr;
};

// Registers every /api/ route of docs/api.md on `router`.
void AddApiRoutes(http::Router& router, const Services& services);

// Whether a request for `path` (decoded) goes where a user's token is needed: everything under
// /api/ but Prometheus service discovery, which has its own token rule (metrics_route.h).
bool NeedsUserToken(std::string_view path);

// Maps a non-ok Status to its JSON error response (docs/api.md). Internal errors are logged and
// answered with a generic message.
http::Response ErrorResponse(const Status& status);

}  // namespace fleetwatch::api
