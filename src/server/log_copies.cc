#include "server/log_copies.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

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
  // Closes now, reporting the error a late write may surface only here.
  bool Close() { return ::close(std::exchange(fd_, -1)) == 0; }

 private:
  int fd_;
};

// A temporary file beside its destination, created 0600 before anything is written and removed
// unless Commit renames it into place.
class TempCopy {
 public:
  TempCopy(fs::path tmp, fs::path dest) : tmp_(std::move(tmp)), dest_(std::move(dest)) {}
  TempCopy(const TempCopy&) = delete;
  TempCopy& operator=(const TempCopy&) = delete;
  ~TempCopy() {
    if (opened_ && !committed_) ::unlink(tmp_.c_str());
  }

  Status Open() {
    // A temp file left by a crash would make O_EXCL fail; only the controller's thread writes
    // here. O_EXCL also refuses a symbolic link planted in its place.
    ::unlink(tmp_.c_str());
    fd_.Reset(::open(tmp_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd_.get() < 0) return DiskError("cannot create", tmp_);
    opened_ = true;
    return Status::Ok();
  }

  Status Write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_.get(), data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return DiskError("cannot write", tmp_);
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }

  Status Commit() {
    if (::fsync(fd_.get()) != 0) return DiskError("cannot sync", tmp_);
    if (!fd_.Close()) return DiskError("cannot close", tmp_);
    if (::rename(tmp_.c_str(), dest_.c_str()) != 0) return DiskError("cannot rename to", dest_);
    committed_ = true;
    // The rename itself survives a crash once the directory is synced.
    Fd dir(::open(dest_.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() >= 0) ::fsync(dir.get());
    return Status::Ok();
  }

 private:
  fs::path tmp_;
  fs::path dest_;
  Fd fd_;
  bool opened_ = false;
  bool committed_ = false;
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
  State(fs::path tmp, fs::path dest) : copy(std::move(tmp), std::move(dest)) {}
  TempCopy copy;
  bool first = true;  // the first piece is not in yet
  bool done = false;  // nothing more to fetch
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
  if (state_->first) return Status::Ok();  // copies are off (no directory)
  return state_->copy.Commit();
}

Result<std::unique_ptr<LogCopy>> LogCopies::Begin(const std::string& job_id) const {
  if (!model::IsValidJobId(job_id)) return InvalidArgument("not a job id");
  fs::path tmp, dest;
  if (!options_.dir.empty()) {
    const fs::path dir(options_.dir);
    FW_RETURN_IF_ERROR(EnsureDir(dir));
    tmp = dir / (job_id + ".log.tmp");
    dest = dir / (job_id + ".log");
  }
  auto state = std::make_unique<LogCopy::State>(std::move(tmp), std::move(dest));
  state->done = options_.dir.empty();
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

std::optional<LogChunk> LogCopies::Read(const std::string& job_id, int64_t offset,
                                        int64_t limit) const {
  if (options_.dir.empty() || !model::IsValidJobId(job_id) || offset < 0 || limit < 0) {
    return std::nullopt;
  }
  const fs::path path = fs::path(options_.dir) / (job_id + ".log");
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  LogChunk chunk;
  chunk.size = static_cast<int64_t>(st.st_size);
  if (offset < chunk.size) {
    chunk.data.resize(static_cast<size_t>(std::min(limit, chunk.size - offset)));
    size_t got = 0;
    while (got < chunk.data.size()) {
      ssize_t n = ::pread(fd.get(), chunk.data.data() + got, chunk.data.size() - got,
                          static_cast<off_t>(offset + static_cast<int64_t>(got)));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    chunk.data.resize(got);
  }
  return chunk;
}

}  // namespace fleetwatch::server
