// ParseMemorySize, ParseDurationSeconds and ParseGpuSpec: the value syntaxes the CLI shares.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "model/run_spec.h"

namespace fleetwatch::model {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kTiB = int64_t{1} << 40;

TEST(ParseMemorySize, ReadsBinaryUnitsWhateverTheirSpelling) {
  struct Case {
    const char* text;
    int64_t bytes;
  };
  const Case cases[] = {
      {"16GB", 16 * kGiB},
      {"16gb", 16 * kGiB},
      {"16GiB", 16 * kGiB},
      {"16gib", 16 * kGiB},
      {"512MB", 512 * kMiB},
      {"512MiB", 512 * kMiB},
      {"1.5TB", 1536 * kGiB},
      {"1TiB", kTiB},
      {"80GiB", 80 * kGiB},
      {"16", 16 * kGiB},
      {"0.5", 512 * kMiB},
      {"1MB", kMiB},
      {"64TB", 64 * kTiB},
      {"0.25GB", 256 * kMiB},
      {"007GB", 7 * kGiB},
      {"1.3GB", 1331 * kMiB},  // rounded to the nearest MiB
      {"1.123456789TB", 1178030 * kMiB},
  };
  for (const Case& c : cases) {
    Result<int64_t> bytes = ParseMemorySize(c.text);
    ASSERT_TRUE(bytes.ok()) << c.text << ": " << bytes.status().ToString();
    EXPECT_EQ(*bytes, c.bytes) << c.text;
  }
}

TEST(ParseMemorySize, RefusesOtherSyntax) {
  for (const char* text :
       {"", "GB", "8 GB", " 8GB", "8GB ", "8KB", "8B", "8G", "-1GB", "+1GB", ".5GB", "1.GB",
        "1,5GB", "1e3GB", "1.1234567891GB", "16GB..", "16GB..32GB", "0x10GB", "ten"}) {
    Result<int64_t> bytes = ParseMemorySize(text);
    ASSERT_FALSE(bytes.ok()) << text;
    EXPECT_THAT(bytes.status().message(), HasSubstr("must be a size like \"16GB\"")) << text;
  }
}

TEST(ParseMemorySize, RefusesSizesOutOfRangeWithoutOverflow) {
  for (const char* text : {"99999999999999999999GB", "99999999999999999999999999999999999", "65TB",
                           "64.001TB", "67108865MB", "9223372036854775807MB"}) {
    Result<int64_t> bytes = ParseMemorySize(text);
    ASSERT_FALSE(bytes.ok()) << text;
    EXPECT_THAT(bytes.status().message(), HasSubstr("too large")) << text;
  }
  for (const char* text : {"0", "0GB", "0.4MB", "0.0000001GB"}) {
    Result<int64_t> bytes = ParseMemorySize(text);
    ASSERT_FALSE(bytes.ok()) << text;
    EXPECT_THAT(bytes.status().message(), HasSubstr("too small")) << text;
  }
}

TEST(ParseDurationSeconds, ReadsUnitsAndCombinations) {
  struct Case {
    const char* text;
    int64_t seconds;
  };
  const Case cases[] = {{"45s", 45},     {"30m", 1800},       {"2h", 7200},  {"1d", 86400},
                        {"1h30m", 5400}, {"1d2h3m4s", 93784}, {"90", 90},    {"0", 0},
                        {"0s", 0},       {"365d", 31536000},  {"100m", 6000}};
  for (const Case& c : cases) {
    Result<int64_t> seconds = ParseDurationSeconds(c.text);
    ASSERT_TRUE(seconds.ok()) << c.text << ": " << seconds.status().ToString();
    EXPECT_EQ(*seconds, c.seconds) << c.text;
  }
}

TEST(ParseDurationSeconds, RefusesOtherSyntax) {
  for (const char* text : {"", "h", "2 h", "2hours", "1.5h", "-1s", "+1s", "30m1h", "1h1h", "1h30",
                           "2w", "1H", "off", "1d 2h", "2h\n"}) {
    Result<int64_t> seconds = ParseDurationSeconds(text);
    ASSERT_FALSE(seconds.ok()) << text;
    EXPECT_THAT(seconds.status().message(), HasSubstr("must be a duration like")) << text;
  }
}

TEST(ParseDurationSeconds, RefusesHugeDurationsWithoutOverflow) {
  for (const char* text : {"99999999999999999999", "99999999999999999999d", "106752d",
                           "9223372036854775807s", "40000d"}) {
    Result<int64_t> seconds = ParseDurationSeconds(text);
    ASSERT_FALSE(seconds.ok()) << text;
    EXPECT_THAT(seconds.status().message(), HasSubstr("too long")) << text;
  }
}

TEST(ParseGpuSpec, ReadsCountNameAndMemory) {
  struct Case {
    const char* text;
    int count;
    std::optional<std::string> name;
    std::optional<int64_t> memory;
  };
  const Case cases[] = {
      {"2", 2, std::nullopt, std::nullopt},
      {"0", 0, std::nullopt, std::nullopt},
      {"A100", 1, "A100", std::nullopt},
      {"A100:2", 2, "A100", std::nullopt},
      {"A100:80GB:2", 2, "A100", 80 * kGiB},
      {"A100:80GB", 1, "A100", 80 * kGiB},
      {"80GB:2", 2, std::nullopt, 80 * kGiB},
      {"24GB:1", 1, std::nullopt, 24 * kGiB},
      {"RTX 4090:2", 2, "RTX 4090", std::nullopt},
      {"rtx_a6000", 1, "rtx_a6000", std::nullopt},
      {"3090Ti", 1, "3090Ti", std::nullopt},
      {"H100-SXM5.80:64", 64, "H100-SXM5.80", std::nullopt},
  };
  for (const Case& c : cases) {
    Result<GpuRequest> gpu = ParseGpuSpec(c.text);
    ASSERT_TRUE(gpu.ok()) << c.text << ": " << gpu.status().ToString();
    EXPECT_EQ(gpu->count, c.count) << c.text;
    EXPECT_EQ(gpu->name, c.name) << c.text;
    EXPECT_EQ(gpu->memory_bytes, c.memory) << c.text;
  }
}

TEST(ParseGpuSpec, RefusesOtherSpecs) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"", "must be a GPU spec"},
      {"H100,A100:2", "only one GPU name is supported"},
      {"A100:1..2", "ranges are not supported"},
      {"A100:", "must be a GPU spec"},
      {":2", "must be a GPU spec"},
      {"A100::2", "must be a GPU spec"},
      {"2:A100", "must be a GPU spec"},
      {"80GB:A100", "must be a GPU spec"},
      {"A100:2:80GB", "must be a GPU spec"},
      {"A100:H100", "must be a GPU spec"},
      {"A100:80GB:40GB", "must be a GPU spec"},
      {"65", "GPU count must be between 0 and 64 (got '65')"},
      {"A100:99999999999999999999", "GPU count must be between 0 and 64"},
      {"A100:0", "a GPU name or memory needs a GPU count of at least 1"},
      {"A100:100TB", "GPU memory is too large"},
      {"-A100", "GPU name must be"},
      {"A100;rm -rf", "GPU name must be"},
      {"A100\n", "GPU name must be"},
      {"<script>", "GPU name must be"},
      {" A100", "GPU name must be"},
  };
  for (const Case& c : cases) {
    Result<GpuRequest> gpu = ParseGpuSpec(c.text);
    ASSERT_FALSE(gpu.ok()) << c.text;
    EXPECT_THAT(gpu.status().message(), HasSubstr(c.error)) << c.text;
    EXPECT_THAT(gpu.status().message(), ::testing::Not(HasSubstr("script"))) << c.text;
  }
  EXPECT_FALSE(ParseGpuSpec(std::string(65, 'A')).ok());
}

}  // namespace
}  // namespace fleetwatch::model
