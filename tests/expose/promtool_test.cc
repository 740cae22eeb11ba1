// Checks our output with an independent parser: Prometheus' own, through `promtool check
// metrics` (Debian package `prometheus`). Skipped where promtool is not installed.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "expose/dcgm.h"
#include "expose/snapshot.h"
#include "exposition_checker.h"

namespace fleetwatch::expose {
namespace {

constexpr TimeMicros kNow = 1'700'000'000'000'000;

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

bool HavePromtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

PromtoolResult CheckMetrics(const std::string& exposition) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const std::string file =
      (dir / ("expose_test_" + std::to_string(::getpid()) + "_metrics.txt")).string();
  std::ofstream(file, std::ios::binary) << exposition;
  PromtoolResult result;
  FILE* pipe = ::popen(("promtool check metrics < '" + file + "' 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::filesystem::remove(file);
  return result;
}

// Names promtool reports lint findings for ("NAME finding" lines).
std::set<std::string> LintedNames(const std::string& output) {
  std::set<std::string> names;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) names.insert(line.substr(0, line.find(' ')));
  }
  return names;
}

// The families of spec/METRICS.md, dstack's and our own ("beyond dstack"), in their sections.
struct SpecFamily {
  Section section;
  std::string name;
  MetricType type;
  std::string help;
  bool ours;  // introduced by fleetwatch: must be lint-clean
};

std::vector<SpecFamily> SpecFamilies() {
  using enum MetricType;
  return {
      {Section::kInstance, "dstack_instance_duration_seconds_total", kCounter,
       "Total seconds the instance is running", false},
      {Section::kInstance, "dstack_instance_price_dollars_per_hour", kGauge,
       "Instance price, USD/hour", false},
      {Section::kInstance, "dstack_instance_gpu_count", kGauge, "Instance GPU count", false},
      {Section::kInstance, "dstack_instance_status", kGauge,
       "Instance status: 1 for the instance's current status", true},
      {Section::kRun, "dstack_run_count_total", kCounter, "Total runs count", false},
      {Section::kRun, "dstack_run_count_terminated_total", kCounter, "Terminated runs count",
       false},
      {Section::kRun, "dstack_run_count_failed_total", kCounter, "Failed runs count", false},
      {Section::kRun, "dstack_run_count_done_total", kCounter, "Done runs count", false},
      {Section::kRun, "dstack_runs", kGauge, "Current number of runs in each status", true},
      {Section::kJob, "dstack_job_duration_seconds_total", kCounter,
       "Total seconds the job is running", false},
      {Section::kJob, "dstack_job_price_dollars_per_hour", kGauge, "Job instance price, USD/hour",
       false},
      {Section::kJob, "dstack_job_gpu_count", kGauge, "Job GPU count", false},
      {Section::kJob, "dstack_job_cpu_count", kGauge, "Job CPU count", false},
      {Section::kJob, "dstack_job_cpu_time_seconds_total", kCounter,
       "Total CPU time consumed by the job, seconds", false},
      {Section::kJob, "dstack_job_memory_total_bytes", kGauge,
       "Total memory allocated for the job, bytes", false},
      {Section::kJob, "dstack_job_memory_usage_bytes", kGauge,
       "Memory used by the job (including cache), bytes", false},
      {Section::kJob, "dstack_job_memory_working_set_bytes", kGauge,
       "Memory used by the job (not including cache), bytes", false},
      {Section::kJob, "dstack_job_gpu_usage_ratio", kGauge, "Job GPU usage, percent (as 0.0-1.0)",
       false},
      {Section::kJob, "dstack_job_gpu_memory_total_bytes", kGauge,
       "Total GPU memory allocated for the job, bytes", false},
      {Section::kJob, "dstack_job_gpu_memory_usage_bytes", kGauge,
       "GPU memory used by the job, bytes", false},
      {Section::kServer, "dstack_submit_to_provision_duration_seconds", kHistogram,
       "Time from when a run has been submitted and first job provisioning", false},
      {Section::kServer, "dstack_pending_runs_total", kCounter, "Number of pending runs", false},
      {Section::kServer, "dstack_project_cost_dollars_total", kCounter,
       "Money spent by the jobs of a project's user, running and finished, USD", true},
      {Section::kServer, "dstack_project_gpu_seconds_total", kCounter,
       "GPU time used by the jobs of a project's user, running and finished, seconds", true},
  };
}

// Text a host controls, as hostile as it gets.
const std::string kHostile = "A\"}\n<script>alert(1)</script>\\n\\\"{x=\"y\"} 1\n# EOF\n\xff";

// Every spec family with samples whose label values come from hosts and users, plus DCGM
// samples relabeled for a job with the same hostile names.
std::string HostileExposition(Format format) {
  ExpositionSnapshot snapshot;
  std::string pairs;
  AppendLabelPair(pairs, "dstack_project_name", "main");
  AppendLabelPair(pairs, "dstack_instance_type", kHostile);
  AppendLabelPair(pairs, "dstack_gpu", kHostile);
  for (const SpecFamily& f : SpecFamilies()) {
    const FamilyId id = *snapshot.RegisterFamily(f.section, f.name, f.type, f.help);
    std::string lines;
    if (f.type == MetricType::kHistogram) {
      std::string p = "project_name=\"main\",run_type=\"task\"";
      for (const char* le : {"15.0", "30.0", "+Inf"}) {
        std::string b = p;
        AppendLabelPair(b, "le", le);
        AppendSample(lines, f.name + "_bucket", b, 1);
      }
      AppendSample(lines, f.name + "_sum", p, 12);
      AppendSample(lines, f.name + "_count", p, 1);
    } else {
      AppendSample(lines, f.name, pairs, 1);
      AppendSample(lines, f.name, "dstack_project_name=\"other\"", 0);
    }
    snapshot.SetFragment(id, "k", Fragment{lines, {}});
  }
  JobLabelValues job{kHostile, kHostile, "run",  "rid",    "run-0-0", "jid",
                     "0",      "0",      "task", "remote", kHostile};
  const std::string dcgm =
      "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
      "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
      "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"U0\",modelName=\"A\\\"}\\n<script>\\\\\","
      "Hostname=\"h\\n# TYPE x counter\"} 87\n"
      "# HELP DCGM_FI_PROF_PCIE_TX_BYTES PCIe \"bytes\" \\\\ \\n.\n"
      "# TYPE DCGM_FI_PROF_PCIE_TX_BYTES counter\n"
      "DCGM_FI_PROF_PCIE_TX_BYTES{gpu=\"0\",UUID=\"U0\"} 12345 1700000000123\n";
  const std::vector<std::string> uuids = {"U0"};
  const auto labels = JobLabels(job);
  const DcgmJob jobs[] = {{uuids, labels}};
  Result<RelabeledDcgm> relabeled = RelabelDcgmText(dcgm, jobs, {});
  EXPECT_TRUE(relabeled.ok()) << relabeled.status().ToString();
  if (relabeled.ok()) snapshot.SetDcgm("job", std::move(relabeled->jobs[0]), kNow + 1);
  return snapshot.Render(format, kNow);
}

TEST(Promtool, HostileLabelValuesGiveOneWellFormedSamplePerSeries) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  const std::string text = HostileExposition(Format::kText004);
  const PromtoolResult result = CheckMetrics(text);
  // 0: clean, 3: lint findings only; 1 would be a parse error.
  EXPECT_TRUE(result.exit_code == 0 || result.exit_code == 3)
      << "exit " << result.exit_code << ": " << result.output;
  EXPECT_EQ(result.output.find("error"), std::string::npos) << result.output;

  const auto checked = testing::CheckExposition(text, Format::kText004);
  ASSERT_EQ(checked.error, "");
  // 23 families x 2 series + the histogram's 5 lines + 2 DCGM samples.
  EXPECT_EQ(checked.samples, 23u * 2 + 5 + 2);
  EXPECT_EQ(checked.families.size(), 24u + 2);
  const auto om =
      testing::CheckExposition(HostileExposition(Format::kOpenMetrics100), Format::kOpenMetrics100);
  EXPECT_EQ(om.error, "");
  EXPECT_EQ(om.samples, checked.samples);
}

TEST(Promtool, FamiliesWeIntroduceAreLintClean) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  const PromtoolResult result = CheckMetrics(HostileExposition(Format::kText004));
  const std::set<std::string> linted = LintedNames(result.output);
  std::set<std::string> contract;  // dstack's names keep whatever findings dstack has
  for (const SpecFamily& f : SpecFamilies()) {
    if (!f.ours) contract.insert(f.name);
  }
  for (const SpecFamily& f : SpecFamilies()) {
    if (f.ours) {
      EXPECT_FALSE(linted.contains(f.name)) << f.name << ":\n" << result.output;
    }
  }
  for (const std::string& name : linted) {
    EXPECT_TRUE(name.starts_with("DCGM_") || contract.contains(name))
        << "unexpected lint finding for " << name << ":\n"
        << result.output;
  }
  std::cout << "promtool findings (dstack's and DCGM's own names):\n" << result.output;
}

}  // namespace
}  // namespace fleetwatch::expose
