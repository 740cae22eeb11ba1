#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "expose/family.h"
#include "expose/text_format.h"
#include "util/status.h"

namespace fleetwatch::expose {

// dcgm-exporter's text (Prometheus text format 0.0.4), parsed, and relabeled for one job.
// The text comes from hosts: untrusted. Parsing is all or nothing.

struct DcgmSample {
  std::string name;  // the sample's metric name (a histogram's end in _bucket/_sum/_count)
  std::vector<std::pair<std::string, std::string>> labels;  // in text order, unescaped
  double value = 0;
  std::optional<int64_t> timestamp_ms;
};

struct DcgmFamily {
  std::string name;
  MetricType type = MetricType::kUnknown;  // kUnknown when the text has no TYPE line
  std::string help;                        // unescaped; empty when the text has no HELP line
  std::vector<DcgmSample> samples;         // never empty; a HELP/TYPE without samples is dropped
};

struct DcgmText {
  std::vector<DcgmFamily> families;  // in order of first appearance
};

// Caps that bound the work and memory one host's text can cost.
struct DcgmParseLimits {
  size_t max_bytes = 4 << 20;        // the whole text
  size_t max_line_bytes = 64 << 10;  // one line, without its '\n'
  size_t max_labels = 64;            // labels of one sample
  size_t max_families = 4096;
};

// Parses dcgm-exporter output. Accepts what Prometheus' text parser accepts: `# HELP`/`# TYPE`
// lines (other comments and empty lines are skipped), samples `name{l="v",...} value [ts_ms]`
// with blanks between tokens, a trailing comma in the label list, label escapes \\ \" \n, values
// like 1, -2.5e3, NaN, +Inf. Samples of a name seen before join its family; histogram and
// summary samples (_bucket, _sum, _count) join their typed family.
// Errors (InvalidArgument, "DCGM text line N: why"): anything else — a bad name, value,
// timestamp or escape, an unclosed brace, invalid UTF-8, a duplicate label, a second HELP or
// TYPE, HELP/TYPE after the family's samples, a cap exceeded. Nothing is returned on error.
// Thread-safe (pure function).
Result<DcgmText> ParseDcgmText(std::string_view text, const DcgmParseLimits& limits = {});

// `name` without the one suffix OpenMetrics lets a family's samples add (_total, _created, _info,
// _bucket, _count, _sum, _gcount, _gsum); `name` itself when it has none. Two families whose
// names agree after this clash in a strict OpenMetrics parser. Thread-safe (pure function).
std::string_view OpenMetricsBaseName(std::string_view name);

// Removes the families a host may not add beside the server's own: any whose name is not in
// dcgm-exporter's namespace (starting with DCGM_ or dcgm_), and any whose OpenMetrics base name
// equals that of one of `server_families`. Returns how many families were removed. Thread-safe
// (pure function; `text` is the caller's).
size_t DropForeignDcgmFamilies(DcgmText& text, std::span<const std::string_view> server_families);

// One family of relabeled DCGM samples, ready to concatenate.
struct RenderedFamily {
  FamilyHeader header;
  Fragment samples;  // complete lines; the OpenMetrics variant only when timestamps occur
};

// The samples of one job: those whose `UUID` label is one of `gpu_uuids` (others, and samples
// without `UUID`, are dropped), each keeping its own labels in order, then `job_labels` appended
// in the order given (spec: kJobLabelNames). A sample label whose name is one of `job_labels`
// takes the job's value in its own position and is not repeated. Every other label of the text —
// including `job` or `instance` should an exporter emit them — is kept as it is: they are the
// host's, not ours, and Prometheus will store them as exported_job/exported_instance. Families
// named `dstack_*` are dropped: that namespace is fleetwatch's, and a host must not be able to
// inject samples into it. Values are reprinted with AppendValue; timestamps are kept.
// Families left without samples are omitted. Thread-safe (pure function).
std::vector<RenderedFamily> RelabelDcgm(const DcgmText& text,
                                        std::span<const std::string> gpu_uuids,
                                        std::span<const Label> job_labels);

}  // namespace fleetwatch::expose
