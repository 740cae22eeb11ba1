#include "expose/text_format.h"

#include <gtest/gtest.h>

#include <clocale>
#include <cmath>
#include <limits>
#include <locale>
#include <string>

namespace fleetwatch::expose {
namespace {

std::string Value(double v) {
  std::string out;
  AppendValue(out, v);
  return out;
}

std::string Escaped(std::string_view v) {
  std::string out;
  AppendEscapedLabelValue(out, v);
  return out;
}

TEST(AppendValue, PrintsLikePythonStrFloat) {
  // Expected strings are Python 3's str(float) of the same values.
  EXPECT_EQ(Value(3600.0), "3600.0");
  EXPECT_EQ(Value(0.8), "0.8");
  EXPECT_EQ(Value(137438953472.0), "137438953472.0");
  EXPECT_EQ(Value(1e16), "1e+16");
  EXPECT_EQ(Value(1.5e-7), "1.5e-07");
  EXPECT_EQ(Value(0.0), "0.0");
  EXPECT_EQ(Value(-0.0), "-0.0");
  EXPECT_EQ(Value(1e15), "1000000000000000.0");
  EXPECT_EQ(Value(9999999999999998.0), "9999999999999998.0");
  EXPECT_EQ(Value(123456789012345680.0), "1.2345678901234568e+17");
  EXPECT_EQ(Value(0.0001), "0.0001");
  EXPECT_EQ(Value(0.00001), "1e-05");
  EXPECT_EQ(Value(0.00012345), "0.00012345");
  EXPECT_EQ(Value(1.0), "1.0");
  EXPECT_EQ(Value(-2.5), "-2.5");
  EXPECT_EQ(Value(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(Value(1234.5678), "1234.5678");
  EXPECT_EQ(Value(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(Value(5e-324), "5e-324");
  EXPECT_EQ(Value(2.2250738585072014e-308), "2.2250738585072014e-308");
  EXPECT_EQ(Value(-1e100), "-1e+100");
  EXPECT_EQ(Value(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(Value(-std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(Value(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(Value(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(AppendValue, AppendsToWhatIsThere) {
  std::string out = "x ";
  AppendValue(out, 2);
  EXPECT_EQ(out, "x 2.0");
}

// A German locale writes "0,8"; our output must not change with the process locale.
TEST(AppendValue, DoesNotDependOnTheLocale) {
  const std::string before_value = Value(1234567.25);
  const char* german = nullptr;
  for (const char* name : {"de_DE.UTF-8", "de_DE.utf8", "de_DE"}) {
    if (std::setlocale(LC_ALL, name) != nullptr) {
      german = name;
      break;
    }
  }
  if (german == nullptr) {
    // No German locale installed: still prove the C library is not consulted by checking a
    // value under the C locale matches the expected Python form.
    EXPECT_EQ(before_value, "1234567.25");
    GTEST_SKIP() << "no de_DE locale installed (locale-gen de_DE.UTF-8 to run this fully)";
  }
  const std::locale previous = std::locale::global(std::locale(german));
  char printf_buf[32];
  std::snprintf(printf_buf, sizeof printf_buf, "%.2f", 0.5);
  EXPECT_EQ(std::string(printf_buf), "0,50") << "the locale did not take effect";
  EXPECT_EQ(Value(1234567.25), "1234567.25");
  EXPECT_EQ(Value(0.8), "0.8");
  EXPECT_EQ(Value(1.5e-7), "1.5e-07");
  std::string pairs;
  AppendLabelPair(pairs, "a", "b");
  std::string sample;
  AppendSample(sample, "m", pairs, 1e16);
  EXPECT_EQ(sample, "m{a=\"b\"} 1e+16\n");
  std::locale::global(previous);
  std::setlocale(LC_ALL, "C");
}

TEST(AppendEscapedLabelValue, EscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(Escaped(""), "");
  EXPECT_EQ(Escaped("plain"), "plain");
  EXPECT_EQ(Escaped("a\\b"), "a\\\\b");
  EXPECT_EQ(Escaped("say \"hi\""), "say \\\"hi\\\"");
  EXPECT_EQ(Escaped("two\nlines"), "two\\nlines");
  EXPECT_EQ(Escaped("}{<script>alert(1)</script>,x=\"y"), "}{<script>alert(1)</script>,x=\\\"y");
  EXPECT_EQ(Escaped("\\\n\""), "\\\\\\n\\\"");
}

TEST(AppendEscapedLabelValue, PassesValidUtf8AndOtherBytesThrough) {
  EXPECT_EQ(Escaped("NVIDIA GeForce RTX™ 4090 – Grüße 日本"),
            "NVIDIA GeForce RTX™ 4090 – Grüße 日本");
  EXPECT_EQ(Escaped("tab\there\rcr"), "tab\there\rcr");
  EXPECT_EQ(Escaped(std::string_view("nul\0byte", 8)), std::string("nul\0byte", 8));
  EXPECT_EQ(Escaped("😀"), "😀");
}

TEST(AppendEscapedLabelValue, ReplacesInvalidUtf8) {
  // Prometheus rejects a whole scrape over one invalid label value.
  EXPECT_EQ(Escaped("a\xff"
                    "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(Escaped("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
  EXPECT_EQ(Escaped("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(Escaped("end\xE2\x82"), "end\xEF\xBF\xBD\xEF\xBF\xBD");            // truncated sequence
  EXPECT_TRUE(IsValidUtf8("Grüße"));
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST(AppendEscapedHelp, EscapesPerFormat) {
  std::string text, om;
  AppendEscapedHelp(text, "a \"b\" \\ c\nd", Format::kText004);
  AppendEscapedHelp(om, "a \"b\" \\ c\nd", Format::kOpenMetrics100);
  EXPECT_EQ(text, "a \"b\" \\\\ c\\nd");
  EXPECT_EQ(om, "a \\\"b\\\" \\\\ c\\nd");
}

TEST(Names, ValidateMetricAndLabelNames) {
  EXPECT_TRUE(IsValidMetricName("dstack_job_gpu_count"));
  EXPECT_TRUE(IsValidMetricName("DCGM_FI_DEV_GPU_UTIL"));
  EXPECT_TRUE(IsValidMetricName("a:b_c9"));
  EXPECT_TRUE(IsValidMetricName("_x"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_FALSE(IsValidMetricName("a{b"));
  EXPECT_TRUE(IsValidLabelName("UUID"));
  EXPECT_TRUE(IsValidLabelName("dstack_gpu_num"));
  EXPECT_TRUE(IsValidLabelName("_x"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
  EXPECT_FALSE(IsValidLabelName("1a"));
  EXPECT_FALSE(IsValidLabelName(""));
}

TEST(Samples, RenderLabelSetsOnceAndAppendLabels) {
  const Label labels[] = {{"dstack_project_name", "main"}, {"dstack_gpu", "A\"100\n"}};
  std::string pairs = RenderLabelPairs(labels);
  EXPECT_EQ(pairs, "dstack_project_name=\"main\",dstack_gpu=\"A\\\"100\\n\"");
  AppendLabelPair(pairs, "dstack_gpu_num", "0");
  std::string out;
  AppendSample(out, "dstack_job_gpu_usage_ratio", pairs, 0.5);
  AppendSample(out, "dstack_up", "", 1);
  EXPECT_EQ(out,
            "dstack_job_gpu_usage_ratio{dstack_project_name=\"main\",dstack_gpu=\"A\\\"100\\n\","
            "dstack_gpu_num=\"0\"} 0.5\n"
            "dstack_up 1.0\n");
}

TEST(JobLabels, AreTheElevenSpecLabelsInOrder) {
  JobLabelValues v{"p", "u", "r", "rid", "r-0-0", "jid", "0", "1", "task", "remote", "H100"};
  const auto labels = JobLabels(v);
  EXPECT_EQ(RenderLabelPairs(labels),
            "dstack_project_name=\"p\",dstack_user_name=\"u\",dstack_run_name=\"r\","
            "dstack_run_id=\"rid\",dstack_job_name=\"r-0-0\",dstack_job_id=\"jid\","
            "dstack_job_num=\"0\",dstack_replica_num=\"1\",dstack_run_type=\"task\","
            "dstack_backend=\"remote\",dstack_gpu=\"H100\"");
}

}  // namespace
}  // namespace fleetwatch::expose
