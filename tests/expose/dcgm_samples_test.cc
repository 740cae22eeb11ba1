// DcgmSamples (a job's relabeled DCGM families as views into one buffer) and DcgmRelabeler (which
// keeps its working buffers between texts): the views, their order and formats, and the
// snapshot that renders them.

#include "expose/dcgm_samples.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "expose/dcgm.h"
#include "expose/snapshot.h"

namespace fleetwatch::expose {
namespace {

using namespace std::string_literals;

const Label kJobA[] = {{"dstack_job_name", "a"}};
const Label kJobB[] = {{"dstack_job_name", "b"}};

// A text of `families` families named F0.. with `gpus` GPUs (UUIDs G0..) each.
std::string Text(int families, int gpus) {
  std::string s;
  for (int f = 0; f < families; ++f) {
    const std::string name = "DCGM_F" + std::to_string(f);
    s += "# HELP " + name + " Field " + std::to_string(f) + ".\n# TYPE " + name + " gauge\n";
    for (int g = 0; g < gpus; ++g) {
      s += name + "{gpu=\"" + std::to_string(g) + "\",UUID=\"G" + std::to_string(g) + "\"} " +
           std::to_string(f * 10 + g) + "\n";
    }
  }
  return s;
}

// What a job's samples say: each family's name, text and OpenMetrics lines.
std::string Dump(const DcgmSamples& samples) {
  std::string out;
  for (const RenderedFamily& f : samples) {
    out += "-- " + f.header->name() + "\n";
    out += f.samples.text;
    out += "-- om\n";
    out += f.samples.For(Format::kOpenMetrics100);
  }
  return out;
}

std::vector<std::string> DumpAll(const RelabeledDcgm& relabeled) {
  std::vector<std::string> out;
  for (const DcgmSamples& samples : relabeled.jobs) out.push_back(Dump(samples));
  return out;
}

// One relabeler given text after text, growing, shrinking, with more jobs and fewer: each result
// is what a fresh relabeling gives, and stays so after the calls that follow it.
TEST(DcgmRelabeler, ReusedBuffersGiveWhatAFreshRelabelingGives) {
  DcgmRelabeler relabeler;
  const std::vector<std::string> g0 = {"G0"}, g1 = {"G1"}, g23 = {"G2", "G3"}, none;
  const DcgmJob four[] = {{g0, kJobA}, {g1, kJobB}, {g23, kJobA}, {none, kJobB}};
  const DcgmJob one[] = {{g1, kJobA}};
  struct Step {
    std::string text;
    std::span<const DcgmJob> jobs;
  };
  const std::vector<Step> steps = {
      {Text(40, 4), four}, {Text(3, 2), four}, {Text(60, 4), one},
      {Text(2, 1), four},  {"", four},         {Text(50, 8), four},
  };
  std::vector<RelabeledDcgm> kept;
  std::vector<std::vector<std::string>> expected;
  for (const Step& step : steps) {
    Result<RelabeledDcgm> reused = relabeler.Relabel(step.text, step.jobs, {});
    Result<RelabeledDcgm> fresh = RelabelDcgmText(step.text, step.jobs, {});
    ASSERT_TRUE(reused.ok() && fresh.ok());
    ASSERT_EQ(DumpAll(*reused), DumpAll(*fresh));
    expected.push_back(DumpAll(*fresh));
    kept.push_back(std::move(reused).value());
  }
  for (size_t i = 0; i < kept.size(); ++i) EXPECT_EQ(DumpAll(kept[i]), expected[i]) << i;
  // The 40-family text: a one-GPU job's family holds its line and no other.
  ASSERT_EQ(kept[0].jobs[0].size(), 40u);
  EXPECT_EQ(kept[0].jobs[0][7].samples.text,
            "DCGM_F7{gpu=\"0\",UUID=\"G0\",dstack_job_name=\"a\"} 70.0\n");
  EXPECT_TRUE(kept[0].jobs[3].empty());
  EXPECT_EQ(kept[2].jobs.size(), 1u);
  EXPECT_TRUE(kept[4].jobs[0].empty());
  // The bytes are exactly the lines.
  size_t bytes = 0;
  for (const RenderedFamily& f : kept[0].jobs[2]) bytes += f.samples.text.size();
  EXPECT_EQ(kept[0].jobs[2].bytes(), bytes);
}

// A name seen again after another family's samples joins its family: the job's family holds all
// its lines, in text order, and the families keep the order they first appeared in.
TEST(DcgmRelabeler, GathersAFamilysLinesGivenInSeveralBlocks) {
  const std::string text =
      "DCGM_A{UUID=\"G0\",i=\"1\"} 1\n"
      "DCGM_B{UUID=\"G0\"} 2\n"
      "DCGM_C{UUID=\"G9\"} 3\n"
      "DCGM_A{UUID=\"G0\",i=\"2\"} 4\n"
      "DCGM_C{UUID=\"G0\"} 5\n"
      "DCGM_B{UUID=\"G0\",i=\"3\"} 6\n";
  const std::vector<std::string> g0 = {"G0"};
  const DcgmJob jobs[] = {{g0, kJobA}};
  DcgmRelabeler relabeler;
  for (int round = 0; round < 2; ++round) {
    Result<RelabeledDcgm> r = relabeler.Relabel(text, jobs, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const DcgmSamples& s = r->jobs[0];
    ASSERT_EQ(s.size(), 3u);
    EXPECT_EQ(s[0].header->name(), "DCGM_A");
    EXPECT_EQ(s[0].samples.text,
              "DCGM_A{UUID=\"G0\",i=\"1\",dstack_job_name=\"a\"} 1.0\n"
              "DCGM_A{UUID=\"G0\",i=\"2\",dstack_job_name=\"a\"} 4.0\n");
    EXPECT_EQ(s[1].header->name(), "DCGM_B");
    EXPECT_EQ(s[1].samples.text,
              "DCGM_B{UUID=\"G0\",dstack_job_name=\"a\"} 2.0\n"
              "DCGM_B{UUID=\"G0\",i=\"3\",dstack_job_name=\"a\"} 6.0\n");
    EXPECT_EQ(s[2].samples.text, "DCGM_C{UUID=\"G0\",dstack_job_name=\"a\"} 5.0\n");
    for (const RenderedFamily& f : s) EXPECT_TRUE(f.samples.openmetrics.empty());
  }
}

// Only the families with a timestamped sample get OpenMetrics lines of their own (every line of
// the family, timestamps in seconds), also when the family comes in several blocks.
TEST(DcgmRelabeler, OpenMetricsLinesOnlyForFamiliesWithTimestamps) {
  const std::string text =
      "DCGM_A{UUID=\"G0\",i=\"1\"} 1\n"
      "DCGM_B{UUID=\"G0\"} 2 1700000000123\n"
      "DCGM_A{UUID=\"G0\",i=\"2\"} 3 -1500\n"
      "DCGM_C{UUID=\"G0\"} 4\n"
      "DCGM_A{UUID=\"G0\",i=\"3\"} 5\n";
  const std::vector<std::string> g0 = {"G0"};
  const DcgmJob jobs[] = {{g0, kJobA}, {g0, kJobB}};
  Result<RelabeledDcgm> r = RelabelDcgmText(text, jobs, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (size_t j = 0; j < 2; ++j) {
    const std::string l = j == 0 ? "dstack_job_name=\"a\"" : "dstack_job_name=\"b\"";
    const DcgmSamples& s = r->jobs[j];
    ASSERT_EQ(s.size(), 3u);
    EXPECT_EQ(s[0].samples.text, "DCGM_A{UUID=\"G0\",i=\"1\"," + l + "} 1.0\n" +
                                     "DCGM_A{UUID=\"G0\",i=\"2\"," + l + "} 3.0 -1500\n" +
                                     "DCGM_A{UUID=\"G0\",i=\"3\"," + l + "} 5.0\n");
    EXPECT_EQ(s[0].samples.openmetrics, "DCGM_A{UUID=\"G0\",i=\"1\"," + l + "} 1.0\n" +
                                            "DCGM_A{UUID=\"G0\",i=\"2\"," + l + "} 3.0 -1.500\n" +
                                            "DCGM_A{UUID=\"G0\",i=\"3\"," + l + "} 5.0\n");
    EXPECT_EQ(s[1].samples.text, "DCGM_B{UUID=\"G0\"," + l + "} 2.0 1700000000123\n");
    EXPECT_EQ(s[1].samples.openmetrics, "DCGM_B{UUID=\"G0\"," + l + "} 2.0 1700000000.123\n");
    EXPECT_EQ(s[2].samples.text, "DCGM_C{UUID=\"G0\"," + l + "} 4.0\n");
    EXPECT_TRUE(s[2].samples.openmetrics.empty());
    EXPECT_EQ(s[2].samples.For(Format::kOpenMetrics100), s[2].samples.text);
    size_t bytes = 0;
    for (const RenderedFamily& f : s) bytes += f.samples.text.size() + f.samples.openmetrics.size();
    EXPECT_EQ(s.bytes(), bytes);
  }
}

// Label values with quotes, backslashes and newlines (the host's and the job's) stay escaped, a
// line per sample: the OpenMetrics lines are split where the samples end, never inside a value.
TEST(DcgmRelabeler, NamesWithQuotesAndNewlinesStayOneLineEach) {
  const std::string text =
      "# HELP DCGM_Q Quote \\\\ and \\n newline.\n"
      "DCGM_Q{UUID=\"G0\",m=\"a \\\"b\\\"\\nc\\\\\"} 1 1000\n"
      "DCGM_Q{UUID=\"G0\",m=\"}\\n 2 3\"} 2\n";
  const std::vector<std::string> g0 = {"G0"};
  const Label job[] = {{"dstack_run_name", "r\"1\"\nx\\"}};
  const DcgmJob jobs[] = {{g0, job}};
  Result<RelabeledDcgm> r = RelabelDcgmText(text, jobs, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->jobs[0].size(), 1u);
  const RenderedFamily& f = r->jobs[0][0];
  EXPECT_EQ(f.header->help(), "Quote \\ and \n newline.");
  const std::string run = "dstack_run_name=\"r\\\"1\\\"\\nx\\\\\"";
  EXPECT_EQ(f.samples.text, "DCGM_Q{UUID=\"G0\",m=\"a \\\"b\\\"\\nc\\\\\"," + run + "} 1.0 1000\n" +
                                "DCGM_Q{UUID=\"G0\",m=\"}\\n 2 3\"," + run + "} 2.0\n");
  EXPECT_EQ(f.samples.openmetrics, "DCGM_Q{UUID=\"G0\",m=\"a \\\"b\\\"\\nc\\\\\"," + run +
                                       "} 1.0 1.000\n" + "DCGM_Q{UUID=\"G0\",m=\"}\\n 2 3\"," +
                                       run + "} 2.0\n");
}

// Moving the samples (into containers, into the snapshot) keeps every view valid, and the
// headers outlive the cache that made them.
TEST(DcgmSamples, MovesKeepTheViewsAndTheHeaders) {
  const std::vector<std::string> g0 = {"G0"};
  const DcgmJob jobs[] = {{g0, kJobA}};
  std::vector<DcgmSamples> moved;
  std::string expected;
  {
    DcgmRelabeler relabeler;
    for (int i = 0; i < 20; ++i) {
      Result<RelabeledDcgm> r = relabeler.Relabel(Text(1 + i % 3, 1), jobs, {});
      ASSERT_TRUE(r.ok());
      moved.push_back(std::move(r->jobs[0]));
    }
    expected = Dump(moved.back());
  }
  DcgmSamples last = std::move(moved.back());
  EXPECT_EQ(Dump(last), expected);
  EXPECT_EQ(last.size(), 2u);  // the last text: 1 + 19 % 3 families
  EXPECT_EQ(last[0].header->name(), "DCGM_F0");
  EXPECT_EQ(last[0].header->help(), "Field 0.");
  DcgmSamples empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.bytes(), 0u);
}

std::string RenderDcgm(const ExpositionSnapshot& s) { return s.Render(Format::kText004, 1); }

// The snapshot renders each key's samples merged by family name: jobs whose families come in
// other orders or with other HELP, a job that shrinks and grows between rounds, a host gone.
TEST(ExpositionSnapshot, MergesDcgmSamplesByFamilyWhateverTheirOrder) {
  ExpositionSnapshot snapshot;
  ASSERT_TRUE(snapshot.RegisterFamily(Section::kServer, "DCGM_MINE", MetricType::kGauge, "m").ok());
  const std::vector<std::string> g0 = {"G0"};
  const DcgmJob job_a[] = {{g0, kJobA}};
  const DcgmJob job_b[] = {{g0, kJobB}};
  DcgmRelabeler relabeler;
  const auto set = [&](std::string key, const std::string& text, const DcgmJob* job) {
    Result<RelabeledDcgm> r = relabeler.Relabel(text, std::span<const DcgmJob>(job, 1), {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    snapshot.SetDcgm(std::move(key), std::move(r->jobs[0]), 100);
  };
  set("a", "# HELP DCGM_X x.\nDCGM_X{UUID=\"G0\"} 1\nDCGM_Y{UUID=\"G0\"} 2\n", job_a);
  // Another order, another HELP for DCGM_X (the first key's header wins), a family named like
  // ours at the place DCGM_X had (never rendered).
  set("b",
      "DCGM_MINE{UUID=\"G0\"} 9\nDCGM_Y{UUID=\"G0\"} 3\n# HELP DCGM_X other.\n"
      "DCGM_X{UUID=\"G0\"} 4\nDCGM_Z{UUID=\"G0\"} 5\n",
      job_b);
  const std::string a = "dstack_job_name=\"a\"", b = "dstack_job_name=\"b\"";
  EXPECT_EQ(RenderDcgm(snapshot),
            "# HELP DCGM_X x.\n# TYPE DCGM_X untyped\n"
            "DCGM_X{UUID=\"G0\"," +
                a + "} 1.0\nDCGM_X{UUID=\"G0\"," + b +
                "} 4.0\n"
                "# HELP DCGM_Y \n# TYPE DCGM_Y untyped\n"
                "DCGM_Y{UUID=\"G0\"," +
                a + "} 2.0\nDCGM_Y{UUID=\"G0\"," + b +
                "} 3.0\n"
                "# HELP DCGM_Z \n# TYPE DCGM_Z untyped\n"
                "DCGM_Z{UUID=\"G0\"," +
                b + "} 5.0\n");
  // Job a shrinks to one family, then grows to three.
  set("a", "DCGM_Y{UUID=\"G0\"} 6\n", job_a);
  EXPECT_EQ(RenderDcgm(snapshot),
            "# HELP DCGM_Y \n# TYPE DCGM_Y untyped\n"
            "DCGM_Y{UUID=\"G0\"," +
                a + "} 6.0\nDCGM_Y{UUID=\"G0\"," + b +
                "} 3.0\n"
                "# HELP DCGM_X other.\n# TYPE DCGM_X untyped\n"
                "DCGM_X{UUID=\"G0\"," +
                b +
                "} 4.0\n"
                "# HELP DCGM_Z \n# TYPE DCGM_Z untyped\n"
                "DCGM_Z{UUID=\"G0\"," +
                b + "} 5.0\n");
  set("a", "DCGM_Z{UUID=\"G0\"} 7\nDCGM_W{UUID=\"G0\"} 8\nDCGM_Y{UUID=\"G0\"} 9\n", job_a);
  EXPECT_EQ(RenderDcgm(snapshot),
            "# HELP DCGM_Z \n# TYPE DCGM_Z untyped\n"
            "DCGM_Z{UUID=\"G0\"," +
                a + "} 7.0\nDCGM_Z{UUID=\"G0\"," + b +
                "} 5.0\n"
                "# HELP DCGM_W \n# TYPE DCGM_W untyped\n"
                "DCGM_W{UUID=\"G0\"," +
                a +
                "} 8.0\n"
                "# HELP DCGM_Y \n# TYPE DCGM_Y untyped\n"
                "DCGM_Y{UUID=\"G0\"," +
                a + "} 9.0\nDCGM_Y{UUID=\"G0\"," + b +
                "} 3.0\n"
                "# HELP DCGM_X other.\n# TYPE DCGM_X untyped\n"
                "DCGM_X{UUID=\"G0\"," +
                b + "} 4.0\n");
  // The host of job b is gone: its samples with it.
  snapshot.RemoveDcgm("b");
  EXPECT_EQ(RenderDcgm(snapshot),
            "# HELP DCGM_Z \n# TYPE DCGM_Z untyped\n"
            "DCGM_Z{UUID=\"G0\"," +
                a +
                "} 7.0\n"
                "# HELP DCGM_W \n# TYPE DCGM_W untyped\n"
                "DCGM_W{UUID=\"G0\"," +
                a +
                "} 8.0\n"
                "# HELP DCGM_Y \n# TYPE DCGM_Y untyped\n"
                "DCGM_Y{UUID=\"G0\"," +
                a + "} 9.0\n");
  // Empty samples remove the key.
  snapshot.SetDcgm("a", DcgmSamples(), 100);
  EXPECT_EQ(RenderDcgm(snapshot), "");
}

// A sample under another family's HELP and TYPE lines starts a family of its own; the families
// keep the order in which the text first names them (the declared one first), as ParseDcgmText
// lists them. (A fuzzing finding: the job's families were ordered by their first sample.)
TEST(DcgmRelabeler, FamiliesKeepTheOrderTheTextFirstNamesThemIn) {
  const std::string text =
      "# HELP DCGM_X Field x.\n"
      "# TYPE DCGM_X counter\n"
      "DCGM_Y{UUID=\"G0\"} 1\n"
      "DCGM_X{UUID=\"G0\"} 2\n";
  Result<DcgmText> parsed = ParseDcgmText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  std::vector<std::string> parsed_names;
  for (const DcgmFamily& family : parsed->families) parsed_names.push_back(family.name);
  ASSERT_EQ(parsed_names, (std::vector<std::string>{"DCGM_X", "DCGM_Y"}));
  const std::vector<std::string> g0 = {"G0"};
  const DcgmJob jobs[] = {{g0, kJobA}};
  Result<RelabeledDcgm> r = RelabelDcgmText(text, jobs, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> names;
  for (const RenderedFamily& f : r->jobs[0]) names.push_back(f.header->name());
  EXPECT_EQ(names, parsed_names);
  EXPECT_EQ(r->jobs[0][0].header->Lines(Format::kText004),
            "# HELP DCGM_X Field x.\n# TYPE DCGM_X counter\n");
}

}  // namespace
}  // namespace fleetwatch::expose
