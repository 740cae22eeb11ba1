#include "store/database_url.h"

#include <gtest/gtest.h>

#include <string>

namespace fleetwatch::store {
namespace {

TEST(DatabaseUrl, PostgresSchemesAreAcceptedAnyOtherIsRefusedWithoutItsPassword) {
  EXPECT_TRUE(CheckPostgresUrl("postgresql://fleetwatch@db/fleetwatch").ok());
  EXPECT_TRUE(CheckPostgresUrl("postgres://u:p@db:5432/fw?sslmode=require").ok());
  EXPECT_TRUE(CheckPostgresUrl("PostgreSQL://db/fw").ok());
  for (const std::string url : {"mysql://root:hunter2@db/fw", "sqlite:///var/fw.db",
                                "host=db password=hunter2", "", "postgresql:/db"}) {
    const Status status = CheckPostgresUrl(url);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(status.message().find("FLEETWATCH_DATABASE_URL"), std::string::npos)
        << status.message();
    EXPECT_EQ(status.message().find("hunter2"), std::string::npos) << status.message();
  }
  EXPECT_NE(CheckPostgresUrl("host=db password=hunter2").message().find("not a URL"),
            std::string::npos);
}

TEST(DatabaseUrl, PasswordsAreRedactedInTheUserInfoAndTheQuery) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://fw:s3cret@db:5432/fleet"),
            "postgresql://fw:***@db:5432/fleet");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://fw@db/fleet?sslmode=require&password=s3cret"),
            "postgresql://fw@db/fleet?sslmode=require&password=***");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://fw:a%40b@db/fleet?PASSWORD=x&connect_timeout=5"),
            "postgresql://fw:***@db/fleet?PASSWORD=***&connect_timeout=5");
  // No password: unchanged; an '@' in the path is no user info.
  EXPECT_EQ(RedactDatabaseUrl("postgresql://fw@db/fleet"), "postgresql://fw@db/fleet");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://db/a:b@c"), "postgresql://db/a:b@c");
}

TEST(DatabaseUrl, AMessageLosesThePasswordAsWrittenAndDecoded) {
  const std::string url = "postgresql://fw:p%40ss@db/fleet?password=other";
  EXPECT_EQ(RedactPassword("bad 'p%40ss' and 'p@ss' and 'other'", url),
            "bad '***' and '***' and '***'");
  EXPECT_EQ(RedactPassword("nothing secret", "postgresql://fw@db/fleet"), "nothing secret");
}

}  // namespace
}  // namespace fleetwatch::store
