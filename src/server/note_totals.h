#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/store.h"

namespace fleetwatch::server {

// The right-sizing notes (summary_notes.h) of the jobs that ended in a window, summed per project
// from their stored summaries: the waste report's notes section (docs/api.md "Waste"). Pure
// functions; thread-safe.

// At most this many run names are given as examples of a note.
inline constexpr size_t kNoteExampleRuns = 3;

// One note's total over a project's jobs.
struct NoteTotal {
  std::string rule;  // NoteRules()'s name
  int64_t jobs = 0;  // jobs whose summary has the note
  int64_t runs = 0;  // the distinct runs of those jobs
  // GPU time those jobs held: each job's GPUs × its running time.
  double held_seconds = 0;
  double cost_dollars = 0;  // their running time × their instances' price
  bool cost_known = false;  // some of them had a price (else cost_dollars says nothing)
  std::vector<std::string> example_runs;  // distinct run names, newest finish first
};

struct ProjectNotes {
  std::string project_name;
  int64_t jobs = 0;  // jobs that ended in the window (a summary that cannot be read is left out)
  std::vector<NoteTotal> notes;  // one per rule of NoteRules(), in that order, zeros included
};

// Sums `jobs` (newest finish first, as store::ListJobSummariesSince lists them) per project,
// ordered by project name. Notes of rules NoteRules() does not know are left out.
std::vector<ProjectNotes> SumNotes(const std::vector<store::StoredJobSummary>& jobs);

}  // namespace fleetwatch::server
