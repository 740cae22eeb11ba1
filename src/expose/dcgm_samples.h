#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "expose/family.h"
#include "expose/text_format.h"

namespace fleetwatch::expose {

// Sample lines held elsewhere, ready to concatenate: the view counterpart of Fragment (no timed
// samples). `text` holds complete lines in text 0.0.4; `openmetrics` the same samples for
// OpenMetrics when they differ (only when they carry timestamps), empty meaning "same as text".
struct FragmentView {
  std::string_view text;
  std::string_view openmetrics;

  std::string_view For(Format format) const {
    return format == Format::kOpenMetrics100 && !openmetrics.empty() ? openmetrics : text;
  }
  bool empty() const { return text.empty(); }
};

// One family of a job's relabeled DCGM samples: views into the DcgmSamples that holds it.
struct RenderedFamily {
  // Never null. Kept alive by the DcgmSamples; shared with every job and host whose text has the
  // same family (name, type and HELP) through DcgmHeaderCache.
  const FamilyHeader* header = nullptr;
  FragmentView samples;  // complete lines; never empty
};

// One job's DCGM samples, relabeled (RelabelDcgmText): every family's lines in one buffer, each
// family a view into it, so that a job costs a few allocations however many families it has.
//
// Immutable once made; movable (a move keeps every view valid: the buffer does not move), not
// copyable. Thread-safe to read from any number of threads. Memory: exactly its lines' bytes (in
// one or, with timestamps, two formats), a RenderedFamily per family, and a share of the headers.
class DcgmSamples {
 public:
  DcgmSamples() = default;
  // For the relabeler: `families` view into `bytes` (`size` bytes) and name headers that
  // `headers` keeps alive. Not checked.
  DcgmSamples(std::unique_ptr<char[]> bytes, size_t size, std::vector<RenderedFamily> families,
              std::shared_ptr<const void> headers)
      : bytes_(std::move(bytes)),
        size_(size),
        families_(std::move(families)),
        headers_(std::move(headers)) {}
  DcgmSamples(DcgmSamples&&) noexcept = default;
  DcgmSamples& operator=(DcgmSamples&&) noexcept = default;
  DcgmSamples(const DcgmSamples&) = delete;
  DcgmSamples& operator=(const DcgmSamples&) = delete;

  // In order of first appearance in the text, each with its samples in text order.
  const std::vector<RenderedFamily>& families() const { return families_; }
  std::vector<RenderedFamily>::const_iterator begin() const { return families_.begin(); }
  std::vector<RenderedFamily>::const_iterator end() const { return families_.end(); }
  const RenderedFamily& operator[](size_t i) const { return families_[i]; }
  size_t size() const { return families_.size(); }
  bool empty() const { return families_.empty(); }
  // The bytes of the lines (both formats).
  size_t bytes() const { return size_; }

 private:
  std::unique_ptr<char[]> bytes_;
  size_t size_ = 0;
  std::vector<RenderedFamily> families_;
  std::shared_ptr<const void> headers_;
};

}  // namespace fleetwatch::expose
