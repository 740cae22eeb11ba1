#include "expose/family.h"

#include <gtest/gtest.h>

namespace fleetwatch::expose {
namespace {

TEST(FamilyHeader, RendersHelpAndTypeInText004) {
  const FamilyHeader h("dstack_run_count_total", MetricType::kCounter, "Total runs count");
  EXPECT_EQ(h.Lines(Format::kText004),
            "# HELP dstack_run_count_total Total runs count\n"
            "# TYPE dstack_run_count_total counter\n");
}

TEST(FamilyHeader, OpenMetricsCounterIsHeadedWithoutTotal) {
  const FamilyHeader h("dstack_run_count_total", MetricType::kCounter, "Total runs count");
  EXPECT_EQ(h.Lines(Format::kOpenMetrics100),
            "# HELP dstack_run_count Total runs count\n"
            "# TYPE dstack_run_count counter\n");
}

TEST(FamilyHeader, CounterWithoutTotalIsUnknownInOpenMetrics) {
  // DCGM's counters lack _total; renaming their samples would rename the series.
  const FamilyHeader h("DCGM_FI_PROF_PCIE_TX_BYTES", MetricType::kCounter, "PCIe TX");
  EXPECT_EQ(h.Lines(Format::kText004),
            "# HELP DCGM_FI_PROF_PCIE_TX_BYTES PCIe TX\n"
            "# TYPE DCGM_FI_PROF_PCIE_TX_BYTES counter\n");
  EXPECT_EQ(h.Lines(Format::kOpenMetrics100),
            "# HELP DCGM_FI_PROF_PCIE_TX_BYTES PCIe TX\n"
            "# TYPE DCGM_FI_PROF_PCIE_TX_BYTES unknown\n");
}

TEST(FamilyHeader, UnknownIsUntypedInText004) {
  const FamilyHeader h("x", MetricType::kUnknown, "");
  EXPECT_EQ(h.Lines(Format::kText004), "# HELP x \n# TYPE x untyped\n");
  EXPECT_EQ(h.Lines(Format::kOpenMetrics100), "# HELP x \n# TYPE x unknown\n");
}

TEST(FamilyHeader, EscapesHelpPerFormat) {
  const FamilyHeader h("g", MetricType::kGauge, "say \"hi\"\\\nbye");
  EXPECT_EQ(h.Lines(Format::kText004), "# HELP g say \"hi\"\\\\\\nbye\n# TYPE g gauge\n");
  EXPECT_EQ(h.Lines(Format::kOpenMetrics100),
            "# HELP g say \\\"hi\\\"\\\\\\nbye\n# TYPE g gauge\n");
}

TEST(AppendFamily, OmitsAFamilyWithoutSamples) {
  const FamilyHeader h("g", MetricType::kGauge, "G");
  std::string out;
  AppendFamily(out, h, "", Format::kText004);
  EXPECT_EQ(out, "");
  AppendFamily(out, h, "g 1.0\n", Format::kText004);
  EXPECT_EQ(out, "# HELP g G\n# TYPE g gauge\ng 1.0\n");
  AppendEnd(out, Format::kText004);
  EXPECT_EQ(out, "# HELP g G\n# TYPE g gauge\ng 1.0\n");
  std::string om;
  AppendFamily(om, h, "g 1.0\n", Format::kOpenMetrics100);
  AppendEnd(om, Format::kOpenMetrics100);
  EXPECT_EQ(om, "# HELP g G\n# TYPE g gauge\ng 1.0\n# EOF\n");
}

TEST(ContentType, NamesEachFormat) {
  EXPECT_EQ(ContentType(Format::kText004), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(ContentType(Format::kOpenMetrics100),
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

TEST(NegotiateFormat, OpenMetricsOnlyWhenAsked) {
  EXPECT_EQ(NegotiateFormat(""), Format::kText004);
  EXPECT_EQ(NegotiateFormat("*/*"), Format::kText004);
  EXPECT_EQ(NegotiateFormat("text/plain"), Format::kText004);
  EXPECT_EQ(NegotiateFormat("application/json"), Format::kText004);
  EXPECT_EQ(NegotiateFormat(",,;;=q=,"), Format::kText004);
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text"), Format::kOpenMetrics100);
  EXPECT_EQ(NegotiateFormat("Application/OpenMetrics-Text; version=1.0.0"),
            Format::kOpenMetrics100);
  // What Prometheus 2.x sends.
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text;version=1.0.0,application/"
                            "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                            "*/*;q=0.1"),
            Format::kOpenMetrics100);
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text;q=0"), Format::kText004);
  EXPECT_EQ(NegotiateFormat("text/plain;q=1, application/openmetrics-text;q=0.5"),
            Format::kText004);
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text;q=bogus"), Format::kText004);
}

}  // namespace
}  // namespace fleetwatch::expose
