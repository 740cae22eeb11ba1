#include "util/data_dir_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "support/process.h"

namespace fleetwatch {
namespace {

using testing::TempDir;

std::string ReadText(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DataDirLock, TheHolderRecordsItsPidAndASecondClaimIsRefusedNamingIt) {
  TempDir dir;
  Result<DataDirLock> first = DataDirLock::Acquire(dir.path(), "server");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::filesystem::path file = dir.path() / DataDirLock::kFileName;
  EXPECT_EQ(ReadText(file), std::to_string(::getpid()) + "\n");
  EXPECT_EQ(DataDirLock::Holder(dir.path()), ::getpid());

  // flock locks belong to open files: a second open in this process is refused like another
  // process would be.
  Result<DataDirLock> second = DataDirLock::Acquire(dir.path(), "server");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(), "another fleetwatch server (pid " +
                                           std::to_string(::getpid()) + ") uses " +
                                           dir.path().string());
  EXPECT_EQ(ReadText(file), std::to_string(::getpid()) + "\n");  // untouched
}

TEST(DataDirLock, ReleasedWhenDestroyed) {
  TempDir dir;
  {
    Result<DataDirLock> first = DataDirLock::Acquire(dir.path(), "agent");
    ASSERT_TRUE(first.ok());
  }
  EXPECT_EQ(DataDirLock::Holder(dir.path()), std::nullopt);
  EXPECT_TRUE(DataDirLock::Acquire(dir.path(), "agent").ok());
}

TEST(DataDirLock, ALockOfADeadProcessIsFree) {
  TempDir dir;
  pid_t child = ::fork();
  if (child == 0) {
    Result<DataDirLock> held = DataDirLock::Acquire(dir.path(), "agent");
    _exit(held.ok() ? 0 : 1);  // exits holding it: the kernel drops it
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(ReadText(dir.path() / DataDirLock::kFileName), std::to_string(child) + "\n");
  EXPECT_EQ(DataDirLock::Holder(dir.path()), std::nullopt);
  EXPECT_TRUE(DataDirLock::Acquire(dir.path(), "agent").ok());
}

TEST(DataDirLock, AMissingDirectoryIsAnError) {
  TempDir dir;
  Result<DataDirLock> lock = DataDirLock::Acquire(dir.path() / "missing", "server");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(DataDirLock::Holder(dir.path() / "missing"), std::nullopt);
}

}  // namespace
}  // namespace fleetwatch
