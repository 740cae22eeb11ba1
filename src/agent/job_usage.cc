#include "agent/job_usage.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/sys_files.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

Result<int64_t> ReadValue(const fs::path& file) {
  std::optional<std::string> text = ReadSmallFile(file);
  if (!text) return Unavailable("cannot read " + file.string());
  std::optional<int64_t> value = ParseInteger(*text);
  if (!value || *value < 0) return Unavailable("malformed " + file.string());
  return *value;
}

Result<int64_t> ReadKeyed(const fs::path& file, std::string_view key) {
  std::optional<std::string> text = ReadSmallFile(file);
  if (!text) return Unavailable("cannot read " + file.string());
  std::optional<int64_t> value = FindKeyedValue(*text, key);
  if (!value || *value < 0) {
    return Unavailable("no " + std::string(key) + " in " + file.string());
  }
  return *value;
}

// Fields of /proc/<pid>/stat after the command name, which may itself hold spaces and ')'.
std::optional<std::vector<std::string_view>> StatFields(std::string_view stat) {
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::vector<std::string_view> fields;
  size_t pos = close + 1;
  while (pos < stat.size()) {
    while (pos < stat.size() && (stat[pos] == ' ' || stat[pos] == '\n')) ++pos;
    size_t end = stat.find_first_of(" \n", pos);
    if (end == std::string_view::npos) end = stat.size();
    if (end > pos) fields.push_back(stat.substr(pos, end - pos));
    pos = end;
  }
  return fields;
}

}  // namespace

Result<JobUsage> ReadCgroupV2Usage(const fs::path& dir) {
  JobUsage usage;
  FW_ASSIGN_OR_RETURN(usage.cpu_usage_micro, ReadKeyed(dir / "cpu.stat", "usage_usec"));
  FW_ASSIGN_OR_RETURN(usage.memory_usage_bytes, ReadValue(dir / "memory.current"));
  FW_ASSIGN_OR_RETURN(int64_t inactive, ReadKeyed(dir / "memory.stat", "inactive_file"));
  usage.memory_working_set_bytes = std::max<int64_t>(0, usage.memory_usage_bytes - inactive);
  return usage;
}

Result<JobUsage> ReadCgroupV1Usage(const fs::path& cpuacct_dir, const fs::path& memory_dir) {
  JobUsage usage;
  FW_ASSIGN_OR_RETURN(int64_t cpu_ns, ReadValue(cpuacct_dir / "cpuacct.usage"));
  usage.cpu_usage_micro = cpu_ns / 1000;
  FW_ASSIGN_OR_RETURN(usage.memory_usage_bytes, ReadValue(memory_dir / "memory.usage_in_bytes"));
  FW_ASSIGN_OR_RETURN(int64_t inactive,
                      ReadKeyed(memory_dir / "memory.stat", "total_inactive_file"));
  usage.memory_working_set_bytes = std::max<int64_t>(0, usage.memory_usage_bytes - inactive);
  return usage;
}

std::map<pid_t, JobUsage> ReadProcessGroupsUsage(const fs::path& proc_root,
                                                 const std::vector<pid_t>& pgids) {
  static const int64_t kTicks = std::max<long>(1, sysconf(_SC_CLK_TCK));
  static const int64_t kPage = std::max<long>(1, sysconf(_SC_PAGESIZE));
  std::map<pid_t, JobUsage> usages;
  if (pgids.empty()) return usages;
  std::error_code ec;
  for (fs::directory_iterator it(proc_root, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::optional<std::string> stat = ReadSmallFile(it->path() / "stat");
    if (!stat) continue;
    std::optional<std::vector<std::string_view>> fields = StatFields(*stat);
    // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12) cutime(13) cstime(14).
    if (!fields || fields->size() < 15) continue;
    std::optional<int64_t> group = ParseInteger((*fields)[2]);
    if (!group || std::find(pgids.begin(), pgids.end(), *group) == pgids.end()) continue;
    int64_t ticks = 0;
    for (size_t i = 11; i <= 14; ++i)
      ticks += std::max<int64_t>(0, ParseInteger((*fields)[i]).value_or(0));
    int64_t resident_pages = 0;
    if (std::optional<std::string> statm = ReadSmallFile(it->path() / "statm")) {
      size_t space = statm->find(' ');
      if (space != std::string::npos) {
        std::string_view rest = std::string_view(*statm).substr(space + 1);
        resident_pages =
            std::max<int64_t>(0, ParseInteger(rest.substr(0, rest.find(' '))).value_or(0));
      }
    }
    JobUsage& usage = usages[static_cast<pid_t>(*group)];
    usage.cpu_usage_micro += ticks * 1'000'000 / kTicks;
    usage.memory_usage_bytes += resident_pages * kPage;
    usage.memory_working_set_bytes = usage.memory_usage_bytes;
  }
  return usages;
}

Result<JobUsage> ReadProcessGroupUsage(const fs::path& proc_root, pid_t pgid) {
  std::map<pid_t, JobUsage> usages = ReadProcessGroupsUsage(proc_root, {pgid});
  auto it = usages.find(pgid);
  if (it == usages.end()) return NotFound("no process left in group " + std::to_string(pgid));
  return it->second;
}

}  // namespace fleetwatch::agent
