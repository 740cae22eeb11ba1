// Right-sizing notes summed per project (the waste report's notes section) from stored summaries.
#include "server/note_totals.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/job_summary.h"

namespace fleetwatch::server {
namespace {

store::StoredJobSummary Stored(const std::string& project, const std::string& run_id,
                               const std::string& run_name, int gpus, double seconds, double cost,
                               std::vector<std::string> rules) {
  JobSummary s;
  s.job_id = run_id + "-job";
  s.status = "done";
  s.final = true;
  s.duration_seconds = seconds;
  s.cost_dollars = cost;
  if (cost > 0) s.price = 1.0;
  for (int g = 0; g < gpus; ++g) {
    GpuSummary gpu;
    gpu.index = g;
    s.gpus.push_back(gpu);
  }
  for (const std::string& r : rules) s.notes.push_back({r, "text of " + r});
  store::StoredJobSummary row;
  row.job_id = s.job_id;
  row.run_id = run_id;
  row.run_name = run_name;
  row.project_name = project;
  row.user_name = "alice";
  row.summary_json = ToJson(s);
  return row;
}

const NoteTotal& Rule(const ProjectNotes& p, const std::string& rule) {
  for (const NoteTotal& n : p.notes) {
    if (n.rule == rule) return n;
  }
  ADD_FAILURE() << "no rule " << rule;
  static const NoteTotal none;
  return none;
}

TEST(SumNotes, CountsJobsRunsHeldGpuTimeAndCostPerProjectAndRule) {
  std::vector<store::StoredJobSummary> jobs = {
      // Newest first, as the store lists them.
      Stored("main", "r1", "train", 2, 3600, 4.0, {"unused_gpus", "cpu_bound"}),
      Stored("main", "r1", "train", 2, 1800, 2.0, {"unused_gpus"}),
      Stored("lab", "r9", "sweep", 1, 600, 0.5, {"memory_near_limit"}),
      Stored("main", "r2", "eval", 1, 7200, 0, {"unused_gpus", "unknown_rule"}),
      Stored("main", "r3", "a", 1, 60, 0, {"unused_gpus"}),
      Stored("main", "r4", "b", 1, 60, 0, {"unused_gpus", "unused_gpus"}),
      Stored("main", "r6", "policy", 1, 60, 0, {"utilization_policy"}),
      Stored("main", "r5", "quiet", 8, 100, 1, {}),
  };
  store::StoredJobSummary broken = jobs.back();
  broken.summary_json = "{not json";
  jobs.push_back(broken);

  std::vector<ProjectNotes> projects = SumNotes(jobs);
  ASSERT_EQ(projects.size(), 2u);
  EXPECT_EQ(projects[0].project_name, "lab");
  EXPECT_EQ(projects[1].project_name, "main");
  const ProjectNotes& main = projects[1];
  EXPECT_EQ(main.jobs, 7);  // the unreadable summary is left out
  ASSERT_EQ(main.notes.size(), 5u);
  EXPECT_EQ(main.notes[0].rule, "unused_gpus");
  EXPECT_EQ(main.notes[4].rule, "utilization_policy");

  const NoteTotal& unused = Rule(main, "unused_gpus");
  EXPECT_EQ(unused.jobs, 5);  // a note listed twice on one job counts once
  EXPECT_EQ(unused.runs, 4);
  EXPECT_DOUBLE_EQ(unused.held_seconds, 2 * 3600 + 2 * 1800 + 7200 + 60 + 60);
  EXPECT_DOUBLE_EQ(unused.cost_dollars, 6.0);
  EXPECT_TRUE(unused.cost_known);
  // No price on any of its jobs: the cost is unknown, not zero.
  EXPECT_EQ(Rule(main, "utilization_policy").jobs, 1);
  EXPECT_FALSE(Rule(main, "utilization_policy").cost_known);
  // Distinct run names, newest first, at most kNoteExampleRuns.
  EXPECT_EQ(unused.example_runs, (std::vector<std::string>{"train", "eval", "a"}));

  const NoteTotal& cpu = Rule(main, "cpu_bound");
  EXPECT_EQ(cpu.jobs, 1);
  EXPECT_EQ(cpu.runs, 1);
  EXPECT_DOUBLE_EQ(cpu.held_seconds, 7200);
  EXPECT_EQ(Rule(main, "memory_near_limit").jobs, 0);
  EXPECT_TRUE(Rule(main, "memory_near_limit").example_runs.empty());

  EXPECT_EQ(projects[0].jobs, 1);
  EXPECT_EQ(Rule(projects[0], "memory_near_limit").example_runs, std::vector<std::string>{"sweep"});
  EXPECT_TRUE(SumNotes({}).empty());
}

}  // namespace
}  // namespace fleetwatch::server
