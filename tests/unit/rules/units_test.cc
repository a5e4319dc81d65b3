#include "rules/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace switchyard::rules {
namespace {

using std::chrono::milliseconds;

struct DurationCase {
  const char* text;
  std::optional<int64_t> count;  // in the parser's unit; nullopt: must be refused
  const char* error = "";        // substring of the reason when refused
};

template <size_t N, typename Parse>
void expectDurations(const DurationCase (&cases)[N], Parse parse) {
  for (const DurationCase& c : cases) {
    SCOPED_TRACE(c.text);
    std::string error;
    auto got = parse(c.text, &error);
    if (c.count) {
      ASSERT_TRUE(got.has_value()) << error;
      EXPECT_EQ(got->count(), *c.count);
    } else {
      EXPECT_FALSE(got.has_value()) << got->count();
      EXPECT_NE(error.find(c.error), std::string::npos) << error;
    }
  }
}

TEST(UnitsTest, ParseDuration) {
  const DurationCase kCases[] = {
      {"10s", 10'000},
      {"5m", 300'000},
      {"1h", 3'600'000},
      {"250ms", 250},
      {"1h30m", 5'400'000},
      {"1h30m15s250ms", 5'415'250},
      {"0", 0},
      {"0s", 0},
      {"0ms", 0},
      {"1.5s", 1'500},
      {"0.25h", 900'000},
      {"90m", 5'400'000},
      {"1s1h", 3'601'000},  // Go accepts any order
      {"007s", 7'000},
      {"876000h", 3'153'600'000'000},  // 100 years: the limit
      {"", std::nullopt, "empty duration"},
      {"10", std::nullopt, "missing unit"},
      {"1h30", std::nullopt, "missing unit"},
      {"-5s", std::nullopt, "negative"},
      {"+5s", std::nullopt, "expected a number"},
      {"5x", std::nullopt, "unknown unit \"x\""},
      {"5us", std::nullopt, "unknown unit \"us\""},
      {"5 s", std::nullopt, "unknown unit \" s\""},
      {"5S", std::nullopt, "unknown unit \"S\""},
      {" 5s", std::nullopt, "expected a number"},
      {"s", std::nullopt, "expected a number"},
      {"1.s", std::nullopt, "digits after '.'"},
      {".5s", std::nullopt, "expected a number"},
      {"1.0005s", std::nullopt, "whole number of milliseconds"},
      {"876001h", std::nullopt, "too long"},
      {"99999999999999999999999999h", std::nullopt, "too long"},
      {"18446744073709551616ms", std::nullopt, "too long"},
      {"1.1234567891s", std::nullopt, "too many decimal places"},
  };
  expectDurations(kCases, parseDuration);
}

TEST(UnitsTest, ParseFineDurationAlsoTakesMicroseconds) {
  const DurationCase kCases[] = {
      {"200us", 200},
      {"0us", 0},
      {"0", 0},
      {"1ms", 1'000},
      {"1ms500us", 1'500},
      {"0.2ms", 200},
      {"1.5us", std::nullopt, "whole number of microseconds"},
      {"0.0001ms", std::nullopt, "whole number of microseconds"},
      {"1s", 1'000'000},
      {"1h", 3'600'000'000},
      {"876000h", 3'153'600'000'000'000},
      {"876001h", std::nullopt, "too long"},
      {"5µs", std::nullopt, "unknown unit"},
      {"5US", std::nullopt, "unknown unit \"US\""},
      {"5", std::nullopt, "use us, ms, s, m or h"},
      {"-1us", std::nullopt, "negative"},
  };
  expectDurations(kCases, parseFineDuration);
  // The millisecond parser still refuses what it cannot hold.
  std::string error;
  EXPECT_FALSE(parseDuration("0.2ms", &error).has_value());
  EXPECT_NE(error.find("whole number of milliseconds"), std::string::npos) << error;
  EXPECT_FALSE(parseDuration("1ms500us", &error).has_value());
  EXPECT_NE(error.find("use ms, s, m or h"), std::string::npos) << error;
}

struct SizeCase {
  const char* text;
  std::optional<uint64_t> bytes;
  const char* error = "";
};

TEST(UnitsTest, ParseSize) {
  const SizeCase kCases[] = {
      {"0", 0},
      {"1048576", 1'048'576},
      {"10GiB", 10ull << 30},
      {"512MiB", 512ull << 20},
      {"100KB", 100'000},
      {"1G", 1'000'000'000},
      {"1g", 1'000'000'000},
      {"1gib", 1ull << 30},
      {"1Gi", 1ull << 30},
      {"64KiB", 65'536},
      {"3B", 3},
      {"2TB", 2'000'000'000'000},
      {"1TiB", 1ull << 40},
      {"1PiB", 1ull << 50},
      {"1.5GiB", 3ull << 29},
      {"0.5KB", 500},
      {"18446744073709551615", UINT64_MAX},
      {"16383PiB", 16383ull << 50},
      {"", std::nullopt, "empty size"},
      {"-1", std::nullopt, "negative"},
      {"-1GiB", std::nullopt, "negative"},
      {"18446744073709551616", std::nullopt, "too large"},
      {"16384PiB", std::nullopt, "too large"},
      {"99999999999999999999999999999GiB", std::nullopt, "too large"},
      {"10XB", std::nullopt, "unknown unit \"XB\""},
      {"10 GiB", std::nullopt, "unknown unit \" GiB\""},
      {"10GiBs", std::nullopt, "unknown unit"},
      {"GiB", std::nullopt, "expected a number"},
      {"0.1B", std::nullopt, "whole number of bytes"},
      {"1.5", std::nullopt, "whole number of bytes"},
      {"1e9", std::nullopt, "unknown unit \"e9\""},
      {"0x10", std::nullopt, "unknown unit \"x10\""},
  };
  for (const SizeCase& c : kCases) {
    SCOPED_TRACE(c.text);
    std::string error;
    std::optional<uint64_t> got = parseSize(c.text, &error);
    if (c.bytes) {
      ASSERT_TRUE(got.has_value()) << error;
      EXPECT_EQ(*got, *c.bytes);
    } else {
      EXPECT_FALSE(got.has_value()) << *got;
      EXPECT_NE(error.find(c.error), std::string::npos) << error;
    }
  }
}

TEST(UnitsTest, NullErrorPointerIsAllowed) {
  EXPECT_FALSE(parseDuration("bad", nullptr).has_value());
  EXPECT_FALSE(parseSize("bad", nullptr).has_value());
}

TEST(UnitsTest, FormatDurationRoundTrips) {
  const std::pair<int64_t, const char*> kCases[] = {
      {0, "0s"},         {250, "250ms"},       {1'000, "1s"},
      {60'000, "1m"},    {5'400'000, "1h30m"}, {90'500, "1m30s500ms"},
      {3'600'000, "1h"}, {-1'500, "-1s500ms"},
  };
  for (const auto& [ms, text] : kCases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(formatDuration(milliseconds(ms)), text);
    if (ms >= 0) {
      EXPECT_EQ(parseDuration(text, nullptr), milliseconds(ms));
    }
  }
}

TEST(UnitsTest, FormatSizeRoundTrips) {
  const std::pair<uint64_t, const char*> kCases[] = {
      {0, "0B"},
      {1'000, "1000B"},
      {1'024, "1KiB"},
      {10ull << 30, "10GiB"},
      {3ull << 29, "1536MiB"},
      {1ull << 50, "1PiB"},
      {UINT64_MAX, "18446744073709551615B"},
  };
  for (const auto& [bytes, text] : kCases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(formatSize(bytes), text);
    EXPECT_EQ(parseSize(text, nullptr), bytes);
  }
}

}  // namespace
}  // namespace switchyard::rules
