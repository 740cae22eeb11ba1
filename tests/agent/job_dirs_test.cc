// Job directories: a jobs root job users can traverse, one 0700 directory per job owned by its
// uid, removed without ever following a symlink the job planted.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/job_dirs.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::TempDir;

struct stat StatOf(const fs::path& path) {
  struct stat st = {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

TEST(JobsRoot, IsCreatedAndAsRootMade0711) {
  TempDir dir;
  fs::path root = dir.path() / "jobs";
  const bool is_root = ::geteuid() == 0;
  ASSERT_TRUE(PrepareJobsRoot(root, is_root, false).ok());
  EXPECT_EQ(StatOf(root).st_mode & 07777, is_root ? 0711u : 0700u);
}

TEST(JobsRoot, AnAncestorOthersCannotSearchIsRefusedByName) {
  TempDir dir;  // 0700
  ::chmod(dir.path().c_str(), 0700);
  fs::path root = dir.path() / "jobs";
  Status s = PrepareJobsRoot(root, ::geteuid() == 0, true);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(dir.str() + " is mode 0700"), std::string::npos) << s.message();
  ::chmod(dir.path().c_str(), 0711);
  EXPECT_TRUE(PrepareJobsRoot(root, ::geteuid() == 0, true).ok());
}

TEST(JobsRoot, ASymlinkIsRefused) {
  TempDir dir;
  fs::create_directories(dir.path() / "real");
  fs::create_symlink(dir.path() / "real", dir.path() / "link");
  Status s = PrepareJobsRoot(dir.path() / "link", ::geteuid() == 0, false);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("symlink"), std::string::npos) << s.message();
}

TEST(JobDirectory, Is0700AndOwnedByTheJobsUid) {
  TempDir dir;
  const uid_t uid = ::geteuid() == 0 ? 4000100 : ::geteuid();
  const gid_t gid = ::geteuid() == 0 ? 4000100 : ::getegid();
  Result<fs::path> job = CreateJobDirectory(dir.path(), "job-1", uid, gid);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(*job, dir.path() / "job-1");
  struct stat st = StatOf(*job);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, uid);
  EXPECT_EQ(st.st_gid, gid);
  EXPECT_EQ(CreateJobDirectory(dir.path(), "../x", uid, gid).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(JobDirectory, ALeftoverOfAnEarlierAgentIsReplaced) {
  TempDir dir;
  testing::WriteFile(dir.path() / "job-2" / "old" / "file", "old");
  ASSERT_TRUE(CreateJobDirectory(dir.path(), "job-2", ::geteuid(), ::getegid()).ok());
  EXPECT_TRUE(fs::is_empty(dir.path() / "job-2"));
}

TEST(JobDirectory, RemovalFollowsNoSymlinkTheJobPlanted) {
  TempDir outside;
  testing::WriteFile(outside.path() / "precious" / "file", "keep");
  testing::WriteFile(outside.path() / "alone", "keep");
  TempDir root;
  fs::path job = root.path() / "job-3";
  testing::WriteFile(job / "a" / "b" / "data", "x");
  fs::create_symlink(outside.path() / "precious", job / "dirlink");
  fs::create_symlink(outside.path() / "alone", job / "a" / "filelink");
  fs::create_symlink(outside.path() / "precious", job / "a" / "b" / "deeper");
  ASSERT_TRUE(RemoveJobDirectory(root.path(), "job-3").ok());
  EXPECT_FALSE(fs::exists(fs::symlink_status(job)));
  EXPECT_EQ(testing::ReadFile(outside.path() / "precious" / "file"), "keep");
  EXPECT_EQ(testing::ReadFile(outside.path() / "alone"), "keep");
  EXPECT_TRUE(RemoveJobDirectory(root.path(), "job-3").ok());  // nothing there: fine
}

TEST(JobDirectory, TheJobDirectoryItselfAsASymlinkIsRemovedNotFollowed) {
  TempDir outside;
  testing::WriteFile(outside.path() / "file", "keep");
  TempDir root;
  fs::create_symlink(outside.path(), root.path() / "job-4");
  ASSERT_TRUE(RemoveJobDirectory(root.path(), "job-4").ok());
  EXPECT_FALSE(fs::exists(fs::symlink_status(root.path() / "job-4")));
  EXPECT_EQ(testing::ReadFile(outside.path() / "file"), "keep");
}

TEST(JobDirectory, ATreeTooDeepIsLeftOutOfTheJobsReach) {
  TempDir root;
  const uid_t uid = ::geteuid() == 0 ? 4000101 : ::geteuid();
  ASSERT_TRUE(CreateJobDirectory(root.path(), "job-5", uid, uid).ok());
  int fd = ::open((root.path() / "job-5").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 600; ++i) {
    ASSERT_EQ(::mkdirat(fd, "d", 0700), 0);
    int next = ::openat(fd, "d", O_RDONLY | O_DIRECTORY);
    ::close(fd);
    fd = next;
    ASSERT_GE(fd, 0);
  }
  ::close(fd);
  Status s = RemoveJobDirectory(root.path(), "job-5");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  struct stat st = StatOf(root.path() / "job-5");
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

}  // namespace
}  // namespace fleetwatch::agent
