#include "integration/replica_support.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>

#include "integration/api_client.h"
#include "support/postgres_cluster.h"

namespace fleetwatch::testing {

namespace {

// GTEST_SKIP returns: from a function of its own.
void SkipTest(const char* why) { GTEST_SKIP() << why; }

}  // namespace

std::string CreateReplicaDatabase() {
  if (PostgresCluster::FindBinDir().empty()) {
    SkipTest("PostgreSQL is not installed: scripts/install-deps.sh installs it");
    return "";
  }
  std::string error;
  PostgresCluster* cluster = PostgresCluster::Shared(&error);
  if (cluster == nullptr) {
    ADD_FAILURE() << error;
    return "";
  }
  std::string url = cluster->CreateDatabase(&error);
  if (url.empty()) ADD_FAILURE() << error;
  return url;
}

std::unique_ptr<ServerProcess> StartReplica(const std::string& database_url,
                                            const std::string& data_dir,
                                            const std::string& home_dir,
                                            const std::string& admin_token,
                                            const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> all = {
      {"FLEETWATCH_DATABASE_URL", database_url},
      {"FLEETWATCH_ENCRYPTION_KEY", std::string(64, 'a')},
      {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
      {"DSTACK_ENABLE_PROMETHEUS_METRICS", ""},
      {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}};
  for (const auto& [name, value] : env) all[name] = value;
  return std::make_unique<ServerProcess>(data_dir, home_dir, admin_token,
                                         std::vector<std::string>{"--no-local-fleet"},
                                         std::move(all));
}

std::string PoolFleetYaml(const std::vector<uint16_t>& ports) {
  std::string fleet = "type: fleet\nname: pool\nssh_config:\n  tls: false\n  token: " +
                      std::string(kTestAgentToken) + "\n  hosts:\n";
  for (uint16_t port : ports) {
    fleet += "    - hostname: 127.0.0.1\n      port: " + std::to_string(port) + "\n";
  }
  return fleet;
}

void UseFakeDcgm(AgentProcessOptions& options, const std::filesystem::path& dir,
                 const std::string& text) {
  std::filesystem::create_directories(dir / "bin");
  std::filesystem::create_symlink(
      std::filesystem::path(FLEETWATCH_SOURCE_DIR) / "tests/agent/testdata/dcgm/fake-dcgm-exporter",
      dir / "bin/dcgm-exporter");
  WriteFile(dir / "dcgm.txt", text);
  options.env["FAKE_DCGM_FIXTURE"] = (dir / "dcgm.txt").string();
  options.env["FLEETWATCH_DCGM_EXPORTER_PORT"] = std::to_string(FreePort());
  options.env["FLEETWATCH_DCGM_INTERVAL_SECONDS"] = "1";
  options.env["PATH"] = (dir / "bin").string() + ":" + std::getenv("PATH");
}

bool WaitUntilEachLeases(const std::vector<std::string>& urls, const std::string& admin_token,
                         int64_t hosts) {
  return WaitUntil([&] {
    for (const std::string& url : urls) {
      if (JsonInt(ApiClient(url, admin_token).Get("/api/server/info").json, "leased_instances") !=
          hosts) {
        return false;
      }
    }
    return true;
  });
}

std::vector<std::string> QueryColumn(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::vector<std::string> out;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* result = PQexec(conn, sql.c_str());
    if (PQresultStatus(result) == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(result); ++i) out.emplace_back(PQgetvalue(result, i, 0));
    }
    PQclear(result);
  }
  PQfinish(conn);
  return out;
}

double QueryNumber(const std::string& url, const std::string& sql) {
  std::vector<std::string> v = QueryColumn(url, sql);
  return v.size() == 1 && !v[0].empty() ? std::stod(v[0]) : -1.0;
}

int64_t JsonInt(const boost::json::value& v, std::string_view key) {
  const boost::json::value* field = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (field == nullptr || !field->is_number()) return -1;
  boost::json::error_code ec;
  int64_t n = field->to_number<int64_t>(ec);
  return ec ? -1 : n;
}

}  // namespace fleetwatch::testing
