// The exposition writer on random families, labels and values: what GET /metrics serves must be
// well-formed whatever the names, label values (any bytes) and numbers are.
//
// Oracle: the rendered exposition passes the exposition checker in both formats, and the project's
// own parser (ParseDcgmText) reads the text 0.0.4 rendering back with the same families, sample
// count, label values (those that were valid UTF-8) and values.

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "expose/dcgm.h"
#include "expose/exposition_checker.h"
#include "expose/family.h"
#include "expose/snapshot.h"
#include "expose/text_format.h"
#include "fuzz_support.h"

namespace fleetwatch::expose {
namespace {

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

struct Family {
  std::string name;
  MetricType type = MetricType::kGauge;
  std::vector<Sample> samples;
};

double ConsumeValue(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 4)) {
    case 0:
      return std::nan("");
    case 1:
      return in.ConsumeBool() ? INFINITY : -INFINITY;
    case 2:
      return in.ConsumeIntegral<int64_t>();
    default: {
      uint8_t bytes[sizeof(double)] = {};
      in.ConsumeData(bytes, sizeof bytes);
      double value;
      std::memcpy(&value, bytes, sizeof value);
      return value;
    }
  }
}

// The name a sample of `family` may have in text 0.0.4 (histogram and summary suffixes).
std::string SampleName(FuzzedDataProvider& in, const Family& family) {
  if (family.type == MetricType::kHistogram || family.type == MetricType::kSummary) {
    static const char* kSuffixes[] = {"_bucket", "_sum", "_count", ""};
    const char* suffix = kSuffixes[in.ConsumeIntegralInRange(0, 3)];
    if (family.type == MetricType::kSummary && std::string_view(suffix) == "_bucket") suffix = "";
    return family.name + suffix;
  }
  return family.name;
}

std::vector<Family> ConsumeFamilies(FuzzedDataProvider& in) {
  std::vector<Family> families;
  std::set<std::string> names;
  const int count = in.ConsumeIntegralInRange(0, 8);
  for (int f = 0; f < count && in.remaining_bytes() > 0; ++f) {
    Family family;
    family.name = in.ConsumeRandomLengthString(32);
    if (!IsValidMetricName(family.name)) family.name = "m" + std::to_string(f);
    // Families whose sample names could be read as another's (x and x_sum) are the caller's to
    // avoid, as the spec's names do: one name per family and no suffixed names here.
    for (std::string_view suffix : {"_bucket", "_sum", "_count", "_total"}) {
      if (family.name.ends_with(suffix)) family.name += "_x";
    }
    // Names are unique, also as OpenMetrics heads them (a counter x_total is headed x).
    if (!names.insert(family.name).second) continue;
    family.type = static_cast<MetricType>(in.ConsumeIntegralInRange(0, 4));
    if (family.type == MetricType::kCounter && in.ConsumeBool()) family.name += "_total";
    const int samples = in.ConsumeIntegralInRange(1, 6);
    for (int s = 0; s < samples; ++s) {
      Sample sample;
      sample.name = SampleName(in, family);
      std::set<std::string> label_names;
      const int labels = in.ConsumeIntegralInRange(0, 4);
      for (int l = 0; l < labels; ++l) {
        std::string name = in.ConsumeRandomLengthString(16);
        if (!IsValidLabelName(name)) name = "l" + std::to_string(l);
        if (!label_names.insert(name).second) continue;
        sample.labels.emplace_back(std::move(name), in.ConsumeRandomLengthString(64));
      }
      sample.value = ConsumeValue(in);
      family.samples.push_back(std::move(sample));
    }
    families.push_back(std::move(family));
  }
  return families;
}

bool SameValue(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}

void Check(const std::vector<Family>& families, std::string_view help) {
  ExpositionSnapshot snapshot;
  for (const Family& family : families) {
    Result<FamilyId> id =
        snapshot.RegisterFamily(Section::kRun, family.name, family.type, std::string(help));
    FW_CHECK(id.ok(), "registering a valid, new family name");
    Fragment fragment;
    for (const Sample& sample : family.samples) {
      std::vector<Label> labels;
      for (const auto& [name, value] : sample.labels) labels.push_back({name, value});
      AppendSample(fragment.text, sample.name, RenderLabelPairs(labels), sample.value);
    }
    snapshot.SetFragment(*id, "key", std::move(fragment));
  }
  for (Format format : {Format::kText004, Format::kOpenMetrics100}) {
    const std::string body = snapshot.Render(format, /*now=*/0);
    const testing::CheckedExposition checked = testing::CheckExposition(body, format);
    if (!checked.error.empty()) {
      fprintf(stderr, "exposition checker: %s\n", checked.error.c_str());
      FW_CHECK(false, "the rendered exposition is malformed");
    }
    FW_CHECK(checked.families.size() == families.size(), "a family went missing");
  }

  const std::string text = snapshot.Render(Format::kText004, /*now=*/0);
  Result<DcgmText> parsed = ParseDcgmText(text);
  if (!parsed.ok()) {
    fprintf(stderr, "ParseDcgmText: %s\n", parsed.status().message().c_str());
    FW_CHECK(false, "the project's parser refuses the rendered exposition");
  }
  FW_CHECK(parsed->families.size() == families.size(), "another family count");
  for (size_t f = 0; f < families.size(); ++f) {
    const Family& family = families[f];
    const DcgmFamily& read = parsed->families[f];
    FW_CHECK(read.name == family.name, "another family name");
    FW_CHECK(read.samples.size() == family.samples.size(), "another sample count");
    // Readers skip the blanks between a HELP line's name and its text, so those are not kept.
    const size_t text_start = std::min(help.find_first_not_of(" \t"), help.size());
    if (IsValidUtf8(help)) FW_CHECK(read.help == help.substr(text_start), "another HELP text");
    for (size_t s = 0; s < family.samples.size(); ++s) {
      const Sample& sample = family.samples[s];
      const DcgmSample& got = read.samples[s];
      FW_CHECK(got.name == sample.name, "another sample name");
      FW_CHECK(SameValue(got.value, sample.value), "another value");
      FW_CHECK(got.labels.size() == sample.labels.size(), "another label count");
      for (size_t l = 0; l < sample.labels.size(); ++l) {
        FW_CHECK(got.labels[l].first == sample.labels[l].first, "another label name");
        if (IsValidUtf8(sample.labels[l].second)) {
          FW_CHECK(got.labels[l].second == sample.labels[l].second, "another label value");
        }
      }
    }
  }
}

}  // namespace
}  // namespace fleetwatch::expose

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string help = in.ConsumeRandomLengthString(64);
  const std::vector<fleetwatch::expose::Family> families = fleetwatch::expose::ConsumeFamilies(in);
  fleetwatch::expose::Check(families, help);
  return 0;
}
