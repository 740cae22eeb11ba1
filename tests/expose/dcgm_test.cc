#include "expose/dcgm.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "exposition_checker.h"

namespace fleetwatch::expose {
namespace {

std::string ReadFixture(const std::string& name) {
  std::ifstream in(std::string(FLEETWATCH_SOURCE_DIR) + "/tests/expose/testdata/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string kUuid0 = "GPU-0a1b2c3d-0000-1111-2222-333344445555";
const std::string kUuid1 = "GPU-1a1b2c3d-0000-1111-2222-333344445555";
const std::string kUuid3 = "GPU-3a1b2c3d-0000-1111-2222-333344445555";

JobLabelValues TrainJob() {
  return {"main", "alice", "train", "run-id-1", "train-0-0", "job-id-1",
          "0",    "0",     "task",  "remote",   "H100"};
}

constexpr std::string_view kTrainLabels =
    "dstack_project_name=\"main\",dstack_user_name=\"alice\",dstack_run_name=\"train\","
    "dstack_run_id=\"run-id-1\",dstack_job_name=\"train-0-0\",dstack_job_id=\"job-id-1\","
    "dstack_job_num=\"0\",dstack_replica_num=\"0\",dstack_run_type=\"task\","
    "dstack_backend=\"remote\",dstack_gpu=\"H100\"";

DcgmSamples Relabel(std::string_view text, std::vector<std::string> uuids) {
  const JobLabelValues job = TrainJob();
  const auto labels = JobLabels(job);
  const DcgmJob jobs[] = {{uuids, labels}};
  Result<RelabeledDcgm> relabeled = RelabelDcgmText(text, jobs, {});
  EXPECT_TRUE(relabeled.ok()) << relabeled.status().ToString();
  if (!relabeled.ok()) return {};
  EXPECT_EQ(relabeled->jobs.size(), 1u);
  return std::move(relabeled->jobs[0]);
}

TEST(ParseDcgmText, ReadsTheFourGpuFixture) {
  const std::string text = ReadFixture("dcgm_4gpus.txt");
  ASSERT_FALSE(text.empty());
  Result<DcgmText> parsed = ParseDcgmText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->families.size(), 12u);
  const DcgmFamily& clock = parsed->families[0];
  EXPECT_EQ(clock.name, "DCGM_FI_DEV_SM_CLOCK");
  EXPECT_EQ(clock.type, MetricType::kGauge);
  EXPECT_EQ(clock.help, "SM clock frequency (in MHz).");
  ASSERT_EQ(clock.samples.size(), 4u);
  const DcgmSample& s = clock.samples[2];
  EXPECT_EQ(s.value, 1440);
  EXPECT_FALSE(s.timestamp_ms);
  const std::vector<std::pair<std::string, std::string>> labels = {
      {"gpu", "2"},
      {"UUID", "GPU-2a1b2c3d-0000-1111-2222-333344445555"},
      {"pci_bus_id", "00000000:58:00.0"},
      {"device", "nvidia2"},
      {"modelName", "NVIDIA H100 80GB HBM3"},
      {"Hostname", "gpu-host-1"},
      {"DCGM_FI_DRIVER_VERSION", "535.129.03"}};
  EXPECT_EQ(s.labels, labels);
  EXPECT_EQ(parsed->families[4].type, MetricType::kCounter);
  EXPECT_EQ(parsed->families[3].samples[3].value, 1000);
}

TEST(RelabelDcgmText, KeepsOnlyTheJobsGpusAndAppendsJobLabelsInOrder) {
  const DcgmSamples families = Relabel(ReadFixture("dcgm_4gpus.txt"), {kUuid3, kUuid1});
  ASSERT_EQ(families.size(), 12u);
  const RenderedFamily& power = families[3];
  EXPECT_EQ(power.header->name(), "DCGM_FI_DEV_POWER_USAGE");
  EXPECT_EQ(power.header->Lines(Format::kText004),
            "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).\n"
            "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n");
  const std::string own1 =
      "gpu=\"1\",UUID=\"GPU-1a1b2c3d-0000-1111-2222-333344445555\",pci_bus_id=\"00000000:38:00.0\","
      "device=\"nvidia1\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"gpu-host-1\","
      "DCGM_FI_DRIVER_VERSION=\"535.129.03\",";
  const std::string own3 =
      "gpu=\"3\",UUID=\"GPU-3a1b2c3d-0000-1111-2222-333344445555\",pci_bus_id=\"00000000:78:00.0\","
      "device=\"nvidia3\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"gpu-host-1\","
      "DCGM_FI_DRIVER_VERSION=\"535.129.03\",";
  EXPECT_EQ(power.samples.text, "DCGM_FI_DEV_POWER_USAGE{" + own1 + std::string(kTrainLabels) +
                                    "} 250.5\n"
                                    "DCGM_FI_DEV_POWER_USAGE{" +
                                    own3 + std::string(kTrainLabels) + "} 1000.0\n");
  EXPECT_TRUE(power.samples.openmetrics.empty());
  for (const RenderedFamily& f : families) {
    size_t lines = 0;
    for (char c : f.samples.text) lines += c == '\n';
    EXPECT_EQ(lines, 2u) << f.header->name();
    EXPECT_EQ(f.samples.text.find("gpu=\"0\""), std::string::npos);
    EXPECT_EQ(f.samples.text.find("gpu=\"2\""), std::string::npos);
  }
  EXPECT_EQ(families[4].header->type(), MetricType::kCounter);
  EXPECT_NE(families[4].samples.text.find("} 8765432110.0\n"), std::string::npos);
}

TEST(RelabelDcgmText, NoMatchingGpuGivesNothing) {
  EXPECT_TRUE(Relabel(ReadFixture("dcgm_4gpus.txt"), {"GPU-unknown"}).empty());
  EXPECT_TRUE(Relabel(ReadFixture("dcgm_4gpus.txt"), {}).empty());
}

TEST(RelabelDcgmText, KeepsLowerCaseHostnameAsItIs) {
  const auto families = Relabel(
      "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
      "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
      "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"" +
          kUuid0 + "\",hostname=\"node-7\"} 55\n",
      {kUuid0});
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].samples.text, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"" + kUuid0 +
                                          "\",hostname=\"node-7\"," + std::string(kTrainLabels) +
                                          "} 55.0\n");
}

TEST(RelabelDcgmText, ClashingLabelTakesTheJobsValueInPlace) {
  const auto families = Relabel("DCGM_FI_DEV_GPU_UTIL{dstack_run_name=\"evil\",UUID=\"" + kUuid0 +
                                    "\",dstack_gpu=\"fake\"} 1\n",
                                {kUuid0});
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].samples.text,
            "DCGM_FI_DEV_GPU_UTIL{dstack_run_name=\"train\",UUID=\"" + kUuid0 +
                "\",dstack_gpu=\"H100\",dstack_project_name=\"main\",dstack_user_name=\"alice\","
                "dstack_run_id=\"run-id-1\",dstack_job_name=\"train-0-0\","
                "dstack_job_id=\"job-id-1\",dstack_job_num=\"0\",dstack_replica_num=\"0\","
                "dstack_run_type=\"task\",dstack_backend=\"remote\"} 1.0\n");
  // No family without TYPE line loses its samples: it is untyped.
  EXPECT_EQ(families[0].header->type(), MetricType::kUnknown);
  EXPECT_EQ(families[0].header->Lines(Format::kText004),
            "# HELP DCGM_FI_DEV_GPU_UTIL \n# TYPE DCGM_FI_DEV_GPU_UTIL untyped\n");
}

TEST(RelabelDcgmText, KeepsTheHostsJobAndInstanceLabels) {
  const auto families =
      Relabel("DCGM_X{UUID=\"" + kUuid0 + "\",job=\"dcgm\",instance=\"h:9400\"} 1\n", {kUuid0});
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].samples.text, "DCGM_X{UUID=\"" + kUuid0 +
                                          "\",job=\"dcgm\",instance=\"h:9400\"," +
                                          std::string(kTrainLabels) + "} 1.0\n");
}

TEST(RelabelDcgmText, DropsFamiliesInOurNamespaceAndSamplesWithoutUuid) {
  const auto families = Relabel("dstack_job_gpu_count{UUID=\"" + kUuid0 +
                                    "\"} 99\n"
                                    "DCGM_HOST_LEVEL{host=\"h\"} 3\n"
                                    "DCGM_OK{UUID=\"" +
                                    kUuid0 + "\"} 3\n",
                                {kUuid0});
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].header->name(), "DCGM_OK");
}

TEST(OpenMetricsBaseName, StripsOneSampleSuffix) {
  EXPECT_EQ(OpenMetricsBaseName("fleetwatch_agent_poll_errors_total"),
            "fleetwatch_agent_poll_errors");
  EXPECT_EQ(OpenMetricsBaseName("x_bucket"), "x");
  EXPECT_EQ(OpenMetricsBaseName("x_created"), "x");
  EXPECT_EQ(OpenMetricsBaseName("x_gsum"), "x");
  EXPECT_EQ(OpenMetricsBaseName("DCGM_FI_DEV_GPU_UTIL"), "DCGM_FI_DEV_GPU_UTIL");
  EXPECT_EQ(OpenMetricsBaseName("_total"), "_total");
}

TEST(RelabelDcgmText, KeepsDcgmFamiliesAndDropsForeignOrClashingOnes) {
  const std::string text =
      "DCGM_FI_DEV_GPU_UTIL{UUID=\"u\"} 1\n"
      "dcgm_exporter_build_info{UUID=\"u\"} 1\n"
      "fleetwatch_agent_poll_errors{UUID=\"u\"} 1\n"
      "dstack_job_gpu_count{UUID=\"u\"} 1\n"
      "node_load1{UUID=\"u\"} 1\n"
      "DCGM_SERVER_total{UUID=\"u\"} 1\n"
      "DCGM_SERVER_created{UUID=\"u\"} 1\n"
      "# HELP node_without_samples is not counted\n";
  const std::vector<std::string_view> server = {"fleetwatch_agent_poll_errors_total",
                                                "DCGM_SERVER"};
  const std::vector<std::string> uuids = {"u"};
  const JobLabelValues job = TrainJob();
  const auto labels = JobLabels(job);
  const DcgmJob jobs[] = {{uuids, labels}};
  Result<RelabeledDcgm> relabeled = RelabelDcgmText(text, jobs, server);
  ASSERT_TRUE(relabeled.ok()) << relabeled.status().ToString();
  EXPECT_EQ(relabeled->foreign_families, 5u);
  std::vector<std::string> kept;
  for (const RenderedFamily& f : relabeled->jobs[0]) kept.push_back(f.header->name());
  EXPECT_EQ(kept, (std::vector<std::string>{"DCGM_FI_DEV_GPU_UTIL", "dcgm_exporter_build_info"}));
  // Without jobs the text is still read whole: its foreign families are counted, errors found.
  Result<RelabeledDcgm> no_jobs = RelabelDcgmText(text, {}, server);
  ASSERT_TRUE(no_jobs.ok());
  EXPECT_TRUE(no_jobs->jobs.empty());
  EXPECT_EQ(no_jobs->foreign_families, 5u);
  EXPECT_FALSE(RelabelDcgmText(text + "x{", {}, server).ok());
}

// Only server families named DCGM*/dcgm* can clash with a host's: a bare "dcgm" is one of them
// (it is the OpenMetrics base name of "dcgm_sum").
TEST(RelabelDcgmText, AServerFamilyNamedLikeADcgmBaseNameStillClashes) {
  const std::string text =
      "dcgm_sum{UUID=\"u\"} 1\n"
      "DCGM_FI_DEV_GPU_UTIL{UUID=\"u\"} 1\n";
  const std::vector<std::string_view> server = {"fleetwatch_agent_poll_errors_total", "dcgm"};
  const std::vector<std::string> uuids = {"u"};
  const JobLabelValues job = TrainJob();
  const auto labels = JobLabels(job);
  const DcgmJob jobs[] = {{uuids, labels}};
  Result<RelabeledDcgm> relabeled = RelabelDcgmText(text, jobs, server);
  ASSERT_TRUE(relabeled.ok()) << relabeled.status().ToString();
  EXPECT_EQ(relabeled->foreign_families, 1u);
  ASSERT_EQ(relabeled->jobs[0].size(), 1u);
  EXPECT_EQ(relabeled->jobs[0][0].header->name(), "DCGM_FI_DEV_GPU_UTIL");
}

TEST(IsForeignDcgmFamily, OnlyDcgmNamesThatDoNotClashWithOurs) {
  const std::vector<std::string_view> server = {"fleetwatch_agent_poll_errors_total",
                                                "DCGM_SERVER"};
  EXPECT_FALSE(IsForeignDcgmFamily("DCGM_FI_DEV_GPU_UTIL", server));
  EXPECT_FALSE(IsForeignDcgmFamily("dcgm_exporter_build_info", server));
  EXPECT_TRUE(IsForeignDcgmFamily("dstack_job_gpu_count", server));
  EXPECT_TRUE(IsForeignDcgmFamily("node_load1", server));
  EXPECT_TRUE(IsForeignDcgmFamily("DCGM_SERVER_total", server));
  EXPECT_TRUE(IsForeignDcgmFamily("DCGM_SERVER", server));
  EXPECT_TRUE(IsForeignDcgmFamily("Dcgm_x", {}));
}

// Every job on the host is served from one pass: each gets its GPUs' samples, and all share one
// header per family, across hosts too when a cache is given.
TEST(RelabelDcgmText, ServesEveryJobOnTheHostAndSharesTheHeaders) {
  const std::string text = ReadFixture("dcgm_4gpus.txt");
  const JobLabelValues a = TrainJob();
  JobLabelValues b = TrainJob();
  b.job_id = "job-id-2";
  const auto labels_a = JobLabels(a);
  const auto labels_b = JobLabels(b);
  const std::vector<std::string> gpus_a = {kUuid0}, gpus_b = {kUuid1, kUuid3}, none = {};
  const DcgmJob jobs[] = {{gpus_a, labels_a}, {gpus_b, labels_b}, {none, labels_a}};
  DcgmHeaderCache headers;
  Result<RelabeledDcgm> first = RelabelDcgmText(text, jobs, {}, &headers);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->jobs.size(), 3u);
  ASSERT_EQ(first->jobs[0].size(), 12u);
  ASSERT_EQ(first->jobs[1].size(), 12u);
  EXPECT_TRUE(first->jobs[2].empty());
  EXPECT_EQ(headers.size(), 12u);
  for (size_t f = 0; f < 12; ++f) {
    EXPECT_EQ(first->jobs[0][f].header, first->jobs[1][f].header);
    size_t lines_a = 0, lines_b = 0;
    for (char c : first->jobs[0][f].samples.text) lines_a += c == '\n';
    for (char c : first->jobs[1][f].samples.text) lines_b += c == '\n';
    EXPECT_EQ(lines_a, 1u);
    EXPECT_EQ(lines_b, 2u);
    EXPECT_NE(first->jobs[0][f].samples.text.find("dstack_job_id=\"job-id-1\""), std::string::npos);
    EXPECT_NE(first->jobs[1][f].samples.text.find("dstack_job_id=\"job-id-2\""), std::string::npos);
  }
  // Another host with the same families: the same headers.
  Result<RelabeledDcgm> second = RelabelDcgmText(text, jobs, {}, &headers);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->jobs[0][3].header, first->jobs[0][3].header);
  EXPECT_EQ(headers.size(), 12u);
  // Headers no one holds any more are forgotten.
  headers.Prune();
  EXPECT_EQ(headers.size(), 12u);
  first = RelabeledDcgm{};
  second = RelabeledDcgm{};
  headers.Prune();
  EXPECT_EQ(headers.size(), 0u);
}

// Values are printed as AppendValue prints the number they denote, whichever way the text wrote
// it (the relabeling reads plain decimals off the token).
TEST(RelabelDcgmText, PrintsValuesAsAppendValueDoes) {
  std::mt19937_64 rng(11);
  const auto digits = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += static_cast<char>('0' + rng() % 10);
    return s;
  };
  std::vector<std::string> tokens = {"0",
                                     "-0",
                                     "+0",
                                     "0.0",
                                     "-0.000",
                                     "1",
                                     "007",
                                     "1.50",
                                     "0.0001",
                                     "0.00001",
                                     "1e3",
                                     "NaN",
                                     "-Inf",
                                     "+Inf",
                                     "123456789012345",
                                     "1234567890123456",
                                     "0.1",
                                     "0.30000000000000004",
                                     "999999999999999.9",
                                     "1000000000000000",
                                     "100000000000000",
                                     ".5",
                                     "5."};
  for (int i = 0; i < 3000; ++i) {
    std::string t;
    if (rng() % 3 == 0) t += rng() % 2 ? "-" : "+";
    t += digits(rng() % 18);
    if (t.empty() || t == "-" || t == "+") t += "0";
    if (rng() % 2) t += "." + digits(1 + rng() % 18);
    if (rng() % 8 == 0) t += "e" + std::to_string(static_cast<int>(rng() % 40) - 20);
    tokens.push_back(t);
  }
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    text += "DCGM_X{UUID=\"u\",i=\"" + std::to_string(i) + "\"} " + tokens[i] + "\n";
  }
  const std::vector<std::string> uuids = {"u"};
  const DcgmSamples families = Relabel(text, uuids);
  ASSERT_EQ(families.size(), 1u);
  std::istringstream lines{std::string(families[0].samples.text)};
  std::string line;
  for (const std::string& token : tokens) {
    ASSERT_TRUE(std::getline(lines, line));
    Result<DcgmText> parsed = ParseDcgmText("DCGM_X " + token + "\n");
    ASSERT_TRUE(parsed.ok()) << token;
    std::string want;
    AppendValue(want, parsed->families[0].samples[0].value);
    EXPECT_EQ(line.substr(line.rfind(' ') + 1), want) << token;
  }
}

TEST(RelabelDcgmText, KeepsTimestampsInEachFormatsUnit) {
  const auto families = Relabel("# TYPE DCGM_X gauge\nDCGM_X{UUID=\"" + kUuid0 +
                                    "\"} 1 1700000000123\n"
                                    "DCGM_X{UUID=\"" +
                                    kUuid1 + "\"} 2\n",
                                {kUuid0, kUuid1});
  ASSERT_EQ(families.size(), 1u);
  const std::string l0 = "DCGM_X{UUID=\"" + kUuid0 + "\"," + std::string(kTrainLabels) + "} 1.0";
  const std::string l1 = "DCGM_X{UUID=\"" + kUuid1 + "\"," + std::string(kTrainLabels) + "} 2.0";
  EXPECT_EQ(families[0].samples.text, l0 + " 1700000000123\n" + l1 + "\n");
  EXPECT_EQ(families[0].samples.openmetrics, l0 + " 1700000000.123\n" + l1 + "\n");
}

TEST(RelabelDcgmText, EscapesHostileLabelValues) {
  const auto families =
      Relabel("DCGM_X{UUID=\"" + kUuid0 + "\",modelName=\"A\\\"}\\n<script>\\\\\"} 1\n", {kUuid0});
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].samples.text, "DCGM_X{UUID=\"" + kUuid0 +
                                          "\",modelName=\"A\\\"}\\n<script>\\\\\"," +
                                          std::string(kTrainLabels) + "} 1.0\n");
}

TEST(ParseDcgmText, AcceptsWhatPrometheusAccepts) {
  Result<DcgmText> parsed = ParseDcgmText(
      "# a comment\n"
      "\n"
      "#  HELP  spaced  help with \\\\ and \\n\n"
      "# TYPE spaced GAUGE\n"
      "spaced {a = \"1\" , b=\"2\",} \t -1.5e3 \n"
      "spaced NaN\n"
      "spaced{c=\"x\"} +Inf -5\n"
      "# TYPE h histogram\n"
      "h_bucket{le=\"1\"} 1\n"
      "h_bucket{le=\"+Inf\"} 2\n"
      "h_sum 3\n"
      "h_count 2\n"
      "other -Inf\n"
      "spaced{c=\"y\"} 0");  // no final newline
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->families.size(), 3u);
  const DcgmFamily& spaced = parsed->families[0];
  EXPECT_EQ(spaced.help, "help with \\ and \n");
  EXPECT_EQ(spaced.type, MetricType::kGauge);
  ASSERT_EQ(spaced.samples.size(), 4u);  // the late sample joins its family
  EXPECT_EQ(spaced.samples[0].value, -1500);
  EXPECT_EQ(spaced.samples[0].labels.size(), 2u);
  EXPECT_TRUE(std::isnan(spaced.samples[1].value));
  EXPECT_EQ(spaced.samples[2].timestamp_ms, -5);
  EXPECT_EQ(parsed->families[1].name, "h");
  EXPECT_EQ(parsed->families[1].samples.size(), 4u);
  EXPECT_EQ(parsed->families[2].name, "other");
  EXPECT_EQ(parsed->families[2].type, MetricType::kUnknown);
  EXPECT_TRUE(ParseDcgmText("").ok());
}

struct Malformed {
  std::string text;
  std::string message;  // expected part of the error
};

TEST(ParseDcgmText, RefusesMalformedTextWithTheLineNumber) {
  const std::string ok = "# HELP g G\n# TYPE g gauge\ng{UUID=\"u\"} 1\n";
  const std::vector<Malformed> cases = {
      {ok + "g{UUID=\"u\",gpu=\"0\"", "line 4: unclosed"},
      {ok + "g{UUID=\"u", "line 4: unterminated"},
      {ok + "g{UUID=\"u\"}", "line 4: missing value"},
      {ok + "g 1.2.3", "line 4: invalid value"},
      {ok + "g abc", "line 4: invalid value"},
      {ok + "g 0x10", "line 4: invalid value"},
      {ok + "g 1e999", "line 4: invalid value"},
      {ok + "g 1 12.5", "line 4: invalid timestamp"},
      {ok + "g 1 2 3", "line 4: unexpected text"},
      {ok + "g{UUID=\"u\"}1", "line 4: invalid metric name or label list"},
      {ok + "g-x 1", "line 4: invalid metric name or label list"},
      {ok + "9g 1", "line 4: expected a metric name"},
      {ok + "g{UUID=\"a\\tb\"} 1", "line 4: invalid escape"},
      {ok + "g{UUID=\"a\",UUID=\"b\"} 1", "line 4: duplicate label UUID"},
      {ok + "g{__name__=\"x\"} 1", "line 4: invalid label name"},
      {ok + "g{a:b=\"x\"} 1", "line 4: invalid label name"},
      {ok + "g{a \"x\"} 1", "line 4: expected '='"},
      {ok + "g{a=x} 1", "line 4: expected '\"'"},
      {ok + "g{a=\"x\" b=\"y\"} 1", "line 4: expected ',' or '}'"},
      {ok + "g{a=\"\xff\"} 1", "line 4: value of label a is not valid UTF-8"},
      {ok + "g 1\r", "line 4: invalid value"},
      {ok + "# TYPE g gauge", "line 4: TYPE for g after its samples"},
      {ok + "# HELP g again", "line 4: HELP for g after its samples"},
      {"# TYPE x gauge\n# TYPE x counter\n", "line 2: second TYPE"},
      {"# HELP x a\n# HELP x b\n", "line 2: second HELP"},
      {"# TYPE x enum\n", "line 1: invalid TYPE"},
      {"# TYPE x\n", "line 1: invalid TYPE"},
      {"# HELP 1x a\n", "line 1: invalid metric name in HELP"},
      {"# HELP x bad \\t escape\n", "line 1: invalid escape in HELP"},
      {"# HELP x \xc3\x28\n", "line 1: HELP text is not valid UTF-8"},
      {"{a=\"b\"} 1\n", "line 1: expected a metric name"},
  };
  for (const Malformed& c : cases) {
    Result<DcgmText> parsed = ParseDcgmText(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.message), std::string::npos)
        << "for " << c.text << " got: " << parsed.status().message();
  }
}

TEST(ParseDcgmText, EnforcesItsCaps) {
  const std::string ten_mb_line = "g{UUID=\"" + std::string(10 << 20, 'a') + "\"} 1\n";
  Result<DcgmText> too_big = ParseDcgmText(ten_mb_line);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("more than the limit"), std::string::npos);

  DcgmParseLimits roomy;
  roomy.max_bytes = 32 << 20;
  Result<DcgmText> long_line = ParseDcgmText("g 1\n" + ten_mb_line, roomy);
  ASSERT_FALSE(long_line.ok());
  EXPECT_NE(long_line.status().message().find("line 2: longer than 65536 bytes"),
            std::string::npos);

  std::string many_labels = "g{";
  for (int i = 0; i < 65; ++i) many_labels += "l" + std::to_string(i) + "=\"v\",";
  many_labels += "} 1\n";
  Result<DcgmText> labels = ParseDcgmText(many_labels);
  ASSERT_FALSE(labels.ok());
  EXPECT_NE(labels.status().message().find("more than 64 labels"), std::string::npos);

  DcgmParseLimits few;
  few.max_families = 2;
  Result<DcgmText> families = ParseDcgmText("a 1\nb 1\nc 1\n", few);
  ASSERT_FALSE(families.ok());
  EXPECT_NE(families.status().message().find("line 3: more than 2 families"), std::string::npos);
}

TEST(ParseDcgmText, BinaryGarbageIsAnErrorNeverACrash) {
  std::mt19937 rng(42);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  Result<DcgmText> parsed = ParseDcgmText(garbage);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("DCGM text line "), std::string::npos);
}

// Every mutation of a valid text either parses into something that renders well-formed, or is
// refused: never a crash (this runs under ASan/UBSan) and never a malformed exposition.
TEST(ParseDcgmText, MutatedFixturesNeverCrashOrLeakMalformedOutput) {
  const std::string fixture = ReadFixture("dcgm_4gpus.txt");
  std::mt19937 rng(7);
  const char interesting[] = {'"', '\\', '\n', '{', '}', ',', '=', ' ', '#', '\xff', '\0', 'e'};
  int accepted = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string text = fixture;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[pos] = interesting[rng() % sizeof interesting];
          break;
        case 1:
          text.erase(pos, 1 + rng() % 8);
          break;
        default:
          text.resize(pos);
          break;
      }
      if (text.empty()) text = "x";
    }
    Result<DcgmText> parsed = ParseDcgmText(text);
    const JobLabelValues job = TrainJob();
    const auto labels = JobLabels(job);
    const std::vector<std::string> uuids = {kUuid0, kUuid1};
    const DcgmJob jobs[] = {{uuids, labels}};
    Result<RelabeledDcgm> relabeled = RelabelDcgmText(text, jobs, {});
    ASSERT_EQ(relabeled.ok(), parsed.ok()) << text;
    if (!parsed.ok()) {
      EXPECT_EQ(relabeled.status().message(), parsed.status().message());
      continue;
    }
    ++accepted;
    std::string out;
    for (const RenderedFamily& f : relabeled->jobs[0]) {
      AppendFamily(out, *f.header, f.samples.text, Format::kText004);
    }
    const auto checked = testing::CheckExposition(out, Format::kText004);
    ASSERT_TRUE(checked.error.empty()) << checked.error << "\n" << out;
  }
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace fleetwatch::expose
