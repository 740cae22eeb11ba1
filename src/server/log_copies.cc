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

Status LogCopies::Copy(const std::string& job_id, AgentLogSource& source) const {
  if (!model::IsValidJobId(job_id)) return InvalidArgument("not a job id");
  if (options_.dir.empty()) return Status::Ok();
  const fs::path dir(options_.dir);
  FW_RETURN_IF_ERROR(EnsureDir(dir));
  TempCopy copy(dir / (job_id + ".log.tmp"), dir / (job_id + ".log"));
  const auto deadline = std::chrono::steady_clock::now() + options_.deadline;
  const int64_t piece = std::max<int64_t>(1, options_.piece_bytes);

  Result<LogChunk> first = source.Read(job_id, 0, piece);
  if (!first.ok() && first.status().code() != StatusCode::kNotFound) return first.status();
  FW_RETURN_IF_ERROR(copy.Open());
  if (!first.ok()) return copy.Commit();  // the agent has no log: an empty copy
  if (static_cast<int64_t>(first->data.size()) > piece) {
    return Unavailable("the agent served more log bytes than asked for");
  }

  // The log has ended: its size no longer grows, and only its last max_bytes are fetched.
  const int64_t end = first->size;
  const int64_t start = std::max<int64_t>(0, end - options_.max_bytes);
  if (start > 0) FW_RETURN_IF_ERROR(copy.Write(DroppedMarker(start)));
  int64_t offset = start;
  int64_t kept = 0;
  bool short_piece = static_cast<int64_t>(first->data.size()) < std::min(piece, end);
  if (start < static_cast<int64_t>(first->data.size())) {
    std::string_view tail = std::string_view(first->data).substr(static_cast<size_t>(start));
    FW_RETURN_IF_ERROR(copy.Write(tail));
    offset = static_cast<int64_t>(first->data.size());
    kept = static_cast<int64_t>(tail.size());
  } else if (short_piece) {
    offset = end;  // the agent served less than it said it has: nothing more to fetch
  }
  // Every request but the last brings a whole piece, so this many always suffice.
  int requests_left = static_cast<int>(options_.max_bytes / piece) + 1;
  while (!short_piece && offset < end && kept < options_.max_bytes && requests_left-- > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("copying the log took longer than " +
                         std::to_string(options_.deadline.count()) + " s");
    }
    const int64_t want = std::min({piece, end - offset, options_.max_bytes - kept});
    FW_ASSIGN_OR_RETURN(LogChunk chunk, source.Read(job_id, offset, want));
    if (static_cast<int64_t>(chunk.data.size()) > want) {
      return Unavailable("the agent served more log bytes than asked for");
    }
    FW_RETURN_IF_ERROR(copy.Write(chunk.data));
    offset += static_cast<int64_t>(chunk.data.size());
    kept += static_cast<int64_t>(chunk.data.size());
    short_piece = static_cast<int64_t>(chunk.data.size()) < want;
  }
  return copy.Commit();
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
