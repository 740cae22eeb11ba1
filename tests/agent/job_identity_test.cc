// Who jobs run as: uid ranges, the /proc scan, the policy the flags give, exclusive uid locks.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/job_identity.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::TempDir;

TEST(UidRange, ParsesFirstDashLast) {
  Result<UidRange> range = ParseUidRange("61000-61999");
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  EXPECT_EQ(range->first, 61000u);
  EXPECT_EQ(range->last, 61999u);
  ASSERT_TRUE(ParseUidRange("5-5").ok());
}

TEST(UidRange, RefusesRootReversedGarbageAndHugeRanges) {
  for (const char* text : {"0-10", "10-5", "abc", "61000", "61000-", "-5", "1-2-3", "1-99999999999",
                           "1-2000000", " 1-2"}) {
    Result<UidRange> range = ParseUidRange(text);
    EXPECT_FALSE(range.ok()) << text;
    EXPECT_EQ(range.status().code(), StatusCode::kInvalidArgument) << text;
  }
  EXPECT_NE(ParseUidRange("0-10").status().message().find("root"), std::string::npos);
}

TEST(ProcStatus, UidLineGivesFourUids) {
  EXPECT_EQ(ParseStatusUids("Name:\tsh\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\n"),
            (std::vector<uid_t>{1000, 1001, 1002, 1003}));
  EXPECT_EQ(ParseStatusUids("Uid:\t0\t0\t0\t0\n"), (std::vector<uid_t>{0, 0, 0, 0}));
  EXPECT_TRUE(ParseStatusUids("Name:\tsh\nGid:\t5\t5\t5\t5\n").empty());
  EXPECT_TRUE(ParseStatusUids("Uid:\tx\t1\n").empty());
}

TEST(ProcStatus, UidsInUseReadsEveryProcessAndSkipsTheRest) {
  TempDir proc;
  testing::WriteFile(proc.path() / "12" / "status", "Name:\ta\nUid:\t7\t8\t7\t7\n");
  testing::WriteFile(proc.path() / "13" / "status", "Name:\tb\nUid:\t9\t9\t9\t9\n");
  testing::WriteFile(proc.path() / "self" / "status", "Uid:\t100\t100\t100\t100\n");
  fs::create_directories(proc.path() / "14");  // ended meanwhile: no status
  EXPECT_EQ(UidsInUse(proc.path()), (std::set<uid_t>{7, 8, 9}));
  // The real /proc has this process.
  EXPECT_EQ(UidsInUse("/proc").count(::getuid()), 1u);
}

TEST(JobUserPolicy, RootGetsDynamicUidsByDefault) {
  Result<JobUserPolicy> policy = ResolveJobUserPolicy({}, 0, "/run/x");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  const auto* dynamic = std::get_if<DynamicUserPolicy>(&*policy);
  ASSERT_NE(dynamic, nullptr);
  EXPECT_EQ(dynamic->range.first, 61000u);
  EXPECT_EQ(dynamic->range.last, 61999u);
  EXPECT_EQ(dynamic->lock_dir, "/run/x");
  EXPECT_TRUE(RunsJobsAsOtherUsers(*policy, 0));
}

TEST(JobUserPolicy, AllowRootJobsAndNonRootAgentsKeepTheAgentsUser) {
  JobUserFlags allow;
  allow.allow_root_jobs = true;
  Result<JobUserPolicy> root = ResolveJobUserPolicy(allow, 0, "/run/x");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(std::holds_alternative<AgentUserPolicy>(*root));
  EXPECT_FALSE(RunsJobsAsOtherUsers(*root, 0));
  Result<JobUserPolicy> user = ResolveJobUserPolicy({}, 1000, "/run/x");
  ASSERT_TRUE(user.ok());
  EXPECT_TRUE(std::holds_alternative<AgentUserPolicy>(*user));
}

TEST(JobUserPolicy, JobUserNamesAnExistingUnprivilegedUser) {
  passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user nobody here";
  uid_t nobody_uid = nobody->pw_uid;
  JobUserFlags flags;
  flags.job_user = "nobody";
  Result<JobUserPolicy> policy = ResolveJobUserPolicy(flags, 0, "/run/x");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  const auto* named = std::get_if<NamedUserPolicy>(&*policy);
  ASSERT_NE(named, nullptr);
  EXPECT_EQ(named->uid, nobody_uid);
  EXPECT_EQ(named->name, "nobody");
  EXPECT_TRUE(RunsJobsAsOtherUsers(*policy, 0));
  // Not root: only the agent's own user can be named.
  EXPECT_FALSE(ResolveJobUserPolicy(flags, nobody_uid + 1, "/run/x").ok());
}

TEST(JobUserPolicy, RefusesRootUnknownUsersBadRangesAndContradictions) {
  struct Case {
    JobUserFlags flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"61000-61999", "root", false}, "is root (uid 0)"},
      {{"61000-61999", "no-such-user-fleetwatch", false}, "no such user"},
      {{"0-100", "", false}, "root"},
      {{"61999-61000", "", false}, "ends before it starts"},
      {{"61000-61999", "nobody", true}, "exclude each other"},
  };
  for (const Case& c : cases) {
    Result<JobUserPolicy> policy = ResolveJobUserPolicy(c.flags, 0, "/run/x");
    ASSERT_FALSE(policy.ok()) << c.message;
    EXPECT_EQ(policy.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(policy.status().message().find(c.message), std::string::npos)
        << policy.status().message();
  }
}

// Uids far from any real one, in a lock dir of the test's own, with an empty fake /proc.
class DynamicUidsTest : public ::testing::Test {
 protected:
  DynamicUserPolicy Policy(uid_t first, uid_t last) const {
    DynamicUserPolicy policy;
    policy.range = {first, last};
    policy.lock_dir = locks_.path() / "uids";
    policy.proc_root = proc_.path();
    return policy;
  }

  TempDir locks_;
  TempDir proc_;
};

TEST_F(DynamicUidsTest, TwoAllocatorsNeverHandOutTheSameUid) {
  JobUsers a(Policy(4000000, 4000001));
  JobUsers b(Policy(4000000, 4000001));
  Result<JobIdentityLease> first = a.Acquire();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const JobIdentity& one = first->identity();
  EXPECT_EQ(one.uid, 4000000u);
  EXPECT_EQ(one.gid, 4000000u);
  EXPECT_TRUE(one.switch_user);
  EXPECT_TRUE(one.exclusive);
  EXPECT_TRUE(one.groups.empty());
  EXPECT_EQ(one.user_name, "fleetwatch-4000000");

  Result<JobIdentityLease> second = b.Acquire();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->identity().uid, 4000001u);
  Result<JobIdentityLease> none = b.Acquire();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("no free uid"), std::string::npos);

  struct stat st = {};
  ASSERT_EQ(::stat((locks_.path() / "uids").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((locks_.path() / "uids" / "4000000.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  first = Status(StatusCode::kInternal, "released");  // the lease ends: the uid is free again
  EXPECT_FALSE(fs::exists(locks_.path() / "uids" / "4000000.lock"));
  Result<JobIdentityLease> again = b.Acquire();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->identity().uid, 4000000u);
}

TEST_F(DynamicUidsTest, MovingALeaseKeepsTheLock) {
  JobUsers users(Policy(4000010, 4000010));
  Result<JobIdentityLease> lease = users.Acquire();
  ASSERT_TRUE(lease.ok());
  JobIdentityLease moved = std::move(lease).value();
  lease = Status(StatusCode::kInternal, "moved from");
  EXPECT_FALSE(JobUsers(Policy(4000010, 4000010)).Acquire().ok());
  moved = JobIdentityLease();
  EXPECT_TRUE(JobUsers(Policy(4000010, 4000010)).Acquire().ok());
}

TEST_F(DynamicUidsTest, SkipsUidsOfRunningProcesses) {
  testing::WriteFile(proc_.path() / "321" / "status", "Uid:\t4000020\t4000020\t4000020\t4000020\n");
  JobUsers users(Policy(4000020, 4000021));
  Result<JobIdentityLease> lease = users.Acquire();
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->identity().uid, 4000021u);
}

TEST_F(DynamicUidsTest, SkipsUidsWithAPasswdEntry) {
  passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user nobody here";
  JobUsers users(Policy(nobody->pw_uid, nobody->pw_uid));
  EXPECT_FALSE(users.Acquire().ok());
}

TEST(FixedJobUsers, AgentUserPolicyKeepsTheCallersCredentials) {
  JobUsers users(AgentUserPolicy{});
  Result<JobIdentityLease> lease = users.Acquire();
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->identity().uid, ::geteuid());
  EXPECT_EQ(lease->identity().gid, ::getegid());
  EXPECT_FALSE(lease->identity().switch_user);
  EXPECT_FALSE(lease->identity().exclusive);
  EXPECT_FALSE(lease->identity().user_name.empty());
}

}  // namespace
}  // namespace fleetwatch::agent
