// Metrics: Prometheus text exposition 0.0.4 exactly (HELP/TYPE lines, label
// escaping, cumulative histogram buckets with +Inf, _sum and _count), every
// metric the issue names present with its type, the mapping from decision
// records to counters, and the bound on label sets.
#include "daemon/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/decision_log.h"

namespace switchyard {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

// The value of the sample line `series` ("name{labels}") in `text`, or -1.
long long sample(const std::string& text, const std::string& series) {
  for (const std::string& line : lines(text)) {
    if (line.rfind(series + " ", 0) == 0) {
      return std::stoll(line.substr(series.size() + 1));
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------
// Escaping.

struct EscapeCase {
  const char* in;
  const char* label;
  const char* help;
};

class MetricsEscapeTest : public ::testing::TestWithParam<EscapeCase> {};

TEST_P(MetricsEscapeTest, LabelAndHelp) {
  const EscapeCase& c = GetParam();
  EXPECT_EQ(escapeLabelValue(c.in), c.label);
  EXPECT_EQ(escapeHelp(c.in), c.help);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MetricsEscapeTest,
    ::testing::Values(EscapeCase{"", "", ""},
                      EscapeCase{"plain-rule_1", "plain-rule_1", "plain-rule_1"},
                      EscapeCase{"a\\b", "a\\\\b", "a\\\\b"},
                      EscapeCase{"say \"hi\"", "say \\\"hi\\\"", "say \"hi\""},
                      EscapeCase{"two\nlines", "two\\nlines", "two\\nlines"},
                      EscapeCase{"\\\"\n", "\\\\\\\"\\n", "\\\\\"\\n"},
                      EscapeCase{"tab\there", "tab\there", "tab\there"},
                      EscapeCase{"r\u00e9gle \u2028", "r\u00e9gle \u2028", "r\u00e9gle \u2028"},
                      EscapeCase{"env:NO_PROXY", "env:NO_PROXY", "env:NO_PROXY"}));

// ---------------------------------------------------------------------------
// CounterFamily.

TEST(CounterFamilyTest, RendersSortedSeriesWithEscapedLabels) {
  CounterFamily f("switchyard_test_total", "Help with \\ and\nnewline.", {"action", "rule"});
  f.add({"direct", "b"}, 2);
  f.add({"deny", "quote\"d"});
  f.add({"direct", "a\\b\nc"}, 5);
  f.add({"direct", "b"});
  EXPECT_EQ(f.value({"direct", "b"}), 3u);
  EXPECT_EQ(f.value({"direct", "missing"}), 0u);
  EXPECT_EQ(f.seriesCount(), 3u);
  std::string out;
  f.render(&out);
  EXPECT_EQ(out,
            "# HELP switchyard_test_total Help with \\\\ and\\nnewline.\n"
            "# TYPE switchyard_test_total counter\n"
            "switchyard_test_total{action=\"deny\",rule=\"quote\\\"d\"} 1\n"
            "switchyard_test_total{action=\"direct\",rule=\"a\\\\b\\nc\"} 5\n"
            "switchyard_test_total{action=\"direct\",rule=\"b\"} 3\n");
}

TEST(CounterFamilyTest, NoSeriesStillDeclaresTheFamily) {
  CounterFamily f("switchyard_empty_total", "Nothing yet.", {"result"});
  std::string out;
  f.render(&out);
  EXPECT_EQ(out,
            "# HELP switchyard_empty_total Nothing yet.\n"
            "# TYPE switchyard_empty_total counter\n");
}

TEST(CounterFamilyTest, LabelValuesCannotForgeASecondLabel) {
  CounterFamily f("switchyard_x_total", "x", {"a", "b"});
  f.add({"one\xfftwo", "three"});
  EXPECT_EQ(f.value({"one?two", "three"}), 1u);
  std::string out;
  f.render(&out);
  EXPECT_NE(out.find("switchyard_x_total{a=\"one?two\",b=\"three\"} 1\n"), std::string::npos);
}

TEST(CounterFamilyTest, EmptyLabelValuesAreKept) {
  CounterFamily f("switchyard_x_total", "x", {"a", "b"});
  f.add({"", ""}, 4);
  f.add({"", "z"}, 1);
  std::string out;
  f.render(&out);
  EXPECT_NE(out.find("switchyard_x_total{a=\"\",b=\"\"} 4\n"), std::string::npos);
  EXPECT_NE(out.find("switchyard_x_total{a=\"\",b=\"z\"} 1\n"), std::string::npos);
}

TEST(CounterFamilyTest, SeriesBeyondTheLimitGoToOverflow) {
  CounterFamily f("switchyard_x_total", "x", {"action", "rule"});
  for (size_t i = 0; i < CounterFamily::kMaxSeries; ++i) {
    f.add({"direct", "rule-" + std::to_string(i)});
  }
  EXPECT_EQ(f.seriesCount(), CounterFamily::kMaxSeries);
  f.add({"deny", "one-too-many"}, 2);
  f.add({"deny", "and-another"}, 3);
  // Existing series still count normally.
  f.add({"direct", "rule-0"}, 1);
  EXPECT_EQ(f.seriesCount(), CounterFamily::kMaxSeries + 1);
  EXPECT_EQ(f.value({"deny", "one-too-many"}), 0u);
  EXPECT_EQ(f.value({CounterFamily::kOverflowLabel, CounterFamily::kOverflowLabel}), 5u);
  EXPECT_EQ(f.value({"direct", "rule-0"}), 2u);
}

// ---------------------------------------------------------------------------
// Histogram.

TEST(HistogramTest, BucketsAreInclusiveAndCumulative) {
  Histogram h("switchyard_h_microseconds", "Durations.", {1, 5, 10});
  // value -> bucket: <=1, <=5, <=10, +Inf
  for (uint64_t v : {0, 1, 2, 5, 6, 10, 11, 1000000}) {
    h.observe(v);
  }
  EXPECT_EQ(h.count(), 8u);
  EXPECT_EQ(h.sum(), 0u + 1 + 2 + 5 + 6 + 10 + 11 + 1000000);
  EXPECT_EQ(h.bucketCount(0), 2u);
  EXPECT_EQ(h.bucketCount(1), 2u);
  EXPECT_EQ(h.bucketCount(2), 2u);
  EXPECT_EQ(h.bucketCount(3), 2u);
  std::string out;
  h.render(&out);
  EXPECT_EQ(out,
            "# HELP switchyard_h_microseconds Durations.\n"
            "# TYPE switchyard_h_microseconds histogram\n"
            "switchyard_h_microseconds_bucket{le=\"1\"} 2\n"
            "switchyard_h_microseconds_bucket{le=\"5\"} 4\n"
            "switchyard_h_microseconds_bucket{le=\"10\"} 6\n"
            "switchyard_h_microseconds_bucket{le=\"+Inf\"} 8\n"
            "switchyard_h_microseconds_sum 1000035\n"
            "switchyard_h_microseconds_count 8\n");
}

TEST(HistogramTest, EmptyHistogramRendersZeros) {
  Histogram h("switchyard_h", "h", {1});
  std::string out;
  h.render(&out);
  EXPECT_NE(out.find("switchyard_h_bucket{le=\"1\"} 0\n"), std::string::npos);
  EXPECT_NE(out.find("switchyard_h_bucket{le=\"+Inf\"} 0\n"), std::string::npos);
  EXPECT_NE(out.find("switchyard_h_sum 0\nswitchyard_h_count 0\n"), std::string::npos);
}

// ---------------------------------------------------------------------------
// The registry.

// Every family of the issue, with its type and labels.
struct FamilyCase {
  const char* name;
  const char* type;
};

TEST(MetricsTest, EveryFamilyIsDeclaredOnceWithItsType) {
  Metrics m;
  const std::string text = m.render();
  const std::vector<FamilyCase> families = {
      {"switchyard_requests_total", "counter"},
      {"switchyard_connections_active", "gauge"},
      {"switchyard_tunnels_active", "gauge"},
      {"switchyard_bytes_total", "counter"},
      {"switchyard_tunnel_spliced_bytes_total", "counter"},
      {"switchyard_upstream_attempts_total", "counter"},
      {"switchyard_cache_total", "counter"},
      {"switchyard_cache_evictions_total", "counter"},
      {"switchyard_cache_bytes", "gauge"},
      {"switchyard_log_dropped_lines_total", "counter"},
      {"switchyard_decision_duration_microseconds", "histogram"},
      {"switchyard_config_generation", "gauge"},
      {"switchyard_config_last_reload_success", "gauge"},
      {"switchyard_config_last_reload_timestamp_seconds", "gauge"},
  };
  std::map<std::string, int> type_lines;
  std::map<std::string, int> help_lines;
  for (const std::string& line : lines(text)) {
    std::smatch mm;
    if (std::regex_match(line, mm, std::regex("# TYPE (\\S+) (\\S+)"))) {
      ++type_lines[mm[1].str() + " " + mm[2].str()];
    } else if (std::regex_match(line, mm, std::regex("# HELP (\\S+) .+"))) {
      ++help_lines[mm[1].str()];
    }
  }
  EXPECT_EQ(type_lines.size(), families.size());
  for (const FamilyCase& f : families) {
    SCOPED_TRACE(f.name);
    EXPECT_EQ(type_lines[std::string(f.name) + " " + f.type], 1);
    EXPECT_EQ(help_lines[f.name], 1);
  }
}

TEST(MetricsTest, EveryLineIsValidExposition) {
  Metrics m;
  m.countRequest("direct", "env:NO_PROXY");
  m.countRequest("deny", "we\"ird\\rule\nname");
  m.observeDecisionMicros(3);
  m.countUpstreamAttempt("served");
  m.setDroppedLinesSource([] { return uint64_t{7}; });
  const std::string text = m.render();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const std::regex comment("# (HELP|TYPE) switchyard_[a-z_]+ .*");
  const std::regex sample_line(
      "switchyard_[a-z_]+(\\{[a-z_]+=\"([^\"\\\\\\n]|\\\\[\\\\\"n])*\"(,[a-z_]+=\"([^\"\\\\\\n]|"
      "\\\\[\\\\\"n])*\")*\\})? [0-9]+");
  std::set<std::string> declared;
  for (const std::string& line : lines(text)) {
    SCOPED_TRACE(line);
    if (line.rfind("#", 0) == 0) {
      EXPECT_TRUE(std::regex_match(line, comment));
      std::smatch mm;
      if (std::regex_match(line, mm, std::regex("# TYPE (\\S+) .*"))) {
        declared.insert(mm[1]);
      }
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, sample_line));
    // Every sample belongs to the family declared last (histograms add
    // _bucket, _sum and _count).
    std::string name = line.substr(0, line.find_first_of("{ "));
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (!declared.count(name) && name.size() > s.size() &&
          name.compare(name.size() - s.size(), s.size(), s) == 0) {
        name = name.substr(0, name.size() - s.size());
      }
    }
    EXPECT_TRUE(declared.count(name)) << name;
  }
}

TEST(MetricsTest, FixedSeriesExistAtZero) {
  Metrics m;
  const std::string text = m.render();
  for (const char* series :
       {"switchyard_bytes_total{direction=\"in\"}", "switchyard_bytes_total{direction=\"out\"}",
        "switchyard_cache_total{result=\"hit\"}", "switchyard_cache_total{result=\"miss\"}",
        "switchyard_cache_total{result=\"stale\"}", "switchyard_connections_active",
        "switchyard_tunnels_active", "switchyard_tunnel_spliced_bytes_total",
        "switchyard_cache_evictions_total", "switchyard_cache_bytes",
        "switchyard_log_dropped_lines_total", "switchyard_config_generation",
        "switchyard_config_last_reload_success", "switchyard_config_last_reload_timestamp_seconds",
        "switchyard_decision_duration_microseconds_count"}) {
    SCOPED_TRACE(series);
    EXPECT_EQ(sample(text, series), 0);
  }
  // Buckets: every bound of kDecisionBucketsMicros, then +Inf.
  for (uint64_t bound : Metrics::kDecisionBucketsMicros) {
    EXPECT_EQ(sample(text, "switchyard_decision_duration_microseconds_bucket{le=\"" +
                               std::to_string(bound) + "\"}"),
              0);
  }
  EXPECT_EQ(sample(text, "switchyard_decision_duration_microseconds_bucket{le=\"+Inf\"}"), 0);
}

struct AttemptCase {
  std::optional<int> status;
  std::optional<std::string> error;
  const char* next;
  const char* result;
};

class AttemptResultTest : public ::testing::TestWithParam<AttemptCase> {};

TEST_P(AttemptResultTest, Classifies) {
  const AttemptCase& c = GetParam();
  AttemptRecord a{"https://mirror.test", c.status, c.error, c.next};
  EXPECT_EQ(Metrics::attemptResult(a), c.result);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AttemptResultTest,
    ::testing::Values(AttemptCase{200, std::nullopt, "served", "served"},
                      AttemptCase{404, std::nullopt, "served", "served"},
                      AttemptCase{404, std::nullopt, "fell through: 404 after ','", "not_found"},
                      AttemptCase{410, std::nullopt, "fell through: 410 after ','", "not_found"},
                      AttemptCase{404, std::nullopt, "stopped", "not_found"},
                      AttemptCase{500, std::nullopt, "fell through: 500 after '|'", "http_error"},
                      AttemptCase{502, std::nullopt, "stopped", "http_error"},
                      AttemptCase{std::nullopt, "connection refused", "stopped", "transport_error"},
                      AttemptCase{std::nullopt, "timeout", "fell through: error after '|'",
                                  "transport_error"},
                      AttemptCase{std::nullopt, std::nullopt, "stopped", "transport_error"}));

TEST(MetricsTest, CountRecordFeedsEveryFamily) {
  Metrics m;
  DecisionRecord r;
  r.action = "mirror";
  r.rule = "golang-via-mirror";
  r.bytes_in = 120;
  r.bytes_out = 4096;
  r.cache = "miss";
  r.attempts = {
      {"https://a.test", 404, std::nullopt, "fell through: 404 after ','"},
      {"https://b.test", std::nullopt, "connection refused", "fell through: error after '|'"},
      {"https://c.test", 200, std::nullopt, "served"}};
  m.countRecord(r);
  r.cache = "hit";
  r.attempts.clear();
  m.countRecord(r);
  DecisionRecord d;
  d.action = "direct";
  d.rule = "env:NO_PROXY";
  d.bytes_in = 1;
  d.cache = "none";
  m.countRecord(d);
  d.cache = "stale";
  m.countRecord(d);

  EXPECT_EQ(m.requests().value({"mirror", "golang-via-mirror"}), 2u);
  EXPECT_EQ(m.requests().value({"direct", "env:NO_PROXY"}), 2u);
  EXPECT_EQ(m.bytes().value({"in"}), 242u);
  EXPECT_EQ(m.bytes().value({"out"}), 8192u);
  EXPECT_EQ(m.upstreamAttempts().value({"not_found"}), 1u);
  EXPECT_EQ(m.upstreamAttempts().value({"transport_error"}), 1u);
  EXPECT_EQ(m.upstreamAttempts().value({"served"}), 1u);
  EXPECT_EQ(m.cache().value({"hit"}), 1u);
  EXPECT_EQ(m.cache().value({"miss"}), 1u);
  EXPECT_EQ(m.cache().value({"stale"}), 1u);
  // "none" is not a cache result: no series for it.
  EXPECT_EQ(m.cache().seriesCount(), 3u);

  const std::string text = m.render();
  EXPECT_EQ(sample(text, "switchyard_requests_total{action=\"mirror\",rule=\"golang-via-mirror\"}"),
            2);
  EXPECT_EQ(sample(text, "switchyard_bytes_total{direction=\"out\"}"), 8192);
  EXPECT_EQ(sample(text, "switchyard_upstream_attempts_total{result=\"served\"}"), 1);
}

TEST(MetricsTest, GaugesAndConfig) {
  Metrics m;
  m.connectionOpened();
  m.connectionOpened();
  m.connectionOpened();
  m.connectionClosed();
  m.tunnelOpened();
  m.tunnelClosed();
  m.tunnelClosed();  // Never below zero.
  m.setCacheBytes(123456789012ull);
  m.countCacheEvictions();
  m.countCacheEvictions(4);
  m.addSplicedBytes(1 << 20);
  m.addSplicedBytes(7);
  m.setConfigGeneration(3);
  m.recordReload(false, 1764064800);
  m.setDroppedLinesSource([] { return uint64_t{42}; });
  const std::string text = m.render();
  EXPECT_EQ(sample(text, "switchyard_connections_active"), 2);
  EXPECT_EQ(sample(text, "switchyard_tunnels_active"), 0);
  EXPECT_EQ(sample(text, "switchyard_cache_bytes"), 123456789012ll);
  EXPECT_EQ(sample(text, "switchyard_cache_evictions_total"), 5);
  EXPECT_EQ(sample(text, "switchyard_tunnel_spliced_bytes_total"), (1 << 20) + 7);
  EXPECT_EQ(sample(text, "switchyard_config_generation"), 3);
  EXPECT_EQ(sample(text, "switchyard_config_last_reload_success"), 0);
  EXPECT_EQ(sample(text, "switchyard_config_last_reload_timestamp_seconds"), 1764064800);
  EXPECT_EQ(sample(text, "switchyard_log_dropped_lines_total"), 42);

  m.recordReload(true, 1764064900);
  m.setConnectionsActive(9);
  m.setTunnelsActive(4);
  const std::string again = m.render();
  EXPECT_EQ(sample(again, "switchyard_config_last_reload_success"), 1);
  EXPECT_EQ(sample(again, "switchyard_config_last_reload_timestamp_seconds"), 1764064900);
  EXPECT_EQ(sample(again, "switchyard_connections_active"), 9);
  EXPECT_EQ(sample(again, "switchyard_tunnels_active"), 4);
}

TEST(MetricsTest, DecisionDurationHistogram) {
  Metrics m;
  for (uint64_t us : {0, 1, 1, 3, 20, 999, 1000, 50000}) {
    m.observeDecisionMicros(us);
  }
  const std::string text = m.render();
  const std::string name = "switchyard_decision_duration_microseconds";
  EXPECT_EQ(sample(text, name + "_bucket{le=\"1\"}"), 3);
  EXPECT_EQ(sample(text, name + "_bucket{le=\"5\"}"), 4);
  EXPECT_EQ(sample(text, name + "_bucket{le=\"20\"}"), 5);
  EXPECT_EQ(sample(text, name + "_bucket{le=\"500\"}"), 5);
  EXPECT_EQ(sample(text, name + "_bucket{le=\"1000\"}"), 7);
  EXPECT_EQ(sample(text, name + "_bucket{le=\"10000\"}"), 7);
  EXPECT_EQ(sample(text, name + "_bucket{le=\"+Inf\"}"), 8);
  EXPECT_EQ(sample(text, name + "_sum"), 0 + 1 + 1 + 3 + 20 + 999 + 1000 + 50000);
  EXPECT_EQ(sample(text, name + "_count"), 8);
}

}  // namespace
}  // namespace switchyard
