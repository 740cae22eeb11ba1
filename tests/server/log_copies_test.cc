// The server's copies of ended jobs' logs: paths from the server's ids only, bounded bytes and
// requests whatever the agent answers, whole or nothing in the store (a real SQLite file), no
// file left behind; and the move of an older version's file copies into the store.
#include "server/log_copies.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "model/entities.h"
#include "store/sqlite_store.h"
#include "support/process.h"
#include "util/ids.h"

namespace fleetwatch::server {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::ReadFile;
using fleetwatch::testing::WriteFile;

constexpr char kJob[] = "0b9e2c1a-5f3d-4c8e-9a7b-1234567890ab";
constexpr char kOtherJob[] = "1b9e2c1a-5f3d-4c8e-9a7b-1234567890ab";

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
    job_ids.push_back(job_id);
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
  std::vector<std::string> job_ids;  // of each request
  bool missing = false;
  int fail_after = -1;        // fail every request after this many
  int64_t claimed_size = -1;  // the size it says the log has, when not its real one
  bool dribble = false;       // one byte per reply

 private:
  std::string log_;
};

class LogCopiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore((root_.path() / "data" / "fleetwatch.db").string());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
    model::User user{.id = NewId(), .name = "alice"};
    ASSERT_TRUE(store_->CreateUser(user, "hash").ok());
    model::Project project{.id = NewId(), .name = "main", .owner_id = user.id};
    ASSERT_TRUE(store_->CreateProject(project).ok());
    run_.id = NewId();
    run_.project_id = project.id;
    run_.user_id = user.id;
    run_.run_name = "train";
    run_.status = model::RunStatus::kDone;
    run_.configuration_json = "{}";
    for (const char* id : {kJob, kOtherJob}) {
      model::Job job;
      job.id = id;
      job.run_id = run_.id;
      job.job_num = static_cast<int>(run_.jobs.size());
      job.job_name = "train-" + std::to_string(job.job_num) + "-0";
      job.status = model::JobStatus::kDone;
      run_.jobs.push_back(job);
    }
    ASSERT_TRUE(store_->CreateRun(run_).ok());
  }

  LogCopies Copies(int64_t max_bytes = 1000, int64_t piece = 300) {
    return LogCopies(
        LogCopyOptions{dir_.string(), store_.get(), max_bytes, piece, std::chrono::seconds(60)});
  }

  // The job's stored copy, whole; nullopt when it has none.
  std::optional<std::string> Stored(const std::string& job_id = kJob) {
    auto read = store_->ReadJobLog(job_id, 0, int64_t{1} << 30);
    EXPECT_TRUE(read.ok()) << read.status().ToString();
    if (!read.ok() || !*read) return std::nullopt;
    EXPECT_EQ((*read)->size, static_cast<int64_t>((*read)->data.size()));
    return (*read)->data;
  }

  size_t FilesInDir() {
    return static_cast<size_t>(
        std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }

  testing::TempDir root_;
  const fs::path dir_ = root_.path() / "data" / "logs";
  std::unique_ptr<store::Store> store_;
  model::Run run_;
};

TEST_F(LogCopiesTest, AShortLogIsCopiedWholeIntoTheStoreAndNoFileStays) {
  FakeLogSource source(Log(700));
  ASSERT_TRUE(Copies().Copy(kJob, source).ok());
  EXPECT_EQ(Stored(), Log(700));
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);  // the staging directory
  EXPECT_EQ(FilesInDir(), 0u);
  EXPECT_EQ(source.job_ids, std::vector<std::string>(source.requests.size(), kJob));
  auto read = store_->ReadJobLog(kJob, 690, 100);
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->data, Log(700).substr(690));
  EXPECT_EQ((*read)->size, 700);
}

TEST_F(LogCopiesTest, ALogOfAnyBytesLargerThanAStoreChunkIsKeptExactly) {
  std::string bytes;
  for (int64_t i = 0; i < store::kJobLogChunkBytes * 2 + 999; ++i) {
    bytes.push_back(static_cast<char>(0x80 + i % 128));  // no valid UTF-8 anywhere
  }
  bytes[5] = '\0';
  FakeLogSource source(bytes);
  ASSERT_TRUE(Copies(int64_t{64} << 20, int64_t{1} << 20).Copy(kJob, source).ok());
  EXPECT_TRUE(Stored() == bytes);
  EXPECT_EQ(FilesInDir(), 0u);
}

TEST_F(LogCopiesTest, ALongLogKeepsItsTailUnderAMarker) {
  FakeLogSource source(Log(5000));
  ASSERT_TRUE(Copies(1000, 300).Copy(kJob, source).ok());
  const std::string marker = LogCopies::DroppedMarker(4000);
  EXPECT_EQ(marker,
            "[fleetwatch: the first 4000 bytes of this log were dropped; its end follows]\n");
  EXPECT_EQ(Stored(), marker + Log(5000).substr(4000));
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
  EXPECT_LE(Stored()->size(), 1000 + LogCopies::DroppedMarker(int64_t{1} << 50).size());
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
  }
  EXPECT_FALSE(fs::exists(root_.path() / "x.log"));
  EXPECT_FALSE(fs::exists(root_.path() / "x.log.tmp"));
  EXPECT_FALSE(fs::exists("/abs/path/x.log.tmp"));
}

TEST_F(LogCopiesTest, AFailedCopyLeavesTheEarlierCopyAndNoStagedFile) {
  FakeLogSource first(Log(100));
  ASSERT_TRUE(Copies().Copy(kJob, first).ok());
  FakeLogSource broken(Log(900));
  broken.fail_after = 1;
  EXPECT_EQ(Copies(1000, 300).Copy(kJob, broken).code(), StatusCode::kUnavailable);
  EXPECT_EQ(Stored(), Log(100));
  EXPECT_EQ(FilesInDir(), 0u);
}

TEST_F(LogCopiesTest, AJobWithoutALogGetsAnEmptyCopyButKeepsAnEarlierOne) {
  FakeLogSource gone("");
  gone.missing = true;
  ASSERT_TRUE(Copies().Copy(kJob, gone).ok());
  EXPECT_EQ(Stored(), "");
  EXPECT_EQ(Stored(kOtherJob), std::nullopt);
  // An agent that forgot the job (acknowledged through another replica, or restarted) does not
  // empty the copy already kept.
  FakeLogSource first(Log(100));
  ASSERT_TRUE(Copies().Copy(kOtherJob, first).ok());
  ASSERT_TRUE(Copies().Copy(kOtherJob, gone).ok());
  EXPECT_EQ(Stored(kOtherJob), Log(100));
}

TEST_F(LogCopiesTest, TheLogOfADeletedRunsJobIsNotKept) {
  ASSERT_TRUE(store_->DeleteRun(run_.id).ok());
  FakeLogSource source(Log(100));
  ASSERT_TRUE(Copies().Copy(kJob, source).ok());  // nothing to keep is no failure
  EXPECT_EQ(Stored(), std::nullopt);
  FakeLogSource unknown(Log(100));
  ASSERT_TRUE(Copies().Copy("2b9e2c1a-5f3d-4c8e-9a7b-1234567890ab", unknown).ok());
  EXPECT_EQ(FilesInDir(), 0u);
}

TEST_F(LogCopiesTest, AStaleStagedFileOrAPlantedLinkIsNotFollowed) {
  fs::create_directories(dir_);
  const fs::path target = root_.path() / "elsewhere";
  fs::create_symlink(target, dir_ / (std::string(kJob) + ".log.tmp"));
  FakeLogSource source(Log(10));
  ASSERT_TRUE(Copies().Copy(kJob, source).ok());
  EXPECT_FALSE(fs::exists(target));
  EXPECT_EQ(Stored(), Log(10));
}

TEST_F(LogCopiesTest, FileCopiesOfAnOlderVersionMoveIntoTheStoreOnce) {
  fs::create_directories(dir_);
  std::string binary = Log(store::kJobLogChunkBytes + 3);
  binary[1] = '\xff';
  WriteFile(dir_ / (std::string(kJob) + ".log"), binary);
  // A job that has a stored copy already keeps it; a job the database does not know is dropped.
  FakeLogSource newer(Log(20));
  ASSERT_TRUE(Copies().Copy(kOtherJob, newer).ok());
  WriteFile(dir_ / (std::string(kOtherJob) + ".log"), "older\n");
  WriteFile(dir_ / "2b9e2c1a-5f3d-4c8e-9a7b-1234567890ab.log", "of a gone job\n");
  WriteFile(dir_ / (std::string(kJob) + ".log.tmp"), "cut off by a crash");
  WriteFile(dir_ / "notes.txt", "not ours");
  WriteFile(dir_ / "not a job id.log", "not ours either");

  Result<LogCopies::MoveReport> report = Copies().MoveFileCopiesIntoStore();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->moved, 2);
  EXPECT_EQ(report->dropped, 1);
  EXPECT_EQ(report->failed, 0) << report->first_error;
  EXPECT_TRUE(Stored() == binary);
  EXPECT_EQ(Stored(kOtherJob), Log(20));
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    left.push_back(entry.path().filename().string());
  }
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"not a job id.log", "notes.txt"}));

  report = Copies().MoveFileCopiesIntoStore();  // nothing left to move
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->moved + report->dropped + report->failed, 0);
  EXPECT_TRUE(Stored() == binary);
}

}  // namespace
}  // namespace fleetwatch::server
