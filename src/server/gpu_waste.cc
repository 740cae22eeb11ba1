#include "server/gpu_waste.h"

#include <charconv>
#include <tuple>
#include <utility>

namespace fleetwatch::server {

Result<WasteGrouping> ParseWasteGrouping(std::string_view text) {
  if (text == "project") return WasteGrouping::kProject;
  if (text == "user") return WasteGrouping::kUser;
  if (text == "run") return WasteGrouping::kRun;
  return InvalidArgument("'by' must be project, user or run");
}

Result<TimeMicros> ParseWasteSince(std::string_view text) {
  const Status bad = InvalidArgument(
      "'since' must be a positive whole number of s, m, h, d or w (e.g. 7d, 36h), at most 10 "
      "years");
  if (text.size() < 2) return bad;
  int64_t unit = 0;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86'400;
      break;
    case 'w':
      unit = 7 * 86'400;
      break;
    default:
      return bad;
  }
  const std::string_view digits = text.substr(0, text.size() - 1);
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  constexpr int64_t kMaxSeconds = int64_t{10} * 366 * 86'400;
  if (ec != std::errc() || ptr != digits.data() + digits.size() || n <= 0 ||
      n > kMaxSeconds / unit) {
    return bad;
  }
  return n * unit * 1'000'000;
}

std::vector<WasteRow> GroupWaste(const std::vector<store::RunGpuTime>& runs, WasteGrouping by) {
  std::map<std::tuple<std::string, std::string, std::string, std::string>, WasteRow> rows;
  for (const store::RunGpuTime& r : runs) {
    WasteRow key;
    key.project_name = r.project_name;
    if (by != WasteGrouping::kProject) key.user_name = r.user_name;
    if (by == WasteGrouping::kRun) {
      key.run_name = r.run_name;
      key.run_id = r.run_id;
    }
    WasteRow& row =
        rows.try_emplace({key.project_name, key.user_name, key.run_name, key.run_id}, key)
            .first->second;
    row.held_seconds += r.held_seconds;
    row.idle_seconds += r.idle_seconds;
    row.idle_cost_dollars += r.idle_cost_dollars;
  }
  std::vector<WasteRow> out;
  out.reserve(rows.size());
  for (auto& [key, row] : rows) out.push_back(std::move(row));
  return out;
}

Result<std::vector<WasteRow>> GpuWasteService::Report(const std::optional<std::string>& project,
                                                      TimeMicros since, WasteGrouping by) const {
  FW_ASSIGN_OR_RETURN(std::vector<store::RunGpuTime> runs,
                      store_.ListGpuTimeSince(clock_.Now() - since));
  if (project) {
    std::erase_if(runs, [&](const store::RunGpuTime& r) { return r.project_name != *project; });
  }
  return GroupWaste(runs, by);
}

Result<std::vector<ProjectNotes>> GpuWasteService::Notes(const std::optional<std::string>& project,
                                                         TimeMicros since) const {
  FW_ASSIGN_OR_RETURN(std::vector<store::StoredJobSummary> jobs,
                      store_.ListJobSummariesSince(clock_.Now() - since, project));
  return SumNotes(jobs);
}

Result<std::map<std::string, store::RunGpuTime>> GpuWasteService::RunTimes(
    const std::vector<std::string>& run_ids) const {
  FW_ASSIGN_OR_RETURN(std::vector<store::RunGpuTime> runs, store_.ListRunGpuTime(run_ids));
  std::map<std::string, store::RunGpuTime> out;
  for (store::RunGpuTime& r : runs) out.emplace(r.run_id, std::move(r));
  return out;
}

}  // namespace fleetwatch::server
