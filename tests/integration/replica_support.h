#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "integration/agent_process.h"
#include "support/process.h"

// What the replica tests share: their set-up (a database of their own, the server replicas on
// it, the fleet of their agents), and what they read beside the API: the test PostgreSQL
// database directly (a fresh connection per call, so a call never holds one open), and numbers
// in JSON replies. Thread-safe unless a function says otherwise.
namespace fleetwatch::testing {

// --- set-up ---

// A database of its own on the ctest run's PostgreSQL cluster: its URL. "" when there is none:
// the calling test is then skipped (PostgreSQL is not installed) or has failed (the cluster did
// not start). For a test's SetUp, on the test's thread.
std::string CreateReplicaDatabase();

// A `fleetwatch server` replica on the database at `database_url`, started (ServerProcess):
// no local fleet, Prometheus metrics on, no NVML of its own, a metrics interval of 1 s, data in
// `data_dir`, HOME `home_dir`, `admin_token` its admin's. `env` adds to that environment or
// replaces it (FLEETWATCH_POLL_INTERVAL_MS and FLEETWATCH_LEASE_SECONDS, say). Whether it
// started: ServerProcess::started().
std::unique_ptr<ServerProcess> StartReplica(const std::string& database_url,
                                            const std::string& data_dir,
                                            const std::string& home_dir,
                                            const std::string& admin_token,
                                            const std::map<std::string, std::string>& env = {});

// The YAML of the SSH fleet "pool" whose hosts are the agents on 127.0.0.1 at `ports`, which
// take the tests' agent token (kTestAgentToken).
std::string PoolFleetYaml(const std::vector<uint16_t>& ports);

// Has an agent started with `options` read the fake dcgm-exporter (the hardware edge) every
// second, on a port of its own: the fake on a PATH under `dir` (created), serving `dir`/dcgm.txt,
// written with `text` (a test rewrites that file to move the counters).
void UseFakeDcgm(AgentProcessOptions& options, const std::filesystem::path& dir,
                 const std::string& text);

// Waits (WaitUntil) until each server at `urls` says it leases `hosts` instances (GET
// /api/server/info as `admin_token`); whether they all did in time.
bool WaitUntilEachLeases(const std::vector<std::string>& urls, const std::string& admin_token,
                         int64_t hosts);

// --- reading ---

// The first column of each row of `sql` on `url`; empty on any failure.
std::vector<std::string> QueryColumn(const std::string& url, const std::string& sql);

// The one value `sql` gives as a number; -1 when it gives no single non-empty value.
double QueryNumber(const std::string& url, const std::string& sql);

// The integer at `key` of the object `v`; -1 when there is none.
int64_t JsonInt(const boost::json::value& v, std::string_view key);

}  // namespace fleetwatch::testing
