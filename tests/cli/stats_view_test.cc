// `fleetwatch stats`' tables from canned run summaries: figures, GPU rows, notes, and hostile
// text shown inert.
#include "cli/stats_view.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <string>

namespace fleetwatch::cli {
namespace {

TEST(FormatEnergy, PicksAUnitAndMarksEstimates) {
  EXPECT_EQ(FormatEnergy(850, false), "850 J");
  EXPECT_EQ(FormatEnergy(12'500, false), "12.5 kJ");
  EXPECT_EQ(FormatEnergy(2.52e6, false), "2.52 MJ");
  EXPECT_EQ(FormatEnergy(2.52e6, true), "~2.52 MJ");
  EXPECT_EQ(FormatEnergy(1.2e9, false), "1.20 GJ");
  EXPECT_EQ(FormatCarbon(280), "280 g");
  EXPECT_EQ(FormatCarbon(8.5), "8.5 g");
  EXPECT_EQ(FormatCarbon(12'300), "12.3 kg");
}

TEST(RenderStats, ShowsTheRunItsJobsGpusAndNotesWithHostileTextInert) {
  const boost::json::value summary = boost::json::parse(R"({
    "run_name": "train", "status": "done", "energy_joules": 2520000, "energy_estimated": false,
    "carbon_grams": 280, "cost_dollars": 3.6,
    "jobs": [{"job_name": "train-0-0", "status": "done", "duration_seconds": 3600,
              "cpu_mean_cores": 1.0, "cpu_peak_cores": 1.25, "memory_peak_bytes": 2147483648,
              "memory_limit_bytes": 68719476736, "energy_joules": 2520000,
              "energy_estimated": false, "carbon_grams": 280, "cost_dollars": 3.6,
              "gpus": [{"index": 0, "util_mean_percent": 12, "util_max_percent": 40,
                        "idle_share": 0.5, "memory_peak_bytes": 9663676416,
                        "memory_total_bytes": 85899345920, "energy_joules": 2520000,
                        "energy_estimated": false, "xid_events": 2}],
              "notes": [{"rule": "cpu_bound", "text": "one CPU\u001b[2J at 100 %\nnext"}]}]})");
  const std::string out = RenderStats(summary, 200);
  EXPECT_EQ(out,
            "train (done): GPU energy 2.52 MJ, carbon 280 g, cost $3.60\n"
            "\n"
            "JOB        STATUS  DURATION  CPU MEAN/PEAK  MEMORY PEAK  ENERGY   CARBON  COST\n"
            "train-0-0  done    1h 0m     1.0/1.2        2GB/64GB     2.52 MJ  280 g   $3.60\n"
            "\n"
            "JOB        GPU  UTIL MEAN/MAX  IDLE  MEMORY PEAK  ENERGY   XID\n"
            "train-0-0  0    12%/40%        50%   9GB/80GB     2.52 MJ  2\n"
            "\n"
            "Notes:\n"
            "  train-0-0: one CPU?[2J at 100 %?next\n");
}

TEST(RenderStats, ARunWithoutJobsOrFieldsStillRenders) {
  const std::string out = RenderStats(boost::json::parse(R"({"run_name": "x"})"), 80);
  EXPECT_EQ(out.rfind("x (-): GPU energy 0 J, carbon 0.0 g, cost $0.00\n", 0), 0u) << out;
}

}  // namespace
}  // namespace fleetwatch::cli
