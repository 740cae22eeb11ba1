#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "store/row_mapping.h"
#include "store/store.h"
#include "util/status.h"

// The statements of ended jobs' logs (Store: PutJobLog, ReadJobLog, and the deletion of a run's
// logs), shared by the SQLite and PostgreSQL stores: the same SQL for both (BLOB/BYTEA columns
// bound with BindBytes and read with Bytes). A log is a `job_logs` row (job id, size, the chunk
// size it was written with, the token of its writer while it is written) and its `job_log_chunks`
// rows (job id, seq, data). A log is stored a chunk per transaction (BeginJobLog, PutJobLogChunk,
// EndJobLog), so that a 64 MiB copy never holds the store's connection for long; readers see it
// only once it is complete. Each function runs inside the caller's transaction; `prepare(sql)`
// returns the store's Result<Query>. Errors: the database's, and those each function names.
// Stateless.
namespace fleetwatch::store::rows {

template <typename Prepare>
Status DeleteJobLog(Prepare&& prepare, std::string_view job_id) {
  {
    FW_ASSIGN_OR_RETURN(auto q, prepare("DELETE FROM job_log_chunks WHERE job_id = ?"));
    q.Bind(job_id);
    FW_RETURN_IF_ERROR(q.Exec());
  }
  FW_ASSIGN_OR_RETURN(auto q, prepare("DELETE FROM job_logs WHERE job_id = ?"));
  q.Bind(job_id);
  return q.Exec();
}

// The first step of storing a log (Store::PutJobLog): checks the job, and unless a complete log is
// stored and `replace` is false (then false: nothing to write), replaces what is stored by an
// empty log of `size` bytes being written by `writer` (a token of this write).
template <typename Prepare>
Result<bool> BeginJobLog(Prepare&& prepare, std::string_view job_id, int64_t size,
                         std::string_view writer, bool replace) {
  if (size < 0) return InvalidArgument("a log cannot have a negative size");
  {
    FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT r.deleted FROM jobs j JOIN runs r ON "
                                        "r.id = j.run_id WHERE j.id = ?"));
    q.Bind(job_id);
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return NotFound("no job with id '" + std::string(job_id) + "'");
    if (q.Int(0) != 0) {
      return NotFound("the run of job '" + std::string(job_id) + "' is deleted");
    }
  }
  {
    // A log another write left unfinished (its writer died) is written again.
    FW_ASSIGN_OR_RETURN(auto q,
                        prepare("SELECT 1 FROM job_logs WHERE job_id = ? AND writer IS NULL"));
    q.Bind(job_id);
    FW_ASSIGN_OR_RETURN(bool stored, q.Step());
    if (stored && !replace) return false;
  }
  FW_RETURN_IF_ERROR(DeleteJobLog(prepare, job_id));
  FW_ASSIGN_OR_RETURN(auto q, prepare("INSERT INTO job_logs (job_id, size, chunk_bytes, writer) "
                                      "VALUES (?, ?, ?, ?)"));
  q.Bind(job_id).Bind(size).Bind(kJobLogChunkBytes).Bind(writer);
  FW_RETURN_IF_ERROR(WithContext(q.Exec(), "store the log of job '" + std::string(job_id) + "'"));
  return true;
}

// Stores chunk `seq` (`data`) of the log `writer` is writing. FailedPrecondition when the log is no
// longer that writer's (the run was deleted, or another write replaced it).
template <typename Prepare>
Status PutJobLogChunk(Prepare&& prepare, std::string_view job_id, std::string_view writer,
                      int64_t seq, const std::string& data) {
  {
    FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT 1 FROM job_logs WHERE job_id = ? AND writer = ?"));
    q.Bind(job_id).Bind(writer);
    FW_ASSIGN_OR_RETURN(bool mine, q.Step());
    if (!mine) {
      return FailedPrecondition("the log of job '" + std::string(job_id) +
                                "' was deleted or replaced while it was stored");
    }
  }
  FW_ASSIGN_OR_RETURN(auto q,
                      prepare("INSERT INTO job_log_chunks (job_id, seq, data) VALUES (?, ?, ?)"));
  q.Bind(job_id).Bind(seq).BindBytes(data);
  return WithContext(q.Exec(), "store the log of job '" + std::string(job_id) + "'");
}

// Marks the log `writer` wrote complete: readers see it from now on. FailedPrecondition as
// PutJobLogChunk.
template <typename Prepare>
Status EndJobLog(Prepare&& prepare, std::string_view job_id, std::string_view writer) {
  FW_ASSIGN_OR_RETURN(auto q,
                      prepare("UPDATE job_logs SET writer = NULL WHERE job_id = ? AND writer = ?"));
  q.Bind(job_id).Bind(writer);
  FW_RETURN_IF_ERROR(q.Exec());
  if (q.Changes() != 1) {
    return FailedPrecondition("the log of job '" + std::string(job_id) +
                              "' was deleted or replaced while it was stored");
  }
  return Status::Ok();
}

template <typename Prepare>
Result<std::optional<JobLogPart>> ReadJobLog(Prepare&& prepare, std::string_view job_id,
                                             int64_t offset, int64_t limit) {
  if (offset < 0 || limit < 0) {
    return InvalidArgument("a log's offset and limit cannot be negative");
  }
  JobLogPart part;
  int64_t chunk_bytes = 0;
  {
    // A log still being written is not there yet.
    FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT size, chunk_bytes FROM job_logs WHERE job_id = ? "
                                        "AND writer IS NULL"));
    q.Bind(job_id);
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return std::optional<JobLogPart>();
    part.size = q.Int64(0);
    chunk_bytes = q.Int64(1);
  }
  if (chunk_bytes <= 0) {
    return Internal("the stored log of job '" + std::string(job_id) + "' has no chunk size");
  }
  if (offset >= part.size || limit == 0) return std::optional<JobLogPart>(std::move(part));
  const int64_t end = offset + std::min(limit, part.size - offset);
  part.data.reserve(static_cast<size_t>(end - offset));
  FW_ASSIGN_OR_RETURN(auto q, prepare("SELECT seq, data FROM job_log_chunks WHERE job_id = ? AND "
                                      "seq >= ? AND seq <= ? ORDER BY seq"));
  q.Bind(job_id).Bind(offset / chunk_bytes).Bind((end - 1) / chunk_bytes);
  int64_t at = offset;  // the next byte wanted
  while (true) {
    FW_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    const int64_t start = q.Int64(0) * chunk_bytes;
    const std::string data = q.Bytes(1);
    if (start > at || start + static_cast<int64_t>(data.size()) <= at) break;  // a gap
    const int64_t from = at - start;
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(data.size()) - from, end - at);
    part.data.append(data, static_cast<size_t>(from), static_cast<size_t>(n));
    at += n;
    if (at >= end) break;
  }
  if (at != end) {
    return Internal("the stored log of job '" + std::string(job_id) + "' misses bytes from " +
                    std::to_string(at));
  }
  return std::optional<JobLogPart>(std::move(part));
}

// Deletes the stored logs of the jobs of run `run_id`.
template <typename Prepare>
Status DeleteRunLogs(Prepare&& prepare, std::string_view run_id) {
  {
    FW_ASSIGN_OR_RETURN(auto q, prepare("DELETE FROM job_log_chunks WHERE job_id IN "
                                        "(SELECT id FROM jobs WHERE run_id = ?)"));
    q.Bind(run_id);
    FW_RETURN_IF_ERROR(q.Exec());
  }
  FW_ASSIGN_OR_RETURN(
      auto q,
      prepare("DELETE FROM job_logs WHERE job_id IN (SELECT id FROM jobs WHERE run_id = ?)"));
  q.Bind(run_id);
  return q.Exec();
}

// Deletes the stored logs of the jobs of the project's undeleted runs named `run_name` (those a
// new run of that name replaces).
template <typename Prepare>
Status DeleteLogsOfRunsNamed(Prepare&& prepare, std::string_view project_id,
                             std::string_view run_name) {
  static constexpr const char* kJobs =
      "(SELECT j.id FROM jobs j JOIN runs r ON r.id = j.run_id WHERE r.project_id = ? AND "
      "r.run_name = ? AND r.deleted = 0)";
  {
    FW_ASSIGN_OR_RETURN(
        auto q, prepare(std::string("DELETE FROM job_log_chunks WHERE job_id IN ") + kJobs));
    q.Bind(project_id).Bind(run_name);
    FW_RETURN_IF_ERROR(q.Exec());
  }
  FW_ASSIGN_OR_RETURN(auto q,
                      prepare(std::string("DELETE FROM job_logs WHERE job_id IN ") + kJobs));
  q.Bind(project_id).Bind(run_name);
  return q.Exec();
}

}  // namespace fleetwatch::store::rows
