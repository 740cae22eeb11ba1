// The server's copies of ended jobs' logs: paths from the server's ids only, bounded bytes and
// requests whatever the agent answers, whole or nothing on disk.
#include "server/log_copies.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"

namespace fleetwatch::server {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::ReadFile;

constexpr char kJob[] = "0b9e2c1a-5f3d-4c8e-9a7b-1234567890ab";

std::string Log(int64_t size) {
  std::string log;
  for (int64_t i = 0; i < size; ++i) log.push_back(static_cast<char>('a' + i % 26));
  return log;
}

// Serves `log` as an honest agent would, or as told otherwise; records the requests.
class FakeLogSource : public AgentLogSource {
 public:
  explicit FakeLogSource(std::string log) : log_(std::move(log)) {}

  Result<LogChunk> Read(const std::string& job_id, int64_t offset, int64_t limit) override {
    requests.push_back({offset, limit});
    EXPECT_EQ(job_id, kJob);
    if (missing) return NotFound("no such job");
    if (fail_after >= 0 && static_cast<int>(requests.size()) > fail_after) {
      return Unavailable("connection reset");
    }
    int64_t size = claimed_size >= 0 ? claimed_size : static_cast<int64_t>(log_.size());
    int64_t n = std::min<int64_t>(limit, static_cast<int64_t>(log_.size()) - offset);
    if (dribble) n = std::min<int64_t>(n, 1);
    std::string data = offset < static_cast<int64_t>(log_.size())
                           ? log_.substr(static_cast<size_t>(offset), static_cast<size_t>(n))
                           : std::string();
    return LogChunk{std::move(data), size};
  }

  std::vector<std::pair<int64_t, int64_t>> requests;
  bool missing = false;
  int fail_after = -1;        // fail every request after this many
  int64_t claimed_size = -1;  // the size it says the log has, when not its real one
  bool dribble = false;       // one byte per reply

 private:
  std::string log_;
};

class LogCopiesTest : public ::testing::Test {
 protected:
  LogCopies Copies(int64_t max_bytes = 1000, int64_t piece = 300) {
    return LogCopies(LogCopyOptions{dir_.string(), max_bytes, piece, std::chrono::seconds(60)});
  }

  testing::TempDir root_;
  const fs::path dir_ = root_.path() / "data" / "logs";
};

TEST_F(LogCopiesTest, AShortLogIsCopiedWholeAndPrivate) {
  FakeLogSource source(Log(700));
  ASSERT_TRUE(Copies().Copy(kJob, source).ok());
  const fs::path copy = dir_ / (std::string(kJob) + ".log");
  EXPECT_EQ(ReadFile(copy), Log(700));
  struct stat st {};
  ASSERT_EQ(::stat(copy.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
  std::optional<LogChunk> read = Copies().Read(kJob, 690, 100);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->data, Log(700).substr(690));
  EXPECT_EQ(read->size, 700);
}

TEST_F(LogCopiesTest, ALongLogKeepsItsTailUnderAMarker) {
  FakeLogSource source(Log(5000));
  ASSERT_TRUE(Copies(1000, 300).Copy(kJob, source).ok());
  std::string copy = ReadFile(dir_ / (std::string(kJob) + ".log"));
  const std::string marker = LogCopies::DroppedMarker(4000);
  EXPECT_EQ(marker,
            "[fleetwatch: the first 4000 bytes of this log were dropped; its end follows]\n");
  EXPECT_EQ(copy, marker + Log(5000).substr(4000));
  // The size from the first reply, then the tail only.
  ASSERT_GE(source.requests.size(), 2u);
  EXPECT_EQ(source.requests[1].first, 4000);
  EXPECT_LE(source.requests.size(), 1000u / 300 + 2);
}

TEST_F(LogCopiesTest, AHostileAgentCannotMakeItReadOrWriteMore) {
  FakeLogSource liar(Log(5000));
  liar.claimed_size = int64_t{1} << 50;  // "my log is a petabyte"
  liar.dribble = true;                   // and one byte at a time
  ASSERT_TRUE(Copies(1000, 300).Copy(kJob, liar).ok());
  EXPECT_LE(liar.requests.size(), 1000u / 300 + 2);
  EXPECT_LE(fs::file_size(dir_ / (std::string(kJob) + ".log")),
            1000 + LogCopies::DroppedMarker(int64_t{1} << 50).size());
  FakeLogSource dribbler(Log(5000));
  dribbler.dribble = true;
  ASSERT_TRUE(Copies(1000, 300).Copy(kJob, dribbler).ok());
  EXPECT_LE(dribbler.requests.size(), 1000u / 300 + 2);
}

TEST_F(LogCopiesTest, IdsThatAreNotJobIdsNameNoFile) {
  for (const char* id : {"../../x", "/abs/path/x", "..", "", "a/b", "x.log"}) {
    FakeLogSource source(Log(10));
    EXPECT_EQ(Copies().Copy(id, source).code(), StatusCode::kInvalidArgument) << id;
    EXPECT_TRUE(source.requests.empty());
    EXPECT_FALSE(Copies().Read(id, 0, 10).has_value()) << id;
  }
  EXPECT_FALSE(fs::exists(root_.path() / "x.log"));
  EXPECT_FALSE(fs::exists("/abs/path/x.log"));
}

TEST_F(LogCopiesTest, AFailedCopyLeavesTheEarlierCopyAndNoTempFile) {
  FakeLogSource first(Log(100));
  ASSERT_TRUE(Copies().Copy(kJob, first).ok());
  FakeLogSource broken(Log(900));
  broken.fail_after = 1;
  EXPECT_EQ(Copies(1000, 300).Copy(kJob, broken).code(), StatusCode::kUnavailable);
  EXPECT_EQ(ReadFile(dir_ / (std::string(kJob) + ".log")), Log(100));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(LogCopiesTest, AJobWithoutALogGetsAnEmptyCopy) {
  FakeLogSource gone("");
  gone.missing = true;
  ASSERT_TRUE(Copies().Copy(kJob, gone).ok());
  std::optional<LogChunk> read = Copies().Read(kJob, 0, 10);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->size, 0);
  EXPECT_FALSE(Copies().Read("1b9e2c1a-5f3d-4c8e-9a7b-1234567890ab", 0, 10).has_value());
}

TEST_F(LogCopiesTest, AStaleTempFileOrAPlantedLinkIsNotFollowed) {
  fs::create_directories(dir_);
  const fs::path target = root_.path() / "elsewhere";
  fs::create_symlink(target, dir_ / (std::string(kJob) + ".log.tmp"));
  FakeLogSource source(Log(10));
  ASSERT_TRUE(Copies().Copy(kJob, source).ok());
  EXPECT_FALSE(fs::exists(target));
  EXPECT_EQ(ReadFile(dir_ / (std::string(kJob) + ".log")), Log(10));
}

}  // namespace
}  // namespace fleetwatch::server
