#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "expose/snapshot.h"
#include "http/message.h"
#include "http/router.h"
#include "server/scrape_barrier.h"
#include "store/store.h"
#include "util/clock.h"

namespace fleetwatch::api {

// The switches of GET /metrics (spec/METRICS.md), read once at start.
struct MetricsEndpointOptions {
  bool enabled = false;                   // DSTACK_ENABLE_PROMETHEUS_METRICS is set
  std::optional<std::string> auth_token;  // DSTACK_PROMETHEUS_AUTH_TOKEN
  // FLEETWATCH_OPENMETRICS=1: answer OpenMetrics when the Accept header asks for it. Off, every
  // scrape gets the text format, as dstack answers: DCGM's counters without `_total` would reach
  // an OpenMetrics scraper typed `unknown`.
  bool openmetrics = false;
};

// Whether an Accept-Encoding header accepts gzip (a `gzip` coding without q=0).
bool AcceptsGzip(std::string_view accept_encoding);

// Answers one GET /metrics from `snapshot` as of `clock`: the token check first (missing or
// non-Bearer Authorization → 403 "Access denied", wrong token → 403 "Invalid token", compared in
// constant time), then 404 when disabled, then the body in the text format (or the negotiated
// one with `options.openmetrics`), gzip'd when asked. Never touches the store. Thread-safe.
http::Response ServeMetrics(const http::Request& request, const MetricsEndpointOptions& options,
                            const expose::ExpositionSnapshot& snapshot, const Clock& clock);

inline constexpr std::string_view kReplicaMetricsPath = "/metrics/replica";

// Registers GET /metrics from `snapshot` (the fleet's families: the same on every server replica)
// and GET /metrics/replica from `replica` (what this server process alone saw: its polls' errors,
// the GPU health of the hosts it polls...; docs/api.md), both outside /api/, without the
// API's user auth, with the same switches and token. With a `barrier` (server replicas on
// PostgreSQL; null: none) a GET /metrics that passed the checks while it is Needed is answered
// later (http::DeferResponse), from the barrier's thread, once the snapshot shows every change
// committed before the scrape began (or at the barrier's deadline): no HTTP thread waits.
// `snapshot`, `replica`, `clock` and `barrier` must outlive the router.
void AddMetricsRoute(http::Router& router, MetricsEndpointOptions options,
                     const expose::ExpositionSnapshot& snapshot,
                     const expose::ExpositionSnapshot& replica, const Clock& clock,
                     server::ScrapeBarrier* barrier = nullptr);

// Prometheus HTTP service discovery (GET /api/prometheus/sd): one target group per reachable
// instance (idle or busy, its agent answering) naming its agent's /metrics, with labels
// dstack_project_name, dstack_fleet_name, dstack_instance_name, dstack_instance_id,
// dstack_backend, dstack_gpu (first GPU's short name, model::ShortGpuName) and dstack_gpu_count.
// The same token check and switch as /metrics. Reads the store (Prometheus asks every minute or
// so). Thread-safe.
http::Response ServePrometheusSd(const http::Request& request,
                                 const MetricsEndpointOptions& options, store::Store& store);

inline constexpr std::string_view kPrometheusSdPath = "/api/prometheus/sd";

// Registers GET /api/prometheus/sd. `store` must outlive the router.
void AddPrometheusSdRoute(http::Router& router, MetricsEndpointOptions options,
                          store::Store& store);

}  // namespace fleetwatch::api
