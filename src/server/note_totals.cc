#include "server/note_totals.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "server/job_summary.h"
#include "server/summary_notes.h"

namespace fleetwatch::server {
namespace {

// What one project's totals are being made of.
struct Building {
  ProjectNotes totals;
  std::vector<std::set<std::string>> run_ids;  // per rule
};

Building Start(const std::string& project_name) {
  Building b;
  b.totals.project_name = project_name;
  for (const NoteRule& r : NoteRules()) {
    NoteTotal total;
    total.rule = r.rule;
    b.totals.notes.push_back(std::move(total));
  }
  b.run_ids.resize(NoteRules().size());
  return b;
}

}  // namespace

std::vector<ProjectNotes> SumNotes(const std::vector<store::StoredJobSummary>& jobs) {
  std::map<std::string, Building> projects;
  const std::vector<NoteRule>& rules = NoteRules();
  for (const store::StoredJobSummary& job : jobs) {
    auto it = projects.find(job.project_name);
    if (it == projects.end())
      it = projects.emplace(job.project_name, Start(job.project_name)).first;
    Building& b = it->second;
    Result<JobSummary> summary = JobSummaryFromJson(job.summary_json);
    if (!summary.ok()) continue;
    ++b.totals.jobs;
    const double held =
        std::max(0.0, summary->duration_seconds) * static_cast<double>(summary->gpus.size());
    std::set<std::string> counted;  // a rule listed twice counts once
    for (const SummaryNote& note : summary->notes) {
      auto rule = std::find_if(rules.begin(), rules.end(),
                               [&](const NoteRule& r) { return note.rule == r.rule; });
      if (rule == rules.end() || !counted.insert(note.rule).second) continue;
      const size_t k = static_cast<size_t>(rule - rules.begin());
      NoteTotal& total = b.totals.notes[k];
      ++total.jobs;
      total.held_seconds += held;
      total.cost_dollars += std::max(0.0, summary->cost_dollars);
      total.cost_known |= summary->price.has_value() || summary->cost_dollars > 0;
      if (b.run_ids[k].insert(job.run_id).second) ++total.runs;
      if (total.example_runs.size() < kNoteExampleRuns &&
          std::find(total.example_runs.begin(), total.example_runs.end(), job.run_name) ==
              total.example_runs.end()) {
        total.example_runs.push_back(job.run_name);
      }
    }
  }
  std::vector<ProjectNotes> out;
  out.reserve(projects.size());
  for (auto& [name, b] : projects) out.push_back(std::move(b.totals));
  return out;
}

}  // namespace fleetwatch::server
