// Metrics: the counters, gauges and the one histogram behind the admin
// listener's /metrics, rendered in the Prometheus text exposition format
// 0.0.4. Every name starts with `switchyard_`; docs/OPERATIONS.md ("Admin
// endpoints and metrics") lists them with their labels and meaning.
//
// The registry belongs to the event-loop thread: it is bumped and rendered
// there, with plain integers and no locks. The one value that lives on
// another thread (the decision log's dropped-line count, kept by spdlog's
// writer) is read through a getter the daemon passes in, which must itself
// be safe to call from the loop (DecisionLog::dropped() is).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard {

struct AttemptRecord;
struct DecisionRecord;

// Counters of one metric family, keyed by their label values. Label values
// are free text (rule names come from the config) and are escaped on output.
class CounterFamily {
 public:
  // Distinct label sets kept per family. Beyond it, increments go to one
  // series whose every label is kOverflowLabel, so that a bug or a hostile
  // input cannot grow the registry (and every scrape) without bound.
  static constexpr size_t kMaxSeries = 2000;
  static constexpr std::string_view kOverflowLabel = "(other)";

  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);

  // `values` must have one value per label name, in the same order.
  void add(std::initializer_list<std::string_view> values, uint64_t n = 1);
  uint64_t value(std::initializer_list<std::string_view> values) const;
  size_t seriesCount() const { return series_.size(); }

  void render(std::string* out) const;

 private:
  // Label values joined with kSeparator, a byte that never occurs in UTF-8.
  static constexpr char kSeparator = '\xff';
  const std::string& keyOf(std::initializer_list<std::string_view> values) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::map<std::string, uint64_t, std::less<>> series_;
  // Scratch space for keyOf(), so that bumping an existing series does not
  // allocate. The registry is single-threaded, so one buffer is enough.
  mutable std::string scratch_;
};

// A histogram with fixed upper bounds (plus the implicit +Inf bucket).
class Histogram {
 public:
  Histogram(std::string name, std::string help, std::vector<uint64_t> bounds);

  void observe(uint64_t value);
  uint64_t count() const { return count_; }
  uint64_t sum() const { return sum_; }
  // Observations in bucket i alone (not cumulative); the last is +Inf.
  uint64_t bucketCount(size_t i) const { return buckets_[i]; }
  const std::vector<uint64_t>& bounds() const { return bounds_; }

  void render(std::string* out) const;

 private:
  std::string name_;
  std::string help_;
  std::vector<uint64_t> bounds_;   // ascending upper bounds (inclusive, as `le`)
  std::vector<uint64_t> buckets_;  // bounds_.size() + 1
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
};

class Metrics {
 public:
  // Upper bounds of the decision-duration buckets, in microseconds: decide()
  // takes about a microsecond, so the interesting range is 1 µs .. 10 ms.
  static constexpr std::array<uint64_t, 12> kDecisionBucketsMicros = {
      1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000};

  enum class CacheResult { kHit, kMiss, kStale };

  // The action and rule labels of a request that no rule decided.
  static constexpr std::string_view kNoDecision = "none";

  Metrics();

  // --- Per request. --------------------------------------------------------
  // The simplest wiring: call this wherever a decision-log record is written
  // (Runtime::writeDecision), so that the log and the metrics always agree.
  // It counts requests_total{action,rule}, bytes_total (the record's
  // bytes_in / bytes_out), upstream_attempts_total{result} for each attempt,
  // and cache_total{result} when the record's cache is hit/miss/stale.
  void countRecord(const DecisionRecord& record);

  // The same, piece by piece, for callers that do not have a record.
  void countRequest(std::string_view action, std::string_view rule);
  // `in`: bytes received from clients; `out`: bytes sent to clients.
  void addBytes(uint64_t in, uint64_t out);
  // `result`: served | not_found | http_error | transport_error (see
  // attemptResult()); other values are allowed but keep the set small.
  void countUpstreamAttempt(std::string_view result);
  void countCache(CacheResult result);
  void countCacheEvictions(uint64_t n = 1);
  // Tunnel bytes moved with splice(2) instead of copied (limits.splice).
  void addSplicedBytes(uint64_t n) { spliced_bytes_ += n; }
  void setCacheBytes(uint64_t bytes) { cache_bytes_ = bytes; }
  // Time decide() took for one request.
  void observeDecisionMicros(uint64_t micros) { decision_duration_.observe(micros); }

  // --- Open connections (client connections; tunnels are a subset). -------
  void connectionOpened() { ++connections_active_; }
  void connectionClosed() { connections_active_ -= connections_active_ > 0 ? 1 : 0; }
  void tunnelOpened() { ++tunnels_active_; }
  void tunnelClosed() { tunnels_active_ -= tunnels_active_ > 0 ? 1 : 0; }
  void setConnectionsActive(uint64_t n) { connections_active_ = n; }
  void setTunnelsActive(uint64_t n) { tunnels_active_ = n; }

  // --- Config. -------------------------------------------------------------
  void setConfigGeneration(uint64_t generation) { config_generation_ = generation; }
  // After the initial load (success) and after every SIGHUP reload attempt;
  // `unix_seconds` is the wall-clock time of the attempt.
  void recordReload(bool success, int64_t unix_seconds) {
    last_reload_success_ = success;
    last_reload_unix_seconds_ = unix_seconds;
  }

  // --- Decision log. -------------------------------------------------------
  // Where log_dropped_lines_total comes from (e.g. DecisionLog::dropped).
  // Unset: 0.
  void setDroppedLinesSource(std::function<uint64_t()> source) {
    dropped_source_ = std::move(source);
  }

  // The whole exposition, "text/plain; version=0.0.4".
  std::string render() const;

  // The result label for one upstream attempt: served (its response went to
  // the client), transport_error (no HTTP status came back), not_found
  // (404/410: the GOPROXY walk may fall through), http_error (any other
  // status that was not served).
  static std::string_view attemptResult(const AttemptRecord& attempt);

  // Read access, for tests and for the daemon's status line.
  const CounterFamily& requests() const { return requests_; }
  const CounterFamily& bytes() const { return bytes_; }
  const CounterFamily& upstreamAttempts() const { return upstream_attempts_; }
  const CounterFamily& cache() const { return cache_; }
  const Histogram& decisionDuration() const { return decision_duration_; }
  uint64_t connectionsActive() const { return connections_active_; }
  uint64_t tunnelsActive() const { return tunnels_active_; }

 private:
  CounterFamily requests_;
  CounterFamily bytes_;
  CounterFamily upstream_attempts_;
  CounterFamily cache_;
  Histogram decision_duration_;
  uint64_t cache_evictions_ = 0;
  uint64_t spliced_bytes_ = 0;
  uint64_t cache_bytes_ = 0;
  uint64_t connections_active_ = 0;
  uint64_t tunnels_active_ = 0;
  uint64_t config_generation_ = 0;
  bool last_reload_success_ = false;
  int64_t last_reload_unix_seconds_ = 0;
  std::function<uint64_t()> dropped_source_;
};

// Prometheus text-format escaping: in label values `\`, `"` and newline
// become `\\`, `\"` and `\n`; in HELP text only `\` and newline are escaped.
std::string escapeLabelValue(std::string_view value);
std::string escapeHelp(std::string_view text);

}  // namespace switchyard
