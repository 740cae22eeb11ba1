#pragma once

// Sparklines for the terminal: a series of values on a 0–100 scale drawn with the seven blocks
// ▁▂▃▄▅▆▇, one column per value. All functions are pure and thread-safe.

#include <cstddef>
#include <string>
#include <vector>

namespace fleetwatch::cli {

// The block for one value on the 0–100 scale: 0 (and below, and NaN) is ▁, 100 (and above) is ▇,
// in between the nearest of the seven steps (each 100/6 wide; halves round up).
std::string SparkBlock(double value);

// One block per value, in order. Empty for no values.
std::string Sparkline(const std::vector<double>& values);

// Shrinks `values` to at most `buckets` values by averaging runs of consecutive values: bucket b
// averages values [b·n/buckets, (b+1)·n/buckets), so buckets differ in size by at most one and
// the order is kept. Returns `values` unchanged when it already fits; empty when `buckets` is 0.
std::vector<double> Downsample(const std::vector<double>& values, size_t buckets);

}  // namespace fleetwatch::cli
