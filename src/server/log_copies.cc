#include "server/log_copies.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

#include "model/names.h"

namespace fleetwatch::server {
namespace {

namespace fs = std::filesystem;

Status DiskError(const std::string& what, const fs::path& path) {
  return Internal(what + " " + path.string() + ": " + std::strerror(errno));
}

// An open file descriptor, closed on destruction.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(-1); }
  int get() const { return fd_; }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Reads a file's bytes for Store::PutJobLog; the file stays open (and unchanged) meanwhile.
class FileLogReader : public store::JobLogReader {
 public:
  FileLogReader(int fd, int64_t size, fs::path path)
      : fd_(fd), size_(size), path_(std::move(path)) {}
  int64_t size() const override { return size_; }
  Result<std::string> Read(int64_t offset, int64_t length) override {
    std::string data(static_cast<size_t>(length), '\0');
    size_t got = 0;
    while (got < data.size()) {
      ssize_t n = ::pread(fd_, data.data() + got, data.size() - got,
                          static_cast<off_t>(offset + static_cast<int64_t>(got)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return DiskError("cannot read", path_);
      if (n == 0) return Internal("cannot read " + path_.string() + ": it is shorter than before");
      got += static_cast<size_t>(n);
    }
    return data;
  }

 private:
  const int fd_;
  const int64_t size_;
  const fs::path path_;
};

// A staging file, created 0600 before anything is written and removed on destruction.
class StagedCopy {
 public:
  explicit StagedCopy(fs::path path) : path_(std::move(path)) {}
  StagedCopy(const StagedCopy&) = delete;
  StagedCopy& operator=(const StagedCopy&) = delete;
  ~StagedCopy() {
    if (opened_) ::unlink(path_.c_str());
  }

  Status Open() {
    // A staging file left by a crash would make O_EXCL fail; one copy per job runs at a time.
    // O_EXCL also refuses a symbolic link planted in its place.
    ::unlink(path_.c_str());
    fd_.Reset(::open(path_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd_.get() < 0) return DiskError("cannot create", path_);
    opened_ = true;
    return Status::Ok();
  }

  Status Write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_.get(), data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return DiskError("cannot write", path_);
      data.remove_prefix(static_cast<size_t>(n));
      written_ += n;
    }
    return Status::Ok();
  }

  // Stores what was written as the job's log, then removes the file. `replace` as
  // Store::PutJobLog's; a job that is gone (or whose run was deleted) needs no copy.
  Status Keep(store::Store& target, const std::string& job_id, bool replace) {
    FileLogReader reader(fd_.get(), written_, path_);
    Status stored = target.PutJobLog(job_id, reader, replace);
    if (!stored.ok() && stored.code() != StatusCode::kNotFound) return stored;
    fd_.Reset(-1);
    ::unlink(path_.c_str());
    opened_ = false;
    return Status::Ok();
  }

 private:
  fs::path path_;
  Fd fd_;
  int64_t written_ = 0;
  bool opened_ = false;
};

Status EnsureDir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::Ok();
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return DiskError("cannot create", dir);
  return Status::Ok();
}

}  // namespace

std::string LogCopies::DroppedMarker(int64_t dropped_bytes) {
  return "[fleetwatch: the first " + std::to_string(dropped_bytes) +
         " bytes of this log were dropped; its end follows]\n";
}

struct LogCopy::State {
  explicit State(fs::path staged) : copy(std::move(staged)) {}
  StagedCopy copy;
  store::Store* store = nullptr;
  std::string job_id;
  bool missing = false;  // the agent has no such job: an empty copy that replaces nothing
  bool first = true;     // the first piece is not in yet
  bool done = false;     // nothing more to fetch
  std::chrono::steady_clock::time_point deadline;
  int64_t piece = 1;
  int64_t max_bytes = 0;
  std::chrono::seconds deadline_length{0};
  int64_t end = 0;           // the log's size, as its first piece said
  int64_t offset = 0;        // of the next piece
  int64_t kept = 0;          // bytes of the log written
  bool short_piece = false;  // the agent served less than asked for: the log has no more
  int requests_left = 0;
};

LogCopy::LogCopy(std::unique_ptr<State> state) : state_(std::move(state)) {}
LogCopy::~LogCopy() = default;

std::optional<LogCopy::Piece> LogCopy::Next() const {
  const State& s = *state_;
  if (s.done) return std::nullopt;
  if (s.first) return Piece{0, s.piece};
  if (s.short_piece || s.offset >= s.end || s.kept >= s.max_bytes || s.requests_left <= 0) {
    return std::nullopt;
  }
  return Piece{s.offset, std::min({s.piece, s.end - s.offset, s.max_bytes - s.kept})};
}

Status LogCopy::Feed(Result<LogChunk> chunk) {
  State& s = *state_;
  std::optional<Piece> asked = Next();
  if (!asked) return FailedPrecondition("no piece of the log was asked for");
  if (s.first) {
    s.first = false;
    if (!chunk.ok() && chunk.status().code() != StatusCode::kNotFound) return chunk.status();
    FW_RETURN_IF_ERROR(s.copy.Open());
    if (!chunk.ok()) {
      s.done = true;  // the agent has no log: an empty copy
      s.missing = true;
      return Status::Ok();
    }
    if (static_cast<int64_t>(chunk->data.size()) > s.piece) {
      return Unavailable("the agent served more log bytes than asked for");
    }
    // The log has ended: its size no longer grows, and only its last max_bytes are fetched.
    s.end = chunk->size;
    const int64_t start = std::max<int64_t>(0, s.end - s.max_bytes);
    if (start > 0) FW_RETURN_IF_ERROR(s.copy.Write(LogCopies::DroppedMarker(start)));
    s.offset = start;
    s.short_piece = static_cast<int64_t>(chunk->data.size()) < std::min(s.piece, s.end);
    if (start < static_cast<int64_t>(chunk->data.size())) {
      std::string_view tail = std::string_view(chunk->data).substr(static_cast<size_t>(start));
      FW_RETURN_IF_ERROR(s.copy.Write(tail));
      s.offset = static_cast<int64_t>(chunk->data.size());
      s.kept = static_cast<int64_t>(tail.size());
    } else if (s.short_piece) {
      s.offset = s.end;  // the agent served less than it said it has: nothing more to fetch
    }
    // Every request but the last brings a whole piece, so this many always suffice.
    s.requests_left = static_cast<int>(s.max_bytes / s.piece) + 1;
    return Status::Ok();
  }
  if (std::chrono::steady_clock::now() > s.deadline) {
    return Unavailable("copying the log took longer than " +
                       std::to_string(s.deadline_length.count()) + " s");
  }
  --s.requests_left;
  FW_RETURN_IF_ERROR(chunk.status());
  if (static_cast<int64_t>(chunk->data.size()) > asked->limit) {
    return Unavailable("the agent served more log bytes than asked for");
  }
  FW_RETURN_IF_ERROR(s.copy.Write(chunk->data));
  s.offset += static_cast<int64_t>(chunk->data.size());
  s.kept += static_cast<int64_t>(chunk->data.size());
  s.short_piece = static_cast<int64_t>(chunk->data.size()) < asked->limit;
  return Status::Ok();
}

Status LogCopy::Commit() {
  if (Next()) return FailedPrecondition("the log copy is not complete");
  if (state_->first) return Status::Ok();  // copies are off (no directory or store)
  return state_->copy.Keep(*state_->store, state_->job_id, /*replace=*/!state_->missing);
}

Result<std::unique_ptr<LogCopy>> LogCopies::Begin(const std::string& job_id) const {
  if (!model::IsValidJobId(job_id)) return InvalidArgument("not a job id");
  const bool on = !options_.dir.empty() && options_.store != nullptr;
  fs::path staged;
  if (on) {
    const fs::path dir(options_.dir);
    FW_RETURN_IF_ERROR(EnsureDir(dir));
    staged = dir / (job_id + ".log.tmp");
  }
  auto state = std::make_unique<LogCopy::State>(std::move(staged));
  state->store = options_.store;
  state->job_id = job_id;
  state->done = !on;
  state->deadline = std::chrono::steady_clock::now() + options_.deadline;
  state->deadline_length = options_.deadline;
  state->piece = std::max<int64_t>(1, options_.piece_bytes);
  state->max_bytes = options_.max_bytes;
  return std::unique_ptr<LogCopy>(new LogCopy(std::move(state)));
}

Status LogCopies::Copy(const std::string& job_id, AgentLogSource& source) const {
  FW_ASSIGN_OR_RETURN(std::unique_ptr<LogCopy> copy, Begin(job_id));
  while (std::optional<LogCopy::Piece> piece = copy->Next()) {
    FW_RETURN_IF_ERROR(copy->Feed(source.Read(job_id, piece->offset, piece->limit)));
  }
  return copy->Commit();
}

Result<LogCopies::MoveReport> LogCopies::MoveFileCopiesIntoStore() const {
  MoveReport report;
  if (options_.dir.empty() || options_.store == nullptr) return report;
  const fs::path dir(options_.dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return report;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) return Internal("cannot list " + dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const fs::path path = dir / name;
    if (name.ends_with(".log.tmp") &&
        model::IsValidJobId(name.substr(0, name.size() - std::string_view(".log.tmp").size()))) {
      ::unlink(path.c_str());  // a copy cut off by a crash: fetched again by the next tick
      continue;
    }
    if (!name.ends_with(".log")) continue;
    const std::string job_id = name.substr(0, name.size() - std::string_view(".log").size());
    if (!model::IsValidJobId(job_id)) continue;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      ++report.failed;
      if (report.first_error.empty()) report.first_error = DiskError("cannot open", path).message();
      continue;
    }
    FileLogReader reader(fd.get(), static_cast<int64_t>(st.st_size), path);
    Status stored = options_.store->PutJobLog(job_id, reader, /*replace=*/false);
    if (!stored.ok() && stored.code() != StatusCode::kNotFound) {
      ++report.failed;
      if (report.first_error.empty()) report.first_error = name + ": " + stored.message();
      continue;
    }
    ++(stored.ok() ? report.moved : report.dropped);
    if (::unlink(path.c_str()) != 0) {
      ++report.failed;
      if (report.first_error.empty())
        report.first_error = DiskError("cannot remove", path).message();
    }
  }
  return report;
}

}  // namespace fleetwatch::server
