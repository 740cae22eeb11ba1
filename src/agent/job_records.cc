#include "agent/job_records.h"

#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include "agent/file_modes.h"
#include "model/names.h"
#include "util/private_file.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr size_t kMaxRecordBytes = 4096;

}  // namespace

std::string JobRecordText(const JobRecord& record) {
  json::object o{{"job_id", record.job_id}, {"accepted_at", record.accepted_at}};
  if (record.uid) {
    o["uid"] = static_cast<int64_t>(*record.uid);
  } else {
    o["uid"] = nullptr;
  }
  return json::serialize(o) + "\n";
}

Result<JobRecord> ParseJobRecord(std::string_view text) {
  if (text.size() > kMaxRecordBytes) return InvalidArgument("job record too long");
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgument("job record is not a JSON object");
  const json::object& o = v.as_object();
  JobRecord record;
  const json::value* id = o.if_contains("job_id");
  if (id == nullptr || !id->is_string() || !model::IsValidJobId(id->as_string())) {
    return InvalidArgument("job record without a valid job_id");
  }
  record.job_id = std::string(id->as_string());
  const json::value* at = o.if_contains("accepted_at");
  if (at == nullptr || !at->is_int64() || at->as_int64() < 0) {
    return InvalidArgument("job record without a valid accepted_at");
  }
  record.accepted_at = at->as_int64();
  if (const json::value* uid = o.if_contains("uid"); uid != nullptr && !uid->is_null()) {
    if (!uid->is_int64() || uid->as_int64() <= 0 ||
        uid->as_int64() > std::numeric_limits<int32_t>::max()) {
      return InvalidArgument("job record with an invalid uid");
    }
    record.uid = static_cast<uid_t>(uid->as_int64());
  }
  return record;
}

JobRecordStore::JobRecordStore(fs::path dir) : dir_(std::move(dir)) {}

fs::path JobRecordStore::File(const std::string& job_id) const { return dir_ / (job_id + ".json"); }

Status JobRecordStore::Add(const JobRecord& record) const {
  if (!model::IsValidJobId(record.job_id)) return InvalidArgument("invalid job_id");
  FW_RETURN_IF_ERROR(EnsurePrivateDirectory(dir_));
  FW_RETURN_IF_ERROR(WritePrivateFileAtomically(File(record.job_id), JobRecordText(record)));
  return SyncDirectory(dir_);
}

Status JobRecordStore::Remove(const std::string& job_id) const {
  if (!model::IsValidJobId(job_id)) return InvalidArgument("invalid job_id");
  fs::path file = File(job_id);
  if (::unlink(file.c_str()) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Unavailable("cannot remove " + file.string() + ": " + std::strerror(errno));
  }
  return SyncDirectory(dir_);
}

std::vector<JobRecord> JobRecordStore::Load(std::vector<std::string>* problems) const {
  std::vector<JobRecord> records;
  auto problem = [&](const fs::path& file, const std::string& why) {
    if (problems != nullptr) problems->push_back(file.string() + ": " + why);
  };
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& file = it->path();
    std::error_code type_ec;
    if (file.extension() != ".json" || !fs::is_regular_file(fs::symlink_status(file, type_ec))) {
      problem(file, "not a job record");
      continue;
    }
    std::ifstream in(file, std::ios::binary);
    std::string text(kMaxRecordBytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    Result<JobRecord> record = ParseJobRecord(text);
    if (!record.ok()) {
      problem(file, std::string(record.status().message()));
    } else if (record->job_id != file.stem().string()) {
      problem(file, "the record names job " + record->job_id);
    } else {
      records.push_back(std::move(record).value());
    }
  }
  std::sort(records.begin(), records.end(),
            [](const JobRecord& a, const JobRecord& b) { return a.job_id < b.job_id; });
  return records;
}

}  // namespace fleetwatch::agent
