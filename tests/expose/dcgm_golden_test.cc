// Pins the bytes the DCGM ingest produces for representative host texts (tests/expose/testdata:
// dcgm_*.golden): every relabeled family of every job on the host, in both formats, the
// exposition they make together, and the exact error of each malformed text. Any change to the
// ingest must keep these bytes. FLEETWATCH_WRITE_GOLDEN=1 rewrites the files instead of comparing
// (only for a deliberate change of the output, reviewed in the diff).

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "expose/dcgm.h"
#include "expose/snapshot.h"

namespace fleetwatch::expose {
namespace {

std::string TestData(const std::string& name) {
  return std::string(FLEETWATCH_SOURCE_DIR) + "/tests/expose/testdata/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Job {
  std::vector<std::string> uuids;
  JobLabelValues values;
};

// The families a host may not add beside the server's own, as the server names them.
constexpr std::string_view kServerFamilies[] = {"fleetwatch_agent_poll_errors_total",
                                                "DCGM_SERVER"};

// What the server's ingest makes of `text` for `jobs`: the families of each job, or the error.
Result<std::vector<DcgmSamples>> Ingest(std::string_view text, const std::vector<Job>& jobs,
                                        size_t& foreign) {
  std::vector<std::array<Label, 11>> labels;
  labels.reserve(jobs.size());
  std::vector<DcgmJob> dcgm_jobs;
  for (const Job& job : jobs) {
    dcgm_jobs.push_back({job.uuids, labels.emplace_back(JobLabels(job.values))});
  }
  DcgmHeaderCache headers;
  FW_ASSIGN_OR_RETURN(RelabeledDcgm relabeled,
                      RelabelDcgmText(text, dcgm_jobs, kServerFamilies, &headers));
  foreign = relabeled.foreign_families;
  return std::move(relabeled.jobs);
}

const char* FormatName(Format format) {
  return format == Format::kText004 ? "text 0.0.4" : "OpenMetrics";
}

std::string Dump(std::string_view text, const std::vector<Job>& jobs) {
  size_t foreign = 0;
  Result<std::vector<DcgmSamples>> ingested = Ingest(text, jobs, foreign);
  if (!ingested.ok()) return "error: " + ingested.status().ToString() + "\n";
  std::string out = "foreign families dropped: " + std::to_string(foreign) + "\n";
  ExpositionSnapshot snapshot;
  for (size_t j = 0; j < ingested->size(); ++j) {
    out += "=== job " + std::to_string(j) + "\n";
    for (const RenderedFamily& family : (*ingested)[j]) {
      for (Format format : {Format::kText004, Format::kOpenMetrics100}) {
        out += "--- " + family.header->name() + " in " + FormatName(format) + "\n";
        out += family.header->Lines(format);
        out += family.samples.For(format);
      }
    }
    snapshot.SetDcgm("job" + std::to_string(j), std::move((*ingested)[j]), /*expires_at=*/2);
  }
  for (Format format : {Format::kText004, Format::kOpenMetrics100}) {
    out += std::string("=== exposition in ") + FormatName(format) + "\n";
    out += snapshot.Render(format, /*now=*/1);
  }
  return out;
}

void ExpectGolden(const std::string& name, const std::string& actual) {
  const std::string path = TestData(name);
  const char* write = std::getenv("FLEETWATCH_WRITE_GOLDEN");
  if (write != nullptr && std::string(write) == "1") {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << actual;
    return;
  }
  const std::string expected = ReadFile(path);
  ASSERT_FALSE(expected.empty()) << path;
  EXPECT_EQ(actual, expected) << "the ingest's output changed; see " << path;
}

const JobLabelValues kPlain{"main", "alice", "train", "rid-1",  "train-0-0", "jid-1",
                            "0",    "0",     "task",  "remote", "H100"};
const JobLabelValues kServe{"main", "bob", "serve",   "rid-2", "serve-0-1", "jid-2",
                            "0",    "1",   "service", "aws",   "H100"};
// Our own values can hold anything a user typed: they are escaped, invalid UTF-8 replaced.
const JobLabelValues kHostile{"pro\"ject", "us\\er", "ru\nn", "rid-3", "ru\nn-0-0", "jid-3",
                              "0",         "0",      "task",  "\xff",  ""};

std::string Uuid(int gpu) {
  return "GPU-" + std::to_string(gpu) + "a1b2c3d-0000-1111-2222-333344445555";
}

TEST(DcgmGolden, FourGpuHostWithTwoJobsAndAnIdleGpu) {
  // GPU 2 is held by no job; a job without GPUs gets nothing.
  const std::vector<Job> jobs = {{{Uuid(3), Uuid(1)}, kPlain}, {{Uuid(0)}, kServe}, {{}, kHostile}};
  ExpectGolden("dcgm_4gpus.golden", Dump(ReadFile(TestData("dcgm_4gpus.txt")), jobs));
}

TEST(DcgmGolden, EdgeCases) {
  const std::vector<Job> jobs = {
      {{Uuid(0), Uuid(3)}, kHostile},
      {{Uuid(1)}, kPlain},
      {{Uuid(1)}, kServe},  // the same GPU in two jobs: both get its samples
      {{"GPU-\\escaped\"uuid"}, kPlain},
      {{"GPU-unknown"}, kServe},
  };
  ExpectGolden("dcgm_edge.golden", Dump(ReadFile(TestData("dcgm_edge.txt")), jobs));
}

TEST(DcgmGolden, ErrorsNameTheLineAndTheReason) {
  const std::string ok = "# HELP g G\n# TYPE g gauge\ng{UUID=\"u\"} 1\n";
  const std::vector<std::string> texts = {
      ok + "g{UUID=\"u\",gpu=\"0\"",
      ok + "g{UUID=\"u",
      ok + "g{UUID=\"u\"}",
      ok + "g 1.2.3",
      ok + "g 1e999",
      ok + "g 0x10",
      ok + "g nan(1)",
      ok + "g --1",
      ok + "g 1 12.5",
      ok + "g 1 +5",
      ok + "g 1 2 3",
      ok + "g{UUID=\"u\"}1",
      ok + "g-x 1",
      ok + "9g 1",
      ok + "g{UUID=\"a\\tb\"} 1",
      ok + "g{UUID=\"a\\",
      ok + "g{UUID=\"a\",UUID=\"b\"} 1",
      ok + "g{__name__=\"x\"} 1",
      ok + "g{a:b=\"x\"} 1",
      ok + "g{1a=\"x\"} 1",
      ok + "g{a \"x\"} 1",
      ok + "g{a=x} 1",
      ok + "g{a=\"x\" b=\"y\"} 1",
      ok + "g{a=\"x\",",
      ok + "g{a=\"\xff\"} 1",
      ok + "g{a=\"\xc3\\n\"} 1",
      ok + "g 1\r",
      ok + "# TYPE g gauge",
      ok + "# HELP g again",
      ok + "# TYPE g_bucket gauge\n",
      "# TYPE h histogram\nh_bucket 1\n# HELP h late\n",
      "# TYPE x gauge\n# TYPE x counter\n",
      "# HELP x a\n# HELP x b\n",
      "# TYPE x enum\n",
      "# TYPE x\n",
      "# TYPE x gauge extra\n",
      "# HELP 1x a\n",
      "# HELP x: a\n",
      "# HELPx a\n",
      "# HELP x bad \\t escape\n",
      "# HELP x trailing \\",
      "# HELP x \xc3\x28\n",
      "{a=\"b\"} 1\n",
      "  \t\n\n# just a comment\ng 1\n\ng 2 3\n g{a=\"1\"} 4 5 6\n",
      std::string("g{a=\"\0\"} 1\n", 11),
      std::string("g 1\0\n", 5),
  };
  std::string out;
  for (const std::string& text : texts) out += Dump(text, {{{"u"}, kPlain}});
  ExpectGolden("dcgm_errors.golden", out);
}

}  // namespace
}  // namespace fleetwatch::expose
