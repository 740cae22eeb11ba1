#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "expose/text_format.h"

namespace fleetwatch::expose::testing {

// A second, deliberately simple reader of our output, independent of the DCGM parser: it checks
// the promises GET /metrics makes (spec/METRICS.md), not everything the formats allow.
struct CheckedExposition {
  std::string error;                  // empty when well-formed
  std::vector<std::string> families;  // HELP names in order
  size_t samples = 0;
};

// Well-formed means: every family has one `# HELP` and then one `# TYPE` line, both before its
// samples and never repeated; every sample line is `name{l="v",...} value[ timestamp]` with only
// \\ \" \n escapes, and belongs to the family headed last (contiguous samples); in OpenMetrics
// the text ends with the one `# EOF` line.
CheckedExposition CheckExposition(std::string_view text, Format format);

}  // namespace fleetwatch::expose::testing
