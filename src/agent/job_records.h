#pragma once

// The jobs an agent has accepted, remembered on disk so that a restarted agent never starts one
// again (docs/agent-api.md, "Accepted jobs"). One small file per job,
// `<records dir>/<job id>.json`, 0600 in a 0700 directory, written durably (fsynced file, then
// renamed, then the directory fsynced) before the job's process starts, and removed when the
// server acknowledges the job.

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::agent {

// One accepted job.
struct JobRecord {
  std::string job_id;  // model::IsValidJobId
  TimeMicros accepted_at = 0;
  // The uid that was the job's alone (a dynamic uid): a later agent kills what still runs under
  // it. nullopt when the job shared the agent's or a named user's uid, or never got one.
  std::optional<uid_t> uid;
};

// The record as its file holds it, and back. ParseJobRecord fails (InvalidArgument) on anything
// but what JobRecordText writes. Pure.
std::string JobRecordText(const JobRecord& record);
Result<JobRecord> ParseJobRecord(std::string_view text);

// The records of one agent data dir. Thread-safe for distinct job ids; the runtime serializes
// calls for one id.
class JobRecordStore {
 public:
  // `dir` is created (0700) on the first Add; nothing is touched before.
  explicit JobRecordStore(std::filesystem::path dir);

  // Writes the record of `record.job_id` durably. Unavailable on any failure (nothing is left
  // behind then but perhaps the directory).
  Status Add(const JobRecord& record) const;

  // Forgets `job_id` durably. Ok when there is no record; Unavailable when it cannot be removed.
  Status Remove(const std::string& job_id) const;

  // Every record, ordered by job id. A file that is not a record of its own name (a leftover
  // temp file, bad text, a job id that differs from the name) is skipped and described in
  // `problems` when given.
  std::vector<JobRecord> Load(std::vector<std::string>* problems = nullptr) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path File(const std::string& job_id) const;

  const std::filesystem::path dir_;
};

}  // namespace fleetwatch::agent
