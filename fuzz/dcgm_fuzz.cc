// ParseDcgmText on arbitrary bytes (a host's dcgm-exporter text is untrusted), then what the
// server does with a parsed text: drop foreign families, relabel for a job, serve it.
//
// Oracle: no crash or sanitizer report; a parse either fails with InvalidArgument or returns
// families that (1) keep the documented caps and name rules, (2) parse back to the same families
// after being rendered with the project's writer, and (3) render into an exposition, in both
// formats, that the exposition checker accepts.

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "expose/dcgm.h"
#include "expose/exposition_checker.h"
#include "expose/family.h"
#include "expose/snapshot.h"
#include "expose/text_format.h"
#include "fuzz_support.h"

namespace fleetwatch::expose {
namespace {

bool SameValue(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}

// The parsed text written again with the project's writer, timestamps included.
std::string Render(const DcgmText& text) {
  std::string out;
  for (const DcgmFamily& family : text.families) {
    FamilyHeader header(family.name, family.type, family.help);
    out += header.Lines(Format::kText004);
    for (const DcgmSample& sample : family.samples) {
      std::string pairs;
      for (const auto& [name, value] : sample.labels) AppendLabelPair(pairs, name, value);
      AppendSample(out, sample.name, pairs, sample.value);
      if (sample.timestamp_ms) {
        out.pop_back();  // '\n'
        out += ' ' + std::to_string(*sample.timestamp_ms) + '\n';
      }
    }
  }
  return out;
}

void CheckSame(const DcgmText& a, const DcgmText& b) {
  FW_CHECK(a.families.size() == b.families.size(), "re-parse: another family count");
  for (size_t f = 0; f < a.families.size(); ++f) {
    const DcgmFamily& x = a.families[f];
    const DcgmFamily& y = b.families[f];
    FW_CHECK(x.name == y.name && x.help == y.help, "re-parse: another family name or HELP");
    FW_CHECK(x.type == y.type || (x.type == MetricType::kUnknown && y.type == MetricType::kUnknown),
             "re-parse: another family type");
    FW_CHECK(x.samples.size() == y.samples.size(), "re-parse: another sample count");
    for (size_t s = 0; s < x.samples.size(); ++s) {
      const DcgmSample& p = x.samples[s];
      const DcgmSample& q = y.samples[s];
      FW_CHECK(p.name == q.name && p.labels == q.labels, "re-parse: another sample name or labels");
      FW_CHECK(SameValue(p.value, q.value), "re-parse: another value");
      FW_CHECK(p.timestamp_ms == q.timestamp_ms, "re-parse: another timestamp");
    }
  }
}

void CheckShape(const DcgmText& text, const DcgmParseLimits& limits) {
  FW_CHECK(text.families.size() <= limits.max_families, "more families than the cap");
  std::set<std::string> names;
  for (const DcgmFamily& family : text.families) {
    FW_CHECK(IsValidMetricName(family.name), "invalid family name");
    FW_CHECK(names.insert(family.name).second, "family name twice");
    FW_CHECK(IsValidUtf8(family.help), "HELP not UTF-8");
    FW_CHECK(!family.samples.empty(), "family without samples");
    for (const DcgmSample& sample : family.samples) {
      FW_CHECK(IsValidMetricName(sample.name), "invalid sample name");
      FW_CHECK(sample.labels.size() <= limits.max_labels, "more labels than the cap");
      std::set<std::string> label_names;
      for (const auto& [name, value] : sample.labels) {
        FW_CHECK(IsValidLabelName(name), "invalid label name");
        FW_CHECK(label_names.insert(name).second, "label name twice");
        FW_CHECK(IsValidUtf8(value), "label value not UTF-8");
      }
    }
  }
}

// What the server does with a host's text (server/exposition_updater.cc), rendered and checked.
void CheckServed(DcgmText text) {
  ExpositionSnapshot snapshot;
  const std::string kServerFamily = "dstack_job_cpu_time_seconds_total";
  Result<FamilyId> own = snapshot.RegisterFamily(Section::kJob, kServerFamily, MetricType::kCounter,
                                                 "Server-side family");
  FW_CHECK(own.ok(), "registering a constant family");
  snapshot.SetFragment(*own, "job", Fragment{kServerFamily + "{dstack_run_name=\"r\"} 1.0\n", {}});
  const std::string_view server_names[] = {kServerFamily};
  DropForeignDcgmFamilies(text, server_names);

  std::vector<std::string> uuids;  // every UUID of the text belongs to the job
  for (const DcgmFamily& family : text.families) {
    for (const DcgmSample& sample : family.samples) {
      for (const auto& [name, value] : sample.labels) {
        if (name == "UUID") uuids.push_back(value);
      }
    }
  }
  JobLabelValues values{"proj", "user", "run",  "run-id", "run-0-0", "job-id",
                        "0",    "0",    "task", "ssh",    "H100"};
  snapshot.SetDcgm("job", RelabelDcgm(text, uuids, JobLabels(values)), /*expires_at=*/2);
  for (Format format : {Format::kText004, Format::kOpenMetrics100}) {
    const std::string body = snapshot.Render(format, /*now=*/1);
    const testing::CheckedExposition checked = testing::CheckExposition(body, format);
    if (!checked.error.empty()) {
      fprintf(stderr, "exposition checker: %s\n", checked.error.c_str());
      FW_CHECK(false, "the served exposition is malformed");
    }
  }
}

}  // namespace
}  // namespace fleetwatch::expose

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetwatch::expose;
  const DcgmParseLimits limits;
  fleetwatch::Result<DcgmText> text = ParseDcgmText(fleetwatch::fuzz::AsText(data, size), limits);
  if (!text.ok()) {
    FW_CHECK(text.status().code() == fleetwatch::StatusCode::kInvalidArgument,
             "a parse error that is not InvalidArgument");
    return 0;
  }
  CheckShape(*text, limits);
  fleetwatch::Result<DcgmText> again = ParseDcgmText(Render(*text), limits);
  if (!again.ok()) {
    fprintf(stderr, "re-parse: %s\n", again.status().message().c_str());
    FW_CHECK(false, "the re-rendered text does not parse");
  }
  CheckSame(*text, *again);
  CheckServed(std::move(text).value());
  return 0;
}
