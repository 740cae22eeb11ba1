#pragma once

#include <optional>
#include <string>
#include <vector>

#include "server/job_summary.h"

namespace fleetwatch::server {

// Right-sizing notes on a job's summary: one rule per note, each a row of the table below with
// its thresholds, each note stating the figures it rests on. Pure functions; thread-safe.
//
//   rule                  fires when
//   unused_gpus           >= 1 of the job's GPUs never reached 5 % utilization (>= 3 samples)
//   gpu_memory_oversized  the job's GPU memory peak is <= 25 % of its GPUs' size (>= 3 samples)
//   cpu_bound             ~one CPU busy (0.85..1.15 cores on average) while GPU utilization
//                         averaged < 30 % (GPU jobs, >= 3 points)
//   memory_near_limit     memory peaked at >= 90 % of the job's limit (out-of-memory risk)
//   utilization_policy    the job was terminated by its utilization policy
struct NoteRule {
  const char* rule;
  // The note's text when the rule fires on `summary`, else nullopt.
  std::optional<std::string> (*check)(const JobSummary& summary);
};

// The rules, in the order their notes are listed.
const std::vector<NoteRule>& NoteRules();

// The notes of every rule that fires, in NoteRules() order.
std::vector<SummaryNote> SummaryNotes(const JobSummary& summary);

}  // namespace fleetwatch::server
