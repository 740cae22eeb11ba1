#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "server/agent_protocol.h"
#include "store/store.h"
#include "util/status.h"

namespace fleetwatch::server {

// Where a job's log comes from while its agent still holds it: GET /api/jobs/{id}/logs on the
// job's own instance. An interface so tests can serve any bytes, sizes and failures.
class AgentLogSource {
 public:
  virtual ~AgentLogSource() = default;
  // At most `limit` bytes of the job's log from `offset`, with the log's whole size as the agent
  // reports it (checked by ParseAgentLogChunk). NotFound when the agent has no such job.
  virtual Result<LogChunk> Read(const std::string& job_id, int64_t offset, int64_t limit) = 0;
};

struct LogCopyOptions {
  // Where a copy is staged while it is fetched (<dir>/<job id>.log.tmp) before it goes into the
  // store whole; empty: no copies.
  std::string dir;
  store::Store* store = nullptr;      // keeps the copies (Store::PutJobLog); null: no copies
  int64_t max_bytes = 64 << 20;       // of a job's output kept; longer logs keep their tail
  int64_t piece_bytes = 1 << 20;      // per request to the agent (its own maximum)
  std::chrono::seconds deadline{60};  // per copy; a slower copy fails and is retried later
};

// One copy in progress, fed piece by piece by whoever talks to the agent (LogCopies::Copy, or
// asynchronous requests): ask for Next(), Feed() the answer, Commit() once Next() is empty. A
// copy that ends without Commit (an error, or dropped) leaves the earlier copy, if any, as it
// was. Not thread-safe: one caller at a time (callbacks that follow one another are fine).
class LogCopy {
 public:
  struct Piece {
    int64_t offset = 0;
    int64_t limit = 0;
  };
  ~LogCopy();
  LogCopy(const LogCopy&) = delete;
  LogCopy& operator=(const LogCopy&) = delete;

  // The piece of the log to ask the agent for next; nullopt once the copy has what it needs.
  std::optional<Piece> Next() const;
  // The agent's answer to Next(). Errors (the copy is over then): the answer's error (NotFound
  // for the first piece is no error: the copy is empty), Unavailable (more bytes than asked for,
  // deadline passed), Internal (disk), FailedPrecondition (nothing was asked for).
  Status Feed(Result<LogChunk> chunk);
  // Stores the copy (Store::PutJobLog, replacing an earlier one; an empty copy of a job the agent
  // no longer has keeps an earlier one) and removes the staged file. A job that is gone or whose
  // run was deleted gets no copy, and that is no error. FailedPrecondition while Next() is not
  // empty; Internal (disk); the store's errors.
  Status Commit();

 private:
  friend class LogCopies;
  struct State;
  explicit LogCopy(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The server's copies of ended jobs' logs (docs/architecture.md "Reconciling with agents"), kept
// in the store (Store::PutJobLog: in the database, so that every replica serves them). A copy is
// staged in a file of the data directory while it is fetched, then stored whole in one
// transaction, chunk by chunk: a log is never held in memory whole. A path is built only from the
// server's own job id, checked by model::IsValidJobId; nothing an agent says ever names a file.
// Thread-safe: copies of different jobs may run at once (one at a time per job per server), and
// a copy appears whole or not at all. Copyable: copies share the directory and the store, which
// must outlive every copy.
class LogCopies {
 public:
  explicit LogCopies(LogCopyOptions options) : options_(std::move(options)) {}

  // Copies the log of the server's job `job_id` from `source` into the store, replacing an
  // earlier copy. A log longer than max_bytes keeps its last max_bytes after a one-line marker
  // that says how many bytes were dropped. A source without the job (NotFound) gives an empty
  // copy, unless the job has one already. At most max_bytes / piece_bytes + 2 requests, however
  // the agent answers. Errors: InvalidArgument for an id that is not a job id; the source's error
  // or Unavailable (reply out of its bounds, deadline passed); Internal when the disk fails; the
  // store's errors. A failed copy leaves the earlier copy, if any, as it was.
  Status Copy(const std::string& job_id, AgentLogSource& source) const;

  // A copy of the same rules driven by the caller (asynchronous sources). Errors: InvalidArgument
  // for an id that is not a job id, Internal when the directory cannot be made.
  Result<std::unique_ptr<LogCopy>> Begin(const std::string& job_id) const;

  // Moves the copies that older fleetwatch versions kept as files (<dir>/<job id>.log) into the
  // store, once, at start (before any copy runs): each is stored unless the job has a stored log
  // already, then removed; a copy of a job that is gone or whose run was deleted is removed; stale
  // staging files (*.log.tmp) are removed. Files whose names are not job ids are left alone. A
  // copy that fails to move stays in place for the next start. Returns what happened to the
  // copies found. Errors: Internal when the directory cannot be read.
  struct MoveReport {
    int moved = 0;
    int dropped = 0;  // of gone jobs or deleted runs
    int failed = 0;
    std::string first_error;
  };
  Result<MoveReport> MoveFileCopiesIntoStore() const;

  // The first line of a copy whose head was dropped.
  static std::string DroppedMarker(int64_t dropped_bytes);

 private:
  const LogCopyOptions options_;
};

}  // namespace fleetwatch::server
