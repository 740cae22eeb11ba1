// The agent's record of the jobs it accepted: what a restarted agent must never start again.
#include "agent/job_records.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::ModeOf;
using fleetwatch::testing::TempDir;

TEST(JobRecords, TextRoundTripsAndAnythingElseIsRefused) {
  JobRecord record{"job-1", 1'800'000'000'000'000, 61005};
  Result<JobRecord> back = ParseJobRecord(JobRecordText(record));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->job_id, "job-1");
  EXPECT_EQ(back->accepted_at, record.accepted_at);
  EXPECT_EQ(back->uid, 61005u);
  Result<JobRecord> no_uid = ParseJobRecord(JobRecordText({"job-2", 5, std::nullopt}));
  ASSERT_TRUE(no_uid.ok());
  EXPECT_FALSE(no_uid->uid.has_value());
  for (const char* bad :
       {"", "[]", "{}", R"({"job_id":"../x","accepted_at":1})",
        R"({"job_id":"a","accepted_at":-1})", R"({"job_id":"a","accepted_at":"1"})",
        R"({"job_id":"a","accepted_at":1,"uid":0})",
        R"({"job_id":"a","accepted_at":1,"uid":4294967296})"}) {
    EXPECT_FALSE(ParseJobRecord(bad).ok()) << bad;
  }
}

TEST(JobRecords, AddedRecordsArePrivateAndLoadInJobIdOrder) {
  TempDir data;
  JobRecordStore store(data.path() / "accepted");
  EXPECT_TRUE(store.Load().empty());  // no directory yet
  ASSERT_TRUE(store.Add({"b", 2, std::nullopt}).ok());
  ASSERT_TRUE(store.Add({"a", 1, 61000}).ok());
  EXPECT_EQ(ModeOf(store.dir()), 0700u);
  EXPECT_EQ(ModeOf(store.dir() / "a.json"), 0600u);
  std::vector<JobRecord> records = store.Load();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].job_id, "a");
  EXPECT_EQ(records[0].uid, 61000u);
  EXPECT_EQ(records[1].job_id, "b");
  EXPECT_EQ(records[1].accepted_at, 2);
}

TEST(JobRecords, RemoveForgetsAndIsIdempotent) {
  TempDir data;
  JobRecordStore store(data.path() / "accepted");
  ASSERT_TRUE(store.Add({"a", 1, std::nullopt}).ok());
  EXPECT_TRUE(store.Remove("a").ok());
  EXPECT_TRUE(store.Remove("a").ok());
  EXPECT_TRUE(store.Load().empty());
  EXPECT_EQ(store.Remove("../a").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Add({"../a", 1, std::nullopt}).code(), StatusCode::kInvalidArgument);
}

TEST(JobRecords, FilesThatAreNotRecordsOfTheirNameAreSkippedAndSaidSo) {
  TempDir data;
  JobRecordStore store(data.path() / "accepted");
  ASSERT_TRUE(store.Add({"good", 1, std::nullopt}).ok());
  testing::WriteFile(store.dir() / "other.json", JobRecordText({"good", 1, std::nullopt}));
  testing::WriteFile(store.dir() / "broken.json", "{\"job_id\":");
  testing::WriteFile(store.dir() / "good.json.tmp.42", "half");
  fs::create_symlink(store.dir() / "good.json", store.dir() / "link.json");
  std::vector<std::string> problems;
  std::vector<JobRecord> records = store.Load(&problems);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].job_id, "good");
  EXPECT_EQ(problems.size(), 4u);
}

}  // namespace
}  // namespace fleetwatch::agent
