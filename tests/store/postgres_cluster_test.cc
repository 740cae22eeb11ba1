#include "support/postgres_cluster.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <filesystem>
#include <memory>
#include <string>

namespace fleetwatch::testing {
namespace {

// The value of `sql`'s first column on a new connection to `url`; the error when it fails.
std::string QueryOne(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string out;
  if (PQstatus(conn) != CONNECTION_OK) {
    out = std::string("connect: ") + PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    out = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1
              ? PQgetvalue(result, 0, 0)
              : std::string("query: ") + PQerrorMessage(conn);
    PQclear(result);
  }
  PQfinish(conn);
  return out;
}

TEST(PostgresCluster, StartsOnLoopbackAndHandsOutSeparateDatabases) {
  if (PostgresCluster::FindBinDir().empty()) {
    GTEST_SKIP() << "PostgreSQL is not installed (no initdb/postgres under "
                    "/usr/lib/postgresql/*/bin): scripts/install-deps.sh installs it";
  }
  std::string error;
  PostgresCluster* cluster = PostgresCluster::Shared(&error);
  ASSERT_NE(cluster, nullptr) << error;
  EXPECT_EQ(PostgresCluster::Shared(), cluster);  // one per process
  const std::string a = cluster->CreateDatabase(&error);
  ASSERT_FALSE(a.empty()) << error;
  const std::string b = cluster->CreateDatabase(&error);
  ASSERT_FALSE(b.empty()) << error;
  EXPECT_NE(a, b);
  EXPECT_EQ(
      a.rfind("postgresql://fleetwatch@127.0.0.1:" + std::to_string(cluster->port()) + "/", 0), 0u)
      << a;
  EXPECT_EQ(QueryOne(a, "SELECT current_database() <> 'postgres'"), "t");
  EXPECT_EQ(QueryOne(a, "CREATE TABLE only_in_a (x int); SELECT 1"), "1");
  EXPECT_NE(QueryOne(b, "SELECT COUNT(*) FROM only_in_a").find("does not exist"),
            std::string::npos);
  EXPECT_EQ(QueryOne(a, "SHOW fsync"), "off");
  EXPECT_EQ(QueryOne(a, "SELECT current_setting('server_encoding')"), "UTF8");
}

// What a test run by hand (no ctest fixture) gets, and what a test that restarts the server uses.
TEST(PostgresCluster, APrivateClusterIsSeparateAndRemovedWithItsObject) {
  if (PostgresCluster::FindBinDir().empty()) {
    GTEST_SKIP() << "PostgreSQL is not installed: scripts/install-deps.sh installs it";
  }
  std::string error;
  std::unique_ptr<PostgresCluster> own = PostgresCluster::StartPrivate(&error);
  ASSERT_NE(own, nullptr) << error;
  PostgresCluster* shared = PostgresCluster::Shared(&error);
  ASSERT_NE(shared, nullptr) << error;
  EXPECT_NE(own->port(), shared->port());
  const std::string url = own->CreateDatabase(&error);
  ASSERT_FALSE(url.empty()) << error;
  EXPECT_EQ(QueryOne(url, "SELECT 1"), "1");
  const std::string log = own->LogPath();
  EXPECT_TRUE(std::filesystem::exists(log));
  own.reset();
  EXPECT_FALSE(std::filesystem::exists(log));
  EXPECT_NE(QueryOne(url, "SELECT 1").find("connect:"), std::string::npos);
}

}  // namespace
}  // namespace fleetwatch::testing
