// `fleetwatch server` on PostgreSQL (FLEETWATCH_DATABASE_URL / --database-url): the real binary,
// its local agent and a real PostgreSQL (the ctest run's cluster, or one of the process' own when
// run by hand), and the refusals of a wrong URL, whose password never shows.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "integration/api_client.h"
#include "integration/replica_support.h"
#include "support/postgres_cluster.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

using Column = std::vector<std::string>;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
// The test cluster trusts loopback, so this password is sent and never checked: it is there to
// be looked for in everything the server says.
constexpr char kPassword[] = "pw-that-must-never-show-4711";

class PostgresServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = CreateReplicaDatabase();  // skips or fails the test when there is none
    if (url_.empty()) return;
    // postgresql://fleetwatch@... -> postgresql://fleetwatch:PASSWORD@...
    url_with_password_ =
        std::regex_replace(url_, std::regex("^postgresql://fleetwatch@"),
                           std::string("postgresql://fleetwatch:") + kPassword + "@");
    ASSERT_NE(url_with_password_, url_);
  }

  // `fleetwatch server` with `env` and `args`, expected to refuse to start.
  ProcessResult StartExpectingFailure(const std::map<std::string, std::string>& env,
                                      const std::vector<std::string>& args = {}) {
    std::vector<std::string> all = {"server", "--host",     "127.0.0.1", "--port",
                                    "0",      "--data-dir", data_.str(), "--no-local-fleet"};
    all.insert(all.end(), args.begin(), args.end());
    std::map<std::string, std::string> full = {{"HOME", home_.str()},
                                               {"FLEETWATCH_SERVER_ADMIN_TOKEN", kAdminToken}};
    for (const auto& [k, v] : env) full[k] = v;
    const auto start = std::chrono::steady_clock::now();
    ProcessResult result = RunProcess(FLEETWATCH_BINARY, all, full);
    std::printf("the refused start took %.2f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return result;
  }

  std::string url_;
  std::string url_with_password_;
  TempDir data_;
  TempDir home_;
};

TEST_F(PostgresServerTest, ARunOnTheLocalAgentIsDoneAndServedFromPostgres) {
  auto server = std::make_unique<ServerProcess>(
      data_.str(), home_.str(), kAdminToken, std::vector<std::string>{},
      std::map<std::string, std::string>{
          {"FLEETWATCH_DATABASE_URL", url_with_password_},
          {"DSTACK_ENABLE_PROMETHEUS_METRICS", ""},
          {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
          {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
          {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}});
  ASSERT_TRUE(server->started()) << server->Output();
  ApiClient admin(server->url(), kAdminToken);

  ApiReply info = admin.Get("/api/server/info");
  ASSERT_EQ(info.status, 200) << info.body;
  EXPECT_EQ(Str(info.json, "database"), "postgresql");
  EXPECT_EQ(info.body.find("127.0.0.1"), std::string::npos) << info.body;

  // The job prints whether the database URL reached it (through the local agent's environment).
  ApiReply submitted = admin.Send(
      "POST", "/api/project/main/runs",
      "type: task\nname: hello\ncommands:\n  - echo \"url=${FLEETWATCH_DATABASE_URL:-none}\"\n",
      "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  ApiReply run = WaitForRunStatus(admin, "main", "hello", "done");
  ASSERT_EQ(Str(run.json, "status"), "done") << run.body << "\n" << server->Output();
  EXPECT_EQ(Str(run.json.at("jobs").at(0), "termination_reason"), "done_by_runner");
  ApiReply logs = admin.Get("/api/project/main/runs/hello/logs?job_num=0");
  EXPECT_EQ(logs.status, 200);
  EXPECT_EQ(logs.body, "url=none\n");

  // The state is in PostgreSQL, not in a SQLite file in the data dir.
  EXPECT_EQ(QueryColumn(url_, "SELECT status FROM runs WHERE run_name = 'hello'"), Column{"done"});
  EXPECT_EQ(QueryNumber(url_, "SELECT COUNT(*) FROM instances"), 1);
  EXPECT_FALSE(std::filesystem::exists(data_.path() / "fleetwatch.db"));

  // /metrics renders the finished run.
  const std::regex done_count(R"(dstack_run_count_done_total\{[^}]*\} 1\b)");
  std::string metrics;
  EXPECT_TRUE(WaitUntil([&] {
    ApiReply r = admin.Get("/metrics");
    metrics = r.body;
    return r.status == 200 && std::regex_search(metrics, done_count);
  })) << metrics;

  EXPECT_EQ(server->Stop(SIGTERM), 0) << server->Output();
  const std::string output = server->Output();
  EXPECT_EQ(output.find(kPassword), std::string::npos) << output;
  EXPECT_NE(output.find("postgresql://fleetwatch:***@127.0.0.1:"), std::string::npos) << output;
}

TEST_F(PostgresServerTest, TheFlagWinsOverTheVariable) {
  ServerProcess server(data_.str(), home_.str(), kAdminToken,
                       std::vector<std::string>{"--no-local-fleet", "--database-url", url_},
                       {{"FLEETWATCH_DATABASE_URL", "mysql://root@db/fleetwatch"}});
  ASSERT_TRUE(server.started()) << server.Output();
  ApiReply info = ApiClient(server.url(), kAdminToken).Get("/api/server/info");
  EXPECT_EQ(Str(info.json, "database"), "postgresql") << info.body;
  EXPECT_EQ(QueryColumn(url_, "SELECT name FROM users"), Column{"admin"});
}

TEST_F(PostgresServerTest, WithoutAUrlTheServerKeepsSqlite) {
  ServerProcess server(data_.str(), home_.str(), kAdminToken,
                       std::vector<std::string>{"--no-local-fleet"},
                       {{"FLEETWATCH_DATABASE_URL", "\x01unset"}});
  ASSERT_TRUE(server.started()) << server.Output();
  ApiReply info = ApiClient(server.url(), kAdminToken).Get("/api/server/info");
  EXPECT_EQ(Str(info.json, "database"), "sqlite") << info.body;
  EXPECT_TRUE(std::filesystem::exists(data_.path() / "fleetwatch.db"));
}

TEST_F(PostgresServerTest, AUrlOfAnotherSchemeIsRefusedBeforeAnythingIsTouched) {
  const std::filesystem::path data = data_.path() / "never-made";
  ProcessResult result = RunProcess(
      FLEETWATCH_BINARY,
      {"server", "--host", "127.0.0.1", "--port", "0", "--data-dir", data.string(),
       "--no-local-fleet"},
      {{"HOME", home_.str()},
       {"FLEETWATCH_DATABASE_URL", std::string("mysql://root:") + kPassword + "@db/fleetwatch"}});
  EXPECT_EQ(result.exit_code, 1) << result.out << result.err;
  EXPECT_NE(result.err.find("must be a PostgreSQL URL"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("mysql://root:***@db/fleetwatch"), std::string::npos) << result.err;
  EXPECT_EQ((result.out + result.err).find(kPassword), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(data));
}

TEST_F(PostgresServerTest, AnUnreachableDatabaseFailsTheStartWithTheDriversMessage) {
  const std::string unreachable = std::string("postgresql://fleetwatch:") + kPassword +
                                  "@127.0.0.1:" + std::to_string(FreePort()) +
                                  "/fleetwatch?connect_timeout=5";
  ProcessResult result = StartExpectingFailure({}, {"--database-url", unreachable});
  EXPECT_EQ(result.exit_code, 1) << result.out << result.err;
  EXPECT_NE(result.err.find("cannot connect to the database"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("Connection refused"), std::string::npos) << result.err;
  EXPECT_EQ((result.out + result.err).find(kPassword), std::string::npos)
      << result.out << result.err;
  EXPECT_EQ(result.out.find("listening"), std::string::npos) << result.out;
}

}  // namespace
}  // namespace fleetwatch::testing
