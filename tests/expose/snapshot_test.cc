#include "expose/snapshot.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "expose/gzip.h"
#include "exposition_checker.h"

namespace fleetwatch::expose {
namespace {

using namespace std::string_literals;

constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kNow = 1'700'000'000 * kSecond;

std::string Sample(std::string_view name, std::span<const Label> labels, double value) {
  std::string out;
  AppendSample(out, name, RenderLabelPairs(labels), value);
  return out;
}

Fragment Lines(std::string text) { return Fragment{std::move(text), {}}; }

DcgmSamples DcgmFor(std::string_view text, std::vector<std::string> uuids,
                    const JobLabelValues& job) {
  const auto labels = JobLabels(job);
  const DcgmJob jobs[] = {{uuids, labels}};
  Result<RelabeledDcgm> relabeled = RelabelDcgmText(text, jobs, {});
  EXPECT_TRUE(relabeled.ok()) << relabeled.status().ToString();
  if (!relabeled.ok()) return {};
  return std::move(relabeled->jobs[0]);
}

std::string Gunzip(const std::string& gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  char buf[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  EXPECT_EQ(z.avail_in, 0u);
  inflateEnd(&z);
  return out;
}

const JobLabelValues kJobA{"main", "alice", "train", "rid-a",  "train-0-0", "jid-a",
                           "0",    "0",     "task",  "remote", "H100"};
const JobLabelValues kJobB{"main", "bob", "serve",   "rid-b",  "serve-0-0", "jid-b",
                           "0",    "0",   "service", "remote", "H100"};
constexpr std::string_view kJobALabels =
    "dstack_project_name=\"main\",dstack_user_name=\"alice\",dstack_run_name=\"train\","
    "dstack_run_id=\"rid-a\",dstack_job_name=\"train-0-0\",dstack_job_id=\"jid-a\","
    "dstack_job_num=\"0\",dstack_replica_num=\"0\",dstack_run_type=\"task\","
    "dstack_backend=\"remote\",dstack_gpu=\"H100\"";
constexpr std::string_view kJobBLabels =
    "dstack_project_name=\"main\",dstack_user_name=\"bob\",dstack_run_name=\"serve\","
    "dstack_run_id=\"rid-b\",dstack_job_name=\"serve-0-0\",dstack_job_id=\"jid-b\","
    "dstack_job_num=\"0\",dstack_replica_num=\"0\",dstack_run_type=\"service\","
    "dstack_backend=\"remote\",dstack_gpu=\"H100\"";

constexpr std::string_view kDcgmHostA =
    "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
    "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"U0\"} 10\n"
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"U1\"} 20\n"
    "# HELP DCGM_FI_PROF_PCIE_TX_BYTES PCIe TX bytes.\n"
    "# TYPE DCGM_FI_PROF_PCIE_TX_BYTES counter\n"
    "DCGM_FI_PROF_PCIE_TX_BYTES{gpu=\"0\",UUID=\"U0\"} 5 1700000000250\n"
    "DCGM_FI_PROF_PCIE_TX_BYTES{gpu=\"1\",UUID=\"U1\"} 6 1700000000250\n";
// Another host, another exporter version: its HELP differs from host A's.
constexpr std::string_view kDcgmHostB =
    "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization.\n"
    "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"V0\",hostname=\"b\"} 30\n";

// A small state in every section, registered out of order on purpose.
struct GoldenSnapshot {
  ExpositionSnapshot snapshot;
  FamilyId pending, duration, price, empty_gauge, runs, gpu_ratio;

  GoldenSnapshot() {
    pending = *snapshot.RegisterFamily(Section::kServer, "dstack_pending_runs_total",
                                       MetricType::kCounter, "Number of pending runs");
    duration =
        *snapshot.RegisterFamily(Section::kInstance, "dstack_instance_duration_seconds_total",
                                 MetricType::kCounter, "Total seconds the instance is running");
    price = *snapshot.RegisterFamily(Section::kInstance, "dstack_instance_price_dollars_per_hour",
                                     MetricType::kGauge, "Instance price, USD/hour");
    empty_gauge = *snapshot.RegisterFamily(Section::kInstance, "dstack_instance_gpu_count",
                                           MetricType::kGauge, "Instance GPU count");
    gpu_ratio = *snapshot.RegisterFamily(Section::kJob, "dstack_job_gpu_usage_ratio",
                                         MetricType::kGauge, "Job GPU usage, percent (as 0.0-1.0)");
    runs = *snapshot.RegisterFamily(Section::kRun, "dstack_run_count_total", MetricType::kCounter,
                                    "Total runs count");

    const Label i0[] = {{"dstack_project_name", "main"}, {"dstack_instance_name", "f-0"}};
    const Label i1[] = {{"dstack_project_name", "main"}, {"dstack_instance_name", "f-1"}};
    // Keys sort like the spec orders samples, whatever order they are set in.
    snapshot.SetFragment(duration, "main\0f-1"s,
                         Lines(Sample("dstack_instance_duration_seconds_total", i1, 60)));
    snapshot.SetFragment(duration, "main\0f-0"s,
                         Lines(Sample("dstack_instance_duration_seconds_total", i0, 3600)));
    snapshot.SetFragment(price, "main\0f-0"s,
                         Lines(Sample("dstack_instance_price_dollars_per_hour", i0, 0)));

    const Label alice[] = {{"dstack_project_name", "main"}, {"dstack_user_name", "alice"}};
    snapshot.SetFragment(runs, "main\0alice"s, Lines(Sample("dstack_run_count_total", alice, 0)));

    std::string pairs = RenderLabelPairs(JobLabels(kJobA));
    std::string ratio;
    for (int gpu = 0; gpu < 2; ++gpu) {
      std::string with_gpu = pairs;
      AppendLabelPair(with_gpu, "dstack_gpu_num", std::to_string(gpu));
      AppendSample(ratio, "dstack_job_gpu_usage_ratio", with_gpu, gpu == 0 ? 0.1 : 0.2);
    }
    snapshot.SetFragment(gpu_ratio, "main\0train-0-0"s, Lines(ratio));

    const Label task[] = {{"project_name", "main"}, {"run_type", "task"}};
    snapshot.SetFragment(pending, "main\0task"s,
                         Lines(Sample("dstack_pending_runs_total", task, 2)));

    snapshot.SetDcgm("main\0serve-0-0"s, DcgmFor(kDcgmHostB, {"V0"}, kJobB), kNow + 600 * kSecond);
    snapshot.SetDcgm("main\0train-0-0"s, DcgmFor(kDcgmHostA, {"U0", "U1"}, kJobA),
                     kNow + 300 * kSecond);
  }
};

std::string GoldenText(bool with_dcgm_a, bool with_dcgm_b, Format format) {
  const bool om = format == Format::kOpenMetrics100;
  const std::string a(kJobALabels), b(kJobBLabels);
  std::string s;
  s += om ? "# HELP dstack_instance_duration_seconds Total seconds the instance is running\n"
            "# TYPE dstack_instance_duration_seconds counter\n"
          : "# HELP dstack_instance_duration_seconds_total Total seconds the instance is running\n"
            "# TYPE dstack_instance_duration_seconds_total counter\n";
  s += "dstack_instance_duration_seconds_total{dstack_project_name=\"main\","
       "dstack_instance_name=\"f-0\"} 3600.0\n"
       "dstack_instance_duration_seconds_total{dstack_project_name=\"main\","
       "dstack_instance_name=\"f-1\"} 60.0\n"
       "# HELP dstack_instance_price_dollars_per_hour Instance price, USD/hour\n"
       "# TYPE dstack_instance_price_dollars_per_hour gauge\n"
       "dstack_instance_price_dollars_per_hour{dstack_project_name=\"main\","
       "dstack_instance_name=\"f-0\"} 0.0\n";
  s += om ? "# HELP dstack_run_count Total runs count\n# TYPE dstack_run_count counter\n"
          : "# HELP dstack_run_count_total Total runs count\n"
            "# TYPE dstack_run_count_total counter\n";
  s += "dstack_run_count_total{dstack_project_name=\"main\",dstack_user_name=\"alice\"} 0.0\n"
       "# HELP dstack_job_gpu_usage_ratio Job GPU usage, percent (as 0.0-1.0)\n"
       "# TYPE dstack_job_gpu_usage_ratio gauge\n"
       "dstack_job_gpu_usage_ratio{" +
       a +
       ",dstack_gpu_num=\"0\"} 0.1\n"
       "dstack_job_gpu_usage_ratio{" +
       a + ",dstack_gpu_num=\"1\"} 0.2\n";
  if (with_dcgm_a || with_dcgm_b) {
    // Key order puts serve-0-0 (job B) first: its HELP heads the merged family.
    s += with_dcgm_b ? "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization.\n"
                     : "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n";
    s += "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n";
    if (with_dcgm_b)
      s += "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"V0\",hostname=\"b\"," + b + "} 30.0\n";
    if (with_dcgm_a) {
      s += "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"U0\"," + a +
           "} 10.0\n"
           "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"U1\"," +
           a +
           "} 20.0\n"
           "# HELP DCGM_FI_PROF_PCIE_TX_BYTES PCIe TX bytes.\n";
      s += om ? "# TYPE DCGM_FI_PROF_PCIE_TX_BYTES unknown\n"
              : "# TYPE DCGM_FI_PROF_PCIE_TX_BYTES counter\n";
      const std::string ts = om ? " 1700000000.250\n" : " 1700000000250\n";
      s += "DCGM_FI_PROF_PCIE_TX_BYTES{gpu=\"0\",UUID=\"U0\"," + a + "} 5.0" + ts +
           "DCGM_FI_PROF_PCIE_TX_BYTES{gpu=\"1\",UUID=\"U1\"," + a + "} 6.0" + ts;
    }
  }
  s += om ? "# HELP dstack_pending_runs Number of pending runs\n"
            "# TYPE dstack_pending_runs counter\n"
          : "# HELP dstack_pending_runs_total Number of pending runs\n"
            "# TYPE dstack_pending_runs_total counter\n";
  s += "dstack_pending_runs_total{project_name=\"main\",run_type=\"task\"} 2.0\n";
  if (om) s += "# EOF\n";
  return s;
}

TEST(ExpositionSnapshot, RendersTheGoldenTextExposition) {
  GoldenSnapshot g;
  const std::string text = g.snapshot.Render(Format::kText004, kNow);
  EXPECT_EQ(text, GoldenText(true, true, Format::kText004));
  EXPECT_EQ(testing::CheckExposition(text, Format::kText004).error, "");
}

TEST(ExpositionSnapshot, RendersTheGoldenOpenMetricsExposition) {
  GoldenSnapshot g;
  const std::string om = g.snapshot.Render(Format::kOpenMetrics100, kNow);
  EXPECT_EQ(om, GoldenText(true, true, Format::kOpenMetrics100));
  EXPECT_EQ(testing::CheckExposition(om, Format::kOpenMetrics100).error, "");
}

TEST(ExpositionSnapshot, DropsStaleDcgmAtRenderTime) {
  GoldenSnapshot g;
  // Job A's text expires at +300 s, job B's at +600 s; B's HELP then heads the family.
  EXPECT_EQ(g.snapshot.Render(Format::kText004, kNow + 300 * kSecond),
            GoldenText(false, true, Format::kText004));
  EXPECT_EQ(g.snapshot.Render(Format::kText004, kNow + 600 * kSecond),
            GoldenText(false, false, Format::kText004));
  // Renders did not forget them; a clock going back shows them again until dropped.
  EXPECT_EQ(g.snapshot.Render(Format::kText004, kNow), GoldenText(true, true, Format::kText004));
  g.snapshot.DropExpiredDcgm(kNow + 300 * kSecond);
  EXPECT_EQ(g.snapshot.Render(Format::kText004, kNow), GoldenText(false, true, Format::kText004));
}

TEST(ExpositionSnapshot, RemovingFragmentsOmitsEmptiedFamilies) {
  GoldenSnapshot g;
  g.snapshot.RemoveFragment(g.runs, "main\0alice"s);
  g.snapshot.Apply({{g.gpu_ratio, "main\0train-0-0"s, {}}, {g.pending, "main\0task"s, {}}});
  g.snapshot.RemoveDcgm("main\0train-0-0"s);
  g.snapshot.SetDcgm("main\0serve-0-0"s, {}, kNow + kSecond);  // empty: removes
  g.snapshot.RemoveFragment(g.duration, "no such key");
  EXPECT_EQ(g.snapshot.Render(Format::kText004, kNow),
            "# HELP dstack_instance_duration_seconds_total Total seconds the instance is running\n"
            "# TYPE dstack_instance_duration_seconds_total counter\n"
            "dstack_instance_duration_seconds_total{dstack_project_name=\"main\","
            "dstack_instance_name=\"f-0\"} 3600.0\n"
            "dstack_instance_duration_seconds_total{dstack_project_name=\"main\","
            "dstack_instance_name=\"f-1\"} 60.0\n"
            "# HELP dstack_instance_price_dollars_per_hour Instance price, USD/hour\n"
            "# TYPE dstack_instance_price_dollars_per_hour gauge\n"
            "dstack_instance_price_dollars_per_hour{dstack_project_name=\"main\","
            "dstack_instance_name=\"f-0\"} 0.0\n");
}

// ApplyDcgm sets and removes a batch of keys at once; it is SetDcgm and RemoveDcgm one by one.
TEST(ExpositionSnapshot, ApplyDcgmIsTheSameAsSettingAndRemovingOneByOne) {
  ExpositionSnapshot batch;
  ExpositionSnapshot single;
  single.SetDcgm("a", DcgmFor(kDcgmHostA, {"U0"}, kJobA), kNow + kSecond);
  single.SetDcgm("b", DcgmFor(kDcgmHostB, {"V0"}, kJobB), kNow + kSecond);
  {
    std::vector<DcgmChange> changes;
    changes.push_back({"a", DcgmFor(kDcgmHostA, {"U0"}, kJobA), kNow + kSecond});
    changes.push_back({"b", DcgmFor(kDcgmHostB, {"V0"}, kJobB), kNow + kSecond});
    batch.ApplyDcgm(std::move(changes));
  }
  EXPECT_EQ(batch.Render(Format::kText004, kNow), single.Render(Format::kText004, kNow));
  // Replaces one, removes the other, and removing a key that is not there changes nothing.
  const uint64_t version = batch.version();
  {
    std::vector<DcgmChange> changes;
    changes.push_back({"a", DcgmFor(kDcgmHostA, {"U1"}, kJobA), kNow + 2 * kSecond});
    changes.push_back({"b", {}, 0});
    changes.push_back({"c", {}, 0});
    batch.ApplyDcgm(std::move(changes));
  }
  EXPECT_EQ(batch.version(), version + 1);
  single.SetDcgm("a", DcgmFor(kDcgmHostA, {"U1"}, kJobA), kNow + 2 * kSecond);
  single.RemoveDcgm("b");
  EXPECT_EQ(batch.Render(Format::kText004, kNow + kSecond),
            single.Render(Format::kText004, kNow + kSecond));
  EXPECT_NE(batch.Render(Format::kText004, kNow + kSecond).find("UUID=\"U1\""), std::string::npos);
  {
    std::vector<DcgmChange> changes;
    changes.push_back({"b", {}, 0});
    batch.ApplyDcgm(std::move(changes));  // nothing to remove: no new version
  }
  EXPECT_EQ(batch.version(), version + 1);
}

// DropExpiredDcgm skips its sweep before the earliest expiry; replacing a key's samples with a
// later expiry, or removing the earliest, must not make it keep or drop the wrong ones.
TEST(ExpositionSnapshot, DropExpiredDcgmFollowsReplacedAndRemovedExpiries) {
  ExpositionSnapshot s;
  s.SetDcgm("a", DcgmFor(kDcgmHostA, {"U0"}, kJobA), kNow + 10 * kSecond);
  s.SetDcgm("b", DcgmFor(kDcgmHostB, {"V0"}, kJobB), kNow + 20 * kSecond);
  // `a` renewed: expires after `b` now.
  s.SetDcgm("a", DcgmFor(kDcgmHostA, {"U0"}, kJobA), kNow + 30 * kSecond);
  s.DropExpiredDcgm(kNow + 15 * kSecond);
  EXPECT_NE(s.Render(Format::kText004, kNow).find("jid-a"), std::string::npos);
  EXPECT_NE(s.Render(Format::kText004, kNow).find("jid-b"), std::string::npos);
  s.DropExpiredDcgm(kNow + 20 * kSecond);  // `b` goes; rendering at an earlier time shows it
  EXPECT_NE(s.Render(Format::kText004, kNow).find("jid-a"), std::string::npos);
  EXPECT_EQ(s.Render(Format::kText004, kNow).find("jid-b"), std::string::npos);
  // A key set again after a sweep counts with its own expiry.
  s.SetDcgm("b", DcgmFor(kDcgmHostB, {"V0"}, kJobB), kNow + 25 * kSecond);
  s.RemoveDcgm("a");
  s.DropExpiredDcgm(kNow + 24 * kSecond);
  EXPECT_NE(s.Render(Format::kText004, kNow).find("jid-b"), std::string::npos);
  std::vector<DcgmChange> changes;
  changes.push_back({"a", DcgmFor(kDcgmHostA, {"U0"}, kJobA), kNow + 26 * kSecond});
  s.ApplyDcgm(std::move(changes));
  s.DropExpiredDcgm(kNow + 25 * kSecond);
  EXPECT_NE(s.Render(Format::kText004, kNow).find("jid-a"), std::string::npos);
  EXPECT_EQ(s.Render(Format::kText004, kNow).find("jid-b"), std::string::npos);
  s.DropExpiredDcgm(kNow + 26 * kSecond);
  EXPECT_EQ(s.Render(Format::kText004, kNow), "");
}

// ApplyShared finds a family's keys where the previous change of the family left off when they
// come in ascending order; any order of sets and removals gives what one change at a time does.
TEST(ExpositionSnapshot, ApplySharedInAnyKeyOrderIsOneChangeAtATime) {
  const auto fragment = [](const std::string& key, const std::string& value) {
    return std::make_shared<const Fragment>(Lines("f{k=\"" + key + "\"} " + value + "\n"));
  };
  const std::vector<std::vector<std::pair<std::string, std::string>>> rounds = {
      {{"b", "1"}, {"d", "1"}, {"f", "1"}, {"h", "1"}},
      // Ascending, with removals between and keys that are new.
      {{"a", "2"}, {"b", ""}, {"c", "2"}, {"d", "2"}, {"e", ""}, {"f", ""}, {"h", "2"}},
      // Descending and mixed, a key twice, removals of keys not there.
      {{"h", "3"}, {"d", ""}, {"z", ""}, {"a", "3"}, {"g", "3"}, {"c", "3"}, {"c", ""}},
      {{"a", ""}, {"b", "4"}, {"a", "4"}, {"i", "4"}, {"h", ""}, {"g", "4"}},
  };
  ExpositionSnapshot batch;
  ExpositionSnapshot single;
  const FamilyId f = *batch.RegisterFamily(Section::kJob, "f", MetricType::kGauge, "F");
  const FamilyId g = *batch.RegisterFamily(Section::kJob, "g", MetricType::kGauge, "G");
  ASSERT_EQ(*single.RegisterFamily(Section::kJob, "f", MetricType::kGauge, "F"), f);
  ASSERT_EQ(*single.RegisterFamily(Section::kJob, "g", MetricType::kGauge, "G"), g);
  for (const auto& round : rounds) {
    std::vector<SharedFragmentChange> changes;
    for (const auto& [key, value] : round) {
      // The two families interleaved, as a writer changes a key's families together.
      for (FamilyId family : {f, g}) {
        changes.push_back({family, key, value.empty() ? nullptr : fragment(key, value)});
        if (value.empty()) {
          single.RemoveFragment(family, key);
        } else {
          single.SetFragment(family, key, *fragment(key, value));
        }
      }
    }
    batch.ApplyShared(std::move(changes));
    EXPECT_EQ(batch.Render(Format::kText004, kNow), single.Render(Format::kText004, kNow));
  }
  EXPECT_EQ(batch.Render(Format::kText004, kNow),
            "# HELP f F\n# TYPE f gauge\nf{k=\"a\"} 4\nf{k=\"b\"} 4\nf{k=\"g\"} 4\n"
            "f{k=\"i\"} 4\n"
            "# HELP g G\n# TYPE g gauge\nf{k=\"a\"} 4\nf{k=\"b\"} 4\nf{k=\"g\"} 4\n"
            "f{k=\"i\"} 4\n");
}

TEST(ExpositionSnapshot, EmptySnapshotRendersNothingButEof) {
  ExpositionSnapshot s;
  EXPECT_EQ(s.Render(Format::kText004, kNow), "");
  EXPECT_EQ(s.Render(Format::kOpenMetrics100, kNow), "# EOF\n");
}

TEST(ExpositionSnapshot, RefusesBadAndDuplicateNames) {
  ExpositionSnapshot s;
  EXPECT_TRUE(s.RegisterFamily(Section::kJob, "a_b", MetricType::kGauge, "h").ok());
  Result<FamilyId> dup = s.RegisterFamily(Section::kRun, "a_b", MetricType::kGauge, "h");
  EXPECT_EQ(dup.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(s.RegisterFamily(Section::kRun, "a-b", MetricType::kGauge, "h").ok());
  EXPECT_FALSE(s.RegisterFamily(Section::kRun, "", MetricType::kGauge, "h").ok());
}

TEST(ExpositionSnapshot, DcgmCannotShadowARegisteredFamily) {
  ExpositionSnapshot s;
  const FamilyId ours =
      *s.RegisterFamily(Section::kServer, "DCGM_FI_DEV_GPU_UTIL", MetricType::kGauge, "ours");
  s.SetFragment(ours, "k", Lines("DCGM_FI_DEV_GPU_UTIL 1.0\n"));
  s.SetDcgm("job", DcgmFor(kDcgmHostA, {"U0"}, kJobA), kNow + kSecond);
  const std::string text = s.Render(Format::kText004, kNow);
  EXPECT_EQ(testing::CheckExposition(text, Format::kText004).error, "");
  EXPECT_EQ(text.find("GPU utilization"), std::string::npos);
  EXPECT_NE(text.find("# HELP DCGM_FI_DEV_GPU_UTIL ours\n"), std::string::npos);
  EXPECT_NE(text.find("DCGM_FI_PROF_PCIE_TX_BYTES{"), std::string::npos);
}

TEST(ExpositionSnapshot, BodyIsCachedUntilAChangeOrAnExpiry) {
  GoldenSnapshot g;
  const auto first = g.snapshot.Body(Format::kText004, false, kNow);
  EXPECT_EQ(*first, GoldenText(true, true, Format::kText004));
  EXPECT_EQ(g.snapshot.Body(Format::kText004, false, kNow + kSecond), first);
  const auto gz = g.snapshot.Body(Format::kText004, true, kNow + kSecond);
  EXPECT_EQ(g.snapshot.Body(Format::kText004, true, kNow + 2 * kSecond), gz);
  EXPECT_EQ(Gunzip(*gz), *first);
  EXPECT_NE(g.snapshot.Body(Format::kOpenMetrics100, false, kNow), first);

  // Job A's DCGM text expires at +300 s: the cache must not outlive it.
  const auto later = g.snapshot.Body(Format::kText004, true, kNow + 300 * kSecond);
  EXPECT_EQ(Gunzip(*later), GoldenText(false, true, Format::kText004));

  const uint64_t version = g.snapshot.version();
  g.snapshot.RemoveFragment(g.pending, "main\0task"s);
  EXPECT_GT(g.snapshot.version(), version);
  const auto changed = g.snapshot.Body(Format::kText004, false, kNow + 300 * kSecond);
  EXPECT_EQ(changed->find("dstack_pending_runs_total"), std::string::npos);
  EXPECT_EQ(Gunzip(*g.snapshot.Body(Format::kText004, true, kNow + 300 * kSecond)), *changed);
}

TEST(ExpositionSnapshot, AChangeLetsGoOfTheBodiesItMadeStale) {
  GoldenSnapshot g;
  std::weak_ptr<const std::string> plain = g.snapshot.Body(Format::kText004, false, kNow);
  std::weak_ptr<const std::string> gz = g.snapshot.Body(Format::kText004, true, kNow);
  // Nobody holds them but the cache, which keeps them while they are current...
  EXPECT_FALSE(plain.expired());
  EXPECT_FALSE(gz.expired());
  EXPECT_EQ(g.snapshot.Body(Format::kText004, false, kNow + kSecond), plain.lock());
  // ...and no longer once a change made them stale, before anyone asks again.
  g.snapshot.RemoveFragment(g.pending, "main\0task"s);
  EXPECT_TRUE(plain.expired());
  EXPECT_TRUE(gz.expired());
  // A scrape still writing a body keeps it.
  const auto held = g.snapshot.Body(Format::kOpenMetrics100, true, kNow);
  g.snapshot.SetDcgm("job-c", DcgmFor(kDcgmHostA, {"U0"}, kJobA), kNow + kSecond);
  EXPECT_FALSE(Gunzip(*held).empty());
}

// Ages and durations are evaluated by the render, at its time rounded down to the step, after
// the fragment's text; clamped at 0.0; the same in both formats.
TEST(ExpositionSnapshot, TimedSamplesAreEvaluatedWhenRendered) {
  ExpositionSnapshot s;
  const FamilyId id =
      *s.RegisterFamily(Section::kInstance, "age_seconds_total", MetricType::kCounter, "Age");
  Fragment fragment{"age_seconds_total{k=\"fixed\"} 1.0\n"};
  fragment.timed.push_back({"age_seconds_total{k=\"a\"} ", kNow - 3600 * kSecond - 250'000});
  fragment.timed.push_back({"age_seconds_total{k=\"future\"} ", kNow + 10 * kSecond});
  s.SetFragment(id, "all", std::move(fragment));
  const std::string header = "# HELP age_seconds_total Age\n# TYPE age_seconds_total counter\n";
  const std::string fixed = "age_seconds_total{k=\"fixed\"} 1.0\n";
  EXPECT_EQ(
      s.Render(Format::kText004, kNow + 999'999),
      header + fixed + "age_seconds_total{k=\"a\"} 3600.25\nage_seconds_total{k=\"future\"} 0.0\n");
  EXPECT_EQ(s.Render(Format::kText004, kNow + 61 * kSecond + 5),
            header + fixed +
                "age_seconds_total{k=\"a\"} 3661.25\nage_seconds_total{k=\"future\"} 51.0\n");
  EXPECT_EQ(s.Render(Format::kOpenMetrics100, kNow),
            "# HELP age_seconds Age\n# TYPE age_seconds counter\n" + fixed +
                "age_seconds_total{k=\"a\"} 3600.25\nage_seconds_total{k=\"future\"} 0.0\n# EOF\n");
  // Replacing and removing the fragment forgets its timed samples: the body is cached as long as
  // before.
  s.SetFragment(id, "all", Fragment{fixed});
  const auto body = s.Body(Format::kText004, false, kNow);
  EXPECT_EQ(s.Body(Format::kText004, false, kNow + 5 * kSecond), body);
}

// Two snapshots written at different moments with the same anchors render the same bytes at the
// same time; a body with timed samples is served again within its step only; a later render is
// never smaller than an earlier one from either.
TEST(ExpositionSnapshot, TimedBodiesAreCachedForTheirStepOnly) {
  ExpositionSnapshot a;
  ExpositionSnapshot b(kSecond);
  for (ExpositionSnapshot* s : {&a, &b}) {
    const FamilyId id = *s->RegisterFamily(Section::kJob, "job_duration_seconds_total",
                                           MetricType::kCounter, "Duration");
    Fragment fragment;
    fragment.timed.push_back({"job_duration_seconds_total{job=\"x\"} ", kNow - 90 * kSecond});
    s->SetFragment(id, "all", std::move(fragment));
  }
  const auto first = a.Body(Format::kText004, false, kNow + 100);
  EXPECT_NE(first->find("} 90.0\n"), std::string::npos) << *first;
  EXPECT_EQ(a.Body(Format::kText004, false, kNow + 999'999), first);
  EXPECT_EQ(*b.Body(Format::kText004, false, kNow + 500'000), *first);
  const auto next = a.Body(Format::kText004, false, kNow + kSecond);
  EXPECT_NE(next, first);
  EXPECT_NE(next->find("} 91.0\n"), std::string::npos) << *next;
  EXPECT_EQ(a.Body(Format::kText004, false, kNow + kSecond + 1), next);
  // Gzip'd bodies follow the same steps.
  EXPECT_EQ(Gunzip(*a.Body(Format::kText004, true, kNow + 3 * kSecond + 7)),
            *b.Body(Format::kText004, false, kNow + 3 * kSecond));
  ExpositionSnapshot fine(250'000);
  EXPECT_EQ(fine.EvaluationTime(kNow + 600'000), kNow + 500'000);
  EXPECT_EQ(fine.EvaluationTime(-1), -250'000);
}

TEST(ExpositionSnapshot, GetFragmentReturnsWhatIsHeldTrimmedToItsSize) {
  ExpositionSnapshot s;
  const FamilyId id = *s.RegisterFamily(Section::kServer, "x", MetricType::kGauge, "h");
  EXPECT_EQ(s.GetFragment(id, "k"), nullptr);
  Fragment fragment;
  fragment.text.reserve(1 << 20);
  fragment.text = "x 1\n";
  s.SetFragment(id, "k", std::move(fragment));
  const auto held = s.GetFragment(id, "k");
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->text, "x 1\n");
  EXPECT_LT(held->text.capacity(), size_t{1} << 20);
  s.RemoveFragment(id, "k");
  EXPECT_EQ(s.GetFragment(id, "k"), nullptr);
  EXPECT_EQ(held->text, "x 1\n");  // what a caller holds stays valid
}

TEST(Gzip, RoundTripsThroughZlib) {
  std::string big;
  for (int i = 0; i < 100000; ++i)
    big += "DCGM_FI_DEV_GPU_UTIL{gpu=\"" + std::to_string(i) + "\"} 1.0\n";
  for (int level : {0, 1, 6, 12}) {
    const std::string gz = Gzip(big, level);
    ASSERT_GE(gz.size(), 18u);
    EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
    EXPECT_EQ(Gunzip(gz), big) << "level " << level;
  }
  EXPECT_EQ(Gunzip(Gzip("", 1)), "");
}

// 4 writers change fragments and DCGM texts while 2 scrapers render; run under ASan/UBSan
// (FLEETWATCH_SANITIZE) this also checks for races on fragment lifetimes.
TEST(ExpositionSnapshot, ConcurrentWritersNeverBreakARender) {
  ExpositionSnapshot s;
  std::vector<FamilyId> families;
  for (const auto& [section, name] : std::vector<std::pair<Section, std::string>>{
           {Section::kInstance, "dstack_instance_gpu_count"},
           {Section::kRun, "dstack_run_count_total"},
           {Section::kJob, "dstack_job_cpu_count"},
           {Section::kServer, "dstack_pending_runs_total"}}) {
    families.push_back(*s.RegisterFamily(
        section, name, name.ends_with("_total") ? MetricType::kCounter : MetricType::kGauge,
        "help"));
  }
  const std::vector<std::string> names = {"dstack_instance_gpu_count", "dstack_run_count_total",
                                          "dstack_job_cpu_count", "dstack_pending_runs_total"};
  std::atomic<int> writers_left = 4;
  std::atomic<int> renders = 0;
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 400; ++i) {
        const std::string key = std::to_string(w) + "/" + std::to_string(i % 17);
        const size_t f = static_cast<size_t>(i) % families.size();
        const Label l[] = {{"k", key}, {"evil", "\"}\n\\"}};
        if (i % 5 == 4) {
          s.RemoveFragment(families[f], key);
        } else if (i % 7 == 0) {
          s.Apply({{families[0], key, Lines(Sample(names[0], l, i))},
                   {families[2], key, Lines(Sample(names[2], l, i) + Sample(names[2], l, -i))}});
        } else {
          s.SetFragment(families[f], key, Lines(Sample(names[f], l, i)));
        }
        if (i % 3 == 0) {
          JobLabelValues job = kJobA;
          job.job_id = key;
          s.SetDcgm(key, DcgmFor(i % 2 ? kDcgmHostA : kDcgmHostB, {"U0", "U1", "V0"}, job),
                    kNow + (i % 11) * kSecond);
        }
        if (i % 50 == 0) s.DropExpiredDcgm(kNow + 5 * kSecond);
      }
      --writers_left;
    });
  }
  std::atomic<bool> failed = false;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      int n = 0;
      while ((writers_left > 0 || n < 3) && !failed) {
        const Format format = (n + r) % 2 ? Format::kOpenMetrics100 : Format::kText004;
        const TimeMicros now = kNow + (n % 8) * kSecond;
        const std::string body =
            n % 3 == 0 ? Gunzip(*s.Body(format, true, now)) : s.Render(format, now);
        const auto checked = testing::CheckExposition(body, format);
        if (!checked.error.empty()) {
          ADD_FAILURE() << checked.error;
          failed = true;
        }
        ++n;
        ++renders;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_FALSE(failed);
  EXPECT_GE(renders.load(), 6);
}

}  // namespace
}  // namespace fleetwatch::expose
