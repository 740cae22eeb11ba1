// The store contract on ended jobs' logs (store.h "logs of ended jobs") and on the API's
// conditional delete, run on every implementation with the rest of the contract.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "store/store.h"
#include "store/store_contract.h"

namespace fleetwatch::store {
namespace {

// Every byte value, NULs and bytes that are not UTF-8 included, in a pattern that differs per
// offset: a misplaced chunk shows.
std::string AnyBytes(int64_t size) {
  std::string bytes;
  bytes.reserve(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) bytes.push_back(static_cast<char>((i * 7 + i / 251) % 256));
  return bytes;
}

// A log from memory; records how much it was asked for at once.
class StringReader : public JobLogReader {
 public:
  explicit StringReader(std::string log) : log_(std::move(log)) {}
  int64_t size() const override { return static_cast<int64_t>(log_.size()); }
  Result<std::string> Read(int64_t offset, int64_t length) override {
    largest_read = std::max(largest_read, length);
    if (fail_at >= 0 && offset >= fail_at) return Unavailable("the source broke");
    if (short_at >= 0 && offset >= short_at) return log_.substr(static_cast<size_t>(offset), 1);
    return log_.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  }
  int64_t largest_read = 0;
  int64_t fail_at = -1;   // fail the reads from this offset on
  int64_t short_at = -1;  // give one byte only from this offset on

 private:
  std::string log_;
};

std::optional<JobLogPart> ReadLog(Store& store, const std::string& job_id, int64_t offset,
                                  int64_t limit) {
  Result<std::optional<JobLogPart>> read = store.ReadJobLog(job_id, offset, limit);
  EXPECT_TRUE(read.ok()) << read.status().ToString();
  return read.ok() ? *read : std::nullopt;
}

TEST_P(StoreContract, AJobLogOfAnyBytesIsStoredInChunksAndReadBackAtAnyOffset) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  const std::string& job = run.jobs[0].id;
  EXPECT_FALSE(ReadLog(*store_, job, 0, 100).has_value());  // none stored yet

  const int64_t size = 2 * kJobLogChunkBytes + 12345;
  const std::string log = AnyBytes(size);
  StringReader reader(log);
  ASSERT_TRUE(store_->PutJobLog(job, reader, /*replace=*/true).ok());
  EXPECT_LE(reader.largest_read, kJobLogChunkBytes);  // streamed, one chunk at a time
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_log_chunks WHERE job_id = '" + job + "'"),
            3);

  std::optional<JobLogPart> whole = ReadLog(*store_, job, 0, size);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(whole->size, size);
  EXPECT_TRUE(whole->data == log);
  // Pieces that start and end inside chunks and across their boundaries.
  for (int64_t offset : {int64_t{0}, int64_t{1}, kJobLogChunkBytes - 3, kJobLogChunkBytes,
                         2 * kJobLogChunkBytes + 5, size - 1}) {
    for (int64_t limit : {int64_t{1}, int64_t{10}, kJobLogChunkBytes + 7, int64_t{1} << 20}) {
      std::optional<JobLogPart> part = ReadLog(*store_, job, offset, limit);
      ASSERT_TRUE(part.has_value());
      EXPECT_EQ(part->size, size);
      EXPECT_TRUE(part->data == log.substr(static_cast<size_t>(offset), static_cast<size_t>(limit)))
          << offset << "+" << limit;
    }
  }
  // At and past the end: nothing, and the size.
  for (int64_t offset : {size, size + 100}) {
    std::optional<JobLogPart> past = ReadLog(*store_, job, offset, 10);
    ASSERT_TRUE(past.has_value());
    EXPECT_TRUE(past->data.empty());
    EXPECT_EQ(past->size, size);
  }
  // A second connection (another replica) reads the same bytes.
  auto other = factory_->Open();
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  std::optional<JobLogPart> elsewhere = ReadLog(**other, job, kJobLogChunkBytes - 1, 3);
  ASSERT_TRUE(elsewhere.has_value());
  EXPECT_TRUE(elsewhere->data == log.substr(static_cast<size_t>(kJobLogChunkBytes - 1), 3));
}

TEST_P(StoreContract, AJobLogIsReplacedOrKeptAsAsked) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  const std::string& job = run.jobs[0].id;
  const std::string longer = AnyBytes(kJobLogChunkBytes + 1);
  StringReader first(longer);
  ASSERT_TRUE(store_->PutJobLog(job, first, true).ok());

  StringReader empty("");
  ASSERT_TRUE(store_->PutJobLog(job, empty, /*replace=*/false).ok());
  EXPECT_TRUE(ReadLog(*store_, job, 0, 1 << 20)->data == longer);

  StringReader shorter("short and sweet\n");
  ASSERT_TRUE(store_->PutJobLog(job, shorter, /*replace=*/true).ok());
  std::optional<JobLogPart> read = ReadLog(*store_, job, 0, 1 << 20);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->data, "short and sweet\n");
  EXPECT_EQ(read->size, 16);
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_log_chunks"), 1);  // none left over

  ASSERT_TRUE(store_->PutJobLog(job, empty, /*replace=*/true).ok());
  read = ReadLog(*store_, job, 0, 10);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->size, 0);
  EXPECT_TRUE(read->data.empty());
}

TEST_P(StoreContract, AJobLogThatCannotBeStoredIsNeverSeenInPart) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  const std::string& job = run.jobs[0].id;
  StringReader kept("kept\n");
  ASSERT_TRUE(store_->PutJobLog(job, kept, true).ok());

  // A copy that would not replace the stored log reads nothing and keeps it.
  StringReader unread(AnyBytes(3 * kJobLogChunkBytes));
  unread.fail_at = 0;
  EXPECT_TRUE(store_->PutJobLog(job, unread, /*replace=*/false).ok());
  EXPECT_EQ(ReadLog(*store_, job, 0, 100)->data, "kept\n");

  // A replacement whose source fails half way leaves no log to read, never a part of one.
  StringReader broken(AnyBytes(3 * kJobLogChunkBytes));
  broken.fail_at = 2 * kJobLogChunkBytes;
  EXPECT_EQ(store_->PutJobLog(job, broken, true).code(), StatusCode::kUnavailable);
  EXPECT_FALSE(ReadLog(*store_, job, 0, 100).has_value());
  StringReader liar(AnyBytes(3 * kJobLogChunkBytes));
  liar.short_at = kJobLogChunkBytes;
  EXPECT_EQ(store_->PutJobLog(job, liar, true).code(), StatusCode::kInternal);
  EXPECT_FALSE(ReadLog(*store_, job, 0, 100).has_value());
  // The next copy, even one that would not replace a stored log, writes it whole.
  const std::string log = AnyBytes(3 * kJobLogChunkBytes);
  StringReader whole(log);
  ASSERT_TRUE(store_->PutJobLog(job, whole, /*replace=*/false).ok());
  EXPECT_EQ(ReadLog(*store_, job, 0, 3 * kJobLogChunkBytes)->data, log);
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_log_chunks"), 3);

  StringReader any("x");
  EXPECT_EQ(store_->PutJobLog(NewId(), any, true).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ReadJobLog(job, -1, 10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ReadJobLog(job, 0, -1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_logs"), 1);
}

// A source that runs `between` before it gives the second chunk: other store calls in the middle
// of a PutJobLog.
class InterruptedReader : public StringReader {
 public:
  InterruptedReader(std::string log, std::function<void()> between)
      : StringReader(std::move(log)), between_(std::move(between)) {}
  Result<std::string> Read(int64_t offset, int64_t length) override {
    if (offset == kJobLogChunkBytes && between_) std::exchange(between_, nullptr)();
    return StringReader::Read(offset, length);
  }

 private:
  std::function<void()> between_;
};

TEST_P(StoreContract, AJobLogIsWrittenAChunkPerTransactionAndReadOnlyOnceComplete) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  const std::string& job = run.jobs[0].id;
  const std::string log = AnyBytes(3 * kJobLogChunkBytes);

  // Between two chunks the store serves other calls, and the log is not there yet.
  bool ran_between = false;
  InterruptedReader reader(log, [&] {
    ran_between = true;
    EXPECT_FALSE(ReadLog(*store_, job, 0, 10).has_value());
    EXPECT_TRUE(store_->ListUsers().ok());
  });
  ASSERT_TRUE(store_->PutJobLog(job, reader, true).ok());
  EXPECT_TRUE(ran_between);
  EXPECT_EQ(ReadLog(*store_, job, 0, 3 * kJobLogChunkBytes)->data, log);

  // A write that another replaces while it writes gives way: the other's log is the one kept.
  const std::string other = AnyBytes(kJobLogChunkBytes + 7).substr(3);
  InterruptedReader replaced(log, [&] {
    StringReader newer(other);
    EXPECT_TRUE(store_->PutJobLog(job, newer, true).ok());
  });
  EXPECT_EQ(store_->PutJobLog(job, replaced, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadLog(*store_, job, 0, 3 * kJobLogChunkBytes)->data, other);

  // A run deleted while its log is written keeps none.
  InterruptedReader deleted(log, [&] { EXPECT_TRUE(store_->DeleteRun(run.id).ok()); });
  EXPECT_EQ(store_->PutJobLog(job, deleted, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_logs"), 0);
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_log_chunks"), 0);
}

TEST_P(StoreContract, DeletingARunDeletesItsLogsAndADeletedRunGetsNone) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kDone, 2);
  model::Run other = MakeRun(project_, owner_, "other", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  ASSERT_TRUE(store_->CreateRun(other).ok());
  for (const model::Job& job : {run.jobs[0], run.jobs[1], other.jobs[0]}) {
    StringReader log(AnyBytes(kJobLogChunkBytes + 10));
    ASSERT_TRUE(store_->PutJobLog(job.id, log, true).ok());
  }
  ASSERT_TRUE(store_->DeleteRun(run.id).ok());
  EXPECT_FALSE(ReadLog(*store_, run.jobs[0].id, 0, 10).has_value());
  EXPECT_FALSE(ReadLog(*store_, run.jobs[1].id, 0, 10).has_value());
  EXPECT_TRUE(ReadLog(*store_, other.jobs[0].id, 0, 10).has_value());
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_log_chunks"), 2);
  // A copy that arrives after the delete keeps nothing.
  StringReader late("late\n");
  EXPECT_EQ(store_->PutJobLog(run.jobs[0].id, late, true).code(), StatusCode::kNotFound);
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_logs"), 1);

  // A resubmission deletes the finished run of its name, and its logs.
  model::Run again = MakeRun(project_, owner_, "other", 200);
  ASSERT_TRUE(store_->CreateRun(again).ok());
  EXPECT_FALSE(ReadLog(*store_, other.jobs[0].id, 0, 10).has_value());
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_log_chunks"), 0);
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM job_logs"), 0);
}

TEST_P(StoreContract, DeleteRunIfCurrentAppliesOnlyOnTheVersionRead) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  model::Run read = store_->GetRunById(run.id).value();
  // Another writer changes the run after it was read.
  model::Run changed = read;
  changed.jobs[0].status_detail = "changed elsewhere";
  ASSERT_TRUE(store_->UpdateRunIfCurrent(changed, {}).ok());
  EXPECT_EQ(store_->DeleteRunIfCurrent(read).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_->GetRun(project_.id, "train").ok());

  model::Run current = store_->GetRunById(run.id).value();
  EXPECT_EQ(current.row_version, read.row_version + 1);
  ASSERT_TRUE(store_->DeleteRunIfCurrent(current).ok());
  EXPECT_EQ(store_->GetRun(project_.id, "train").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(
      store_->DeleteRunIfCurrent(MakeRun(project_, owner_, "gone", 1, RunStatus::kDone)).code(),
      StatusCode::kNotFound);
  model::Run active = MakeRun(project_, owner_, "active", 100, RunStatus::kRunning);
  ASSERT_TRUE(store_->CreateRun(active).ok());
  EXPECT_EQ(store_->DeleteRunIfCurrent(store_->GetRunById(active.id).value()).code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace fleetwatch::store
