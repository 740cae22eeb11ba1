// The modes of what the agent keeps: 0700 directories, files 0600 from their creation.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/file_modes.h"
#include "agent/test_helpers.h"
#include "support/process.h"
#include "util/private_file.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::ModeOf;
using fleetwatch::testing::TempDir;

// Sets the umask for the scope's lifetime.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST(FileModes, ModeTextIsFourOctalDigits) {
  EXPECT_EQ(ModeText(040700), "0700");
  EXPECT_EQ(ModeText(0100644), "0644");
  EXPECT_EQ(ModeText(01777), "1777");
}

TEST(FileModes, CreateDirectoriesGivesParentsAndLeafTheirModesWhateverTheUmask) {
  ScopedUmask umask(077);
  TempDir dir;
  fs::path leaf = dir.path() / "a" / "b" / "c";
  ASSERT_TRUE(CreateDirectories(leaf, 0711).ok());
  EXPECT_EQ(ModeOf(dir.path() / "a"), 0755u);
  EXPECT_EQ(ModeOf(dir.path() / "a" / "b"), 0755u);
  EXPECT_EQ(ModeOf(leaf), 0711u);
  ::chmod((dir.path() / "a").c_str(), 0750);
  ASSERT_TRUE(CreateDirectories(leaf, 0700).ok());  // existing ones are left alone
  EXPECT_EQ(ModeOf(dir.path() / "a"), 0750u);
  EXPECT_EQ(ModeOf(leaf), 0711u);
}

TEST(FileModes, PrivateDirectoryIsTightenedTo0700) {
  TempDir dir;
  fs::path data = dir.path() / "data";
  ASSERT_TRUE(EnsurePrivateDirectory(data).ok());
  EXPECT_EQ(ModeOf(data), 0700u);
  ::chmod(data.c_str(), 0755);
  ASSERT_TRUE(EnsurePrivateDirectory(data).ok());
  EXPECT_EQ(ModeOf(data), 0700u);
}

TEST(FileModes, ASharedDirectoryIsNeverTakenAsPrivate) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 01777);
  Status s = EnsurePrivateDirectory(dir.path());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("shared directory"), std::string::npos) << s.message();
  EXPECT_EQ(ModeOf(dir.path()), 01777u);
  EXPECT_FALSE(EnsurePrivateDirectory("/tmp").ok());
}

TEST(FileModes, PrivateFilesAre0600AndReplacedWhole) {
  ScopedUmask umask(0);  // the mode must not depend on the umask
  TempDir dir;
  fs::path file = dir.path() / "agent.json";
  ASSERT_TRUE(WritePrivateFileAtomically(file, "{\"a\":1}\n").ok());
  EXPECT_EQ(testing::ReadFile(file), "{\"a\":1}\n");
  EXPECT_EQ(ModeOf(file), 0600u);
  ::chmod(file.c_str(), 0644);
  ASSERT_TRUE(WritePrivateFileAtomically(file, "{}\n").ok());
  EXPECT_EQ(testing::ReadFile(file), "{}\n");
  EXPECT_EQ(ModeOf(file), 0600u);
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1);  // no temporary file left
}

TEST(FileModes, APlantedSymlinkIsNotWrittenThrough) {
  TempDir dir;
  fs::path target = dir.path() / "target";
  testing::WriteFile(target, "keep");
  fs::path file = dir.path() / "state";
  fs::create_symlink(target, fs::path(file.string() + ".tmp." + std::to_string(::getpid())));
  ASSERT_TRUE(WritePrivateFileAtomically(file, "new").ok());
  EXPECT_EQ(testing::ReadFile(target), "keep");
  EXPECT_EQ(testing::ReadFile(file), "new");
}

}  // namespace
}  // namespace fleetwatch::agent
