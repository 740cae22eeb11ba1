// ParseDcgmText and RelabelDcgmText on arbitrary bytes (a host's dcgm-exporter text is
// untrusted): what the server does with a host's text is relabel it for the jobs on the host and
// serve it.
//
// Oracle: no crash or sanitizer report; a parse either fails with InvalidArgument or returns
// families that (1) keep the documented caps and name rules, (2) parse back to the same families
// after being rendered with the project's writer; RelabelDcgmText (3) fails exactly when the
// parse does, with the same message, (4) gives each job what the documented rules give when
// written out from the parsed families with the project's writers (the reference below), and
// (5) renders into an exposition, in both formats, that the exposition checker accepts.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <span>
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

// The families a job gets, written from the parsed text with the project's writers, one
// sample at a time, as the relabeling rules of dcgm.h say.
std::vector<std::pair<FamilyHeader, Fragment>> Reference(
    const DcgmText& text, std::span<const std::string> uuids, std::span<const Label> job_labels,
    std::span<const std::string_view> server_names) {
  std::vector<std::pair<FamilyHeader, Fragment>> out;
  for (const DcgmFamily& family : text.families) {
    if (IsForeignDcgmFamily(family.name, server_names)) continue;
    Fragment fragment;
    bool timestamps = false;
    for (const DcgmSample& sample : family.samples) {
      const std::string* uuid = nullptr;
      for (const auto& [name, value] : sample.labels) {
        if (name == "UUID") uuid = &value;
      }
      if (uuid == nullptr || std::find(uuids.begin(), uuids.end(), *uuid) == uuids.end()) {
        continue;
      }
      std::string pairs;
      std::vector<bool> used(job_labels.size());
      for (const auto& [name, value] : sample.labels) {
        std::string_view v = value;
        for (size_t j = 0; j < job_labels.size(); ++j) {
          if (job_labels[j].name == name) {
            v = job_labels[j].value;
            used[j] = true;
          }
        }
        AppendLabelPair(pairs, name, v);
      }
      for (size_t j = 0; j < job_labels.size(); ++j) {
        if (!used[j]) AppendLabelPair(pairs, job_labels[j].name, job_labels[j].value);
      }
      std::string line = sample.name + "{" + pairs + "} ";
      AppendValue(line, sample.value);
      std::string text_line = line, om_line = line;
      if (sample.timestamp_ms) {
        timestamps = true;
        text_line += " " + std::to_string(*sample.timestamp_ms);
        const int64_t ms = *sample.timestamp_ms;
        const uint64_t abs = ms < 0 ? 0 - static_cast<uint64_t>(ms) : static_cast<uint64_t>(ms);
        char frac[8];
        snprintf(frac, sizeof frac, ".%03u", static_cast<unsigned>(abs % 1000));
        om_line += std::string(" ") + (ms < 0 ? "-" : "") + std::to_string(abs / 1000) + frac;
      }
      fragment.text += text_line + "\n";
      fragment.openmetrics += om_line + "\n";
    }
    if (fragment.empty()) continue;
    if (!timestamps) fragment.openmetrics.clear();
    out.emplace_back(FamilyHeader(family.name, family.type, family.help), std::move(fragment));
  }
  return out;
}

void CheckRelabeled(const DcgmSamples& got,
                    const std::vector<std::pair<FamilyHeader, Fragment>>& want) {
  FW_CHECK(got.size() == want.size(), "relabel: another family count than the reference");
  for (size_t f = 0; f < got.size(); ++f) {
    FW_CHECK(got[f].header != nullptr, "relabel: a family without header");
    for (Format format : {Format::kText004, Format::kOpenMetrics100}) {
      FW_CHECK(got[f].header->Lines(format) == want[f].first.Lines(format),
               "relabel: another header than the reference");
      if (got[f].samples.For(format) != want[f].second.For(format)) {
        const std::string got_text(got[f].samples.For(format));
        fprintf(stderr, "relabel:\n%s\nreference:\n%s\n", got_text.c_str(),
                std::string(want[f].second.For(format)).c_str());
        FW_CHECK(false, "relabel: other samples than the reference");
      }
    }
  }
}

// What the server does with a host's text (server/exposition_updater.cc), compared with the
// reference, then served and checked.
void CheckServed(std::string_view input, const DcgmText& text, const DcgmParseLimits& limits) {
  ExpositionSnapshot snapshot;
  const std::string kServerFamily = "dstack_job_cpu_time_seconds_total";
  Result<FamilyId> own = snapshot.RegisterFamily(Section::kJob, kServerFamily, MetricType::kCounter,
                                                 "Server-side family");
  FW_CHECK(own.ok(), "registering a constant family");
  snapshot.SetFragment(*own, "job", Fragment{kServerFamily + "{dstack_run_name=\"r\"} 1.0\n", {}});
  const std::string_view server_names[] = {kServerFamily, "DCGM_FI_SERVER"};

  // Three jobs: one holds every UUID of the text, one the first only (so a GPU in two jobs),
  // one none.
  std::vector<std::string> all;
  for (const DcgmFamily& family : text.families) {
    for (const DcgmSample& sample : family.samples) {
      for (const auto& [name, value] : sample.labels) {
        if (name == "UUID") all.push_back(value);
      }
    }
  }
  const std::vector<std::string> first(all.begin(), all.begin() + (all.empty() ? 0 : 1));
  const std::vector<std::string> none;
  const JobLabelValues values{"proj", "user", "run",  "run-id", "run-0-0", "job-id",
                              "0",    "0",    "task", "ssh",    "H100"};
  const auto labels = JobLabels(values);
  const DcgmJob jobs[] = {{all, labels}, {first, labels}, {none, labels}};
  DcgmHeaderCache headers;
  Result<RelabeledDcgm> relabeled = RelabelDcgmText(input, jobs, server_names, &headers, limits);
  FW_CHECK(relabeled.ok(), "RelabelDcgmText refuses a text ParseDcgmText accepts");
  FW_CHECK(relabeled->jobs.size() == 3, "relabel: another job count");
  size_t foreign = 0;
  for (const DcgmFamily& family : text.families) {
    foreign += IsForeignDcgmFamily(family.name, server_names);
  }
  FW_CHECK(relabeled->foreign_families == foreign, "relabel: another count of foreign families");
  for (size_t j = 0; j < 3; ++j) {
    CheckRelabeled(relabeled->jobs[j], Reference(text, jobs[j].gpu_uuids, labels, server_names));
  }
  FW_CHECK(relabeled->jobs[2].empty(), "relabel: a job without GPUs got samples");

  snapshot.SetDcgm("job", std::move(relabeled->jobs[0]), /*expires_at=*/2);
  snapshot.SetDcgm("job2", std::move(relabeled->jobs[1]), /*expires_at=*/2);
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
  const std::string_view input = fleetwatch::fuzz::AsText(data, size);
  fleetwatch::Result<DcgmText> text = ParseDcgmText(input, limits);
  if (!text.ok()) {
    FW_CHECK(text.status().code() == fleetwatch::StatusCode::kInvalidArgument,
             "a parse error that is not InvalidArgument");
    fleetwatch::Result<RelabeledDcgm> relabeled = RelabelDcgmText(input, {}, {}, nullptr, limits);
    FW_CHECK(!relabeled.ok() && relabeled.status().message() == text.status().message(),
             "RelabelDcgmText does not refuse a text as ParseDcgmText does");
    return 0;
  }
  CheckShape(*text, limits);
  fleetwatch::Result<DcgmText> again = ParseDcgmText(Render(*text), limits);
  if (!again.ok()) {
    fprintf(stderr, "re-parse: %s\n", again.status().message().c_str());
    FW_CHECK(false, "the re-rendered text does not parse");
  }
  CheckSame(*text, *again);
  CheckServed(input, *text, limits);
  return 0;
}
