#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "expose/dcgm_samples.h"
#include "expose/family.h"
#include "expose/text_format.h"
#include "util/status.h"

namespace fleetwatch::expose {

// dcgm-exporter's text (Prometheus text format 0.0.4): parsed (ParseDcgmText), or parsed and
// relabeled for the jobs of the host that sent it in one pass (RelabelDcgmText, what the server
// ingests). The text comes from hosts: untrusted. Parsing is all or nothing.

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

// Whether a host may not add the family `name` beside the server's own: its name is not in
// dcgm-exporter's namespace (starting with DCGM_ or dcgm_; so `dstack_*`, fleetwatch's namespace,
// never is), or its OpenMetrics base name equals that of one of `server_families`.
// Thread-safe (pure function).
bool IsForeignDcgmFamily(std::string_view name, std::span<const std::string_view> server_families);

// Hands out one FamilyHeader per (name, type, HELP), so that the relabeled families of every job
// and host share their headers instead of each holding a copy.
// Not thread-safe: one owner calls it (the headers it hands out are immutable and may be shared
// with any thread). Memory: the headers it handed out, until Prune finds them unused.
class DcgmHeaderCache {
 public:
  // The header of that family; made when no header of it is cached. `name` must satisfy
  // IsValidMetricName.
  std::shared_ptr<const FamilyHeader> Get(std::string_view name, MetricType type,
                                          std::string_view help);
  // Forgets the headers that no one but the cache holds any more (so that a host sending ever
  // new families cannot grow it).
  void Prune();
  size_t size() const { return headers_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Key: name '\0' type HELP (names hold no '\0').
  std::unordered_map<std::string, std::shared_ptr<const FamilyHeader>, Hash, std::equal_to<>>
      headers_;
  std::string key_;  // reused to look a key up without allocating
};

// A job on the host whose text is relabeled.
struct DcgmJob {
  std::span<const std::string> gpu_uuids;  // the UUIDs of its GPUs on that host
  std::span<const Label> labels;           // appended to its samples (spec: kJobLabelNames)
  // RenderLabelPairs(labels), for a caller that keeps them rendered between texts; null: the
  // relabeler renders them. Not checked: pairs that are not `labels`' give other lines.
  const std::string* pairs = nullptr;
};

// One host's text relabeled for every job on the host.
struct RelabeledDcgm {
  std::vector<DcgmSamples> jobs;  // by index in the `jobs` given; may be empty
  size_t foreign_families = 0;    // families with samples dropped by IsForeignDcgmFamily
};

// Parses one host's dcgm-exporter text (the rules, caps and errors of ParseDcgmText: all or
// nothing) and relabels its samples for each of `jobs`, in one pass over the text.
//
// Families for which IsForeignDcgmFamily(name, server_families) holds are dropped (and counted).
// A job gets the samples whose `UUID` label is one of its `gpu_uuids` (others, and samples
// without `UUID`, are dropped; a GPU in two jobs gives its samples to both), each keeping its own
// labels in order, then the job's `labels` appended in the order given. A sample label whose name
// is one of the job's labels takes the job's value in its own position and is not repeated.
// Every other label of the text — including `job` or `instance` should an exporter emit them — is
// kept as it is: they are the host's, not ours, and Prometheus will store them as
// exported_job/exported_instance. Values are reprinted as AppendValue prints them; timestamps
// are kept (milliseconds in text 0.0.4, seconds in the OpenMetrics variant). A job's families
// come in order of first appearance in the text, each with its samples in text order; families
// left without samples are omitted.
//
// Headers come from `headers` when given (see DcgmHeaderCache), else are shared among the jobs of
// this call only. Memory: the result, and while it runs tables proportional to the families and
// labels of the text; nothing refers to `text` after it returns.
// Thread-safe when `headers` is not shared with another thread.
Result<RelabeledDcgm> RelabelDcgmText(std::string_view text, std::span<const DcgmJob> jobs,
                                      std::span<const std::string_view> server_families,
                                      DcgmHeaderCache* headers = nullptr,
                                      const DcgmParseLimits& limits = {});

// RelabelDcgmText for one owner that relabels text after text (the server: every host's, every
// metrics interval): it keeps the header cache and the working buffers between calls, so that a
// call allocates little more than its results.
// Not thread-safe: one owner calls it. Memory: the headers (DcgmHeaderCache) and working buffers
// the size of the largest job's lines seen so far.
class DcgmRelabeler {
 public:
  DcgmRelabeler();
  ~DcgmRelabeler();
  DcgmRelabeler(const DcgmRelabeler&) = delete;
  DcgmRelabeler& operator=(const DcgmRelabeler&) = delete;

  // RelabelDcgmText(text, jobs, server_families, &headers(), limits).
  Result<RelabeledDcgm> Relabel(std::string_view text, std::span<const DcgmJob> jobs,
                                std::span<const std::string_view> server_families,
                                const DcgmParseLimits& limits = {});
  DcgmHeaderCache& headers() { return headers_; }

  struct Buffers;  // dcgm.cc

 private:
  DcgmHeaderCache headers_;
  std::unique_ptr<Buffers> buffers_;
};

}  // namespace fleetwatch::expose
