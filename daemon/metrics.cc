#include "daemon/metrics.h"

#include <algorithm>
#include <cassert>

#include "daemon/decision_log.h"

namespace switchyard {

namespace {

void renderHeader(std::string* out, std::string_view name, std::string_view help,
                  std::string_view type) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += escapeHelp(help);
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

void renderScalar(std::string* out, std::string_view name, std::string_view help,
                  std::string_view type, const std::string& value) {
  renderHeader(out, name, help, type);
  *out += name;
  *out += ' ';
  *out += value;
  *out += '\n';
}

}  // namespace

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string escapeHelp(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// CounterFamily

CounterFamily::CounterFamily(std::string name, std::string help,
                             std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

const std::string& CounterFamily::keyOf(std::initializer_list<std::string_view> values) const {
  assert(values.size() == label_names_.size());
  scratch_.clear();
  bool first = true;
  for (std::string_view v : values) {
    if (!first) {
      scratch_ += kSeparator;
    }
    first = false;
    // Valid UTF-8 never holds 0xFF; should invalid text arrive anyway, it
    // must not be able to forge a second label.
    for (char c : v) {
      scratch_ += c == kSeparator ? '?' : c;
    }
  }
  return scratch_;
}

void CounterFamily::add(std::initializer_list<std::string_view> values, uint64_t n) {
  const std::string& key = keyOf(values);
  if (auto it = series_.find(key); it != series_.end()) {
    it->second += n;
    return;
  }
  if (series_.size() < kMaxSeries) {
    series_.emplace(key, n);
    return;
  }
  std::string overflow;
  for (size_t i = 0; i < label_names_.size(); ++i) {
    if (i > 0) {
      overflow += kSeparator;
    }
    overflow += kOverflowLabel;
  }
  series_[overflow] += n;
}

uint64_t CounterFamily::value(std::initializer_list<std::string_view> values) const {
  auto it = series_.find(keyOf(values));
  return it == series_.end() ? 0 : it->second;
}

void CounterFamily::render(std::string* out) const {
  renderHeader(out, name_, help_, "counter");
  for (const auto& [key, count] : series_) {
    *out += name_;
    if (!label_names_.empty()) {
      *out += '{';
      size_t start = 0;
      for (size_t i = 0; i < label_names_.size(); ++i) {
        size_t end = key.find(kSeparator, start);
        if (end == std::string::npos) {
          end = key.size();
        }
        if (i > 0) {
          *out += ',';
        }
        *out += label_names_[i];
        *out += "=\"";
        *out += escapeLabelValue(std::string_view(key).substr(start, end - start));
        *out += '"';
        start = end + 1;
      }
      *out += '}';
    }
    *out += ' ';
    *out += std::to_string(count);
    *out += '\n';
  }
}

// ---------------------------------------------------------------------------
// Histogram

Histogram::Histogram(std::string name, std::string help, std::vector<uint64_t> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      bounds_(std::move(bounds)),
      buckets_(bounds_.size() + 1, 0) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
}

void Histogram::observe(uint64_t value) {
  // `le` is inclusive: a value equal to a bound belongs to that bucket.
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                       bounds_.begin());
  ++buckets_[i];
  ++count_;
  sum_ += value;
}

void Histogram::render(std::string* out) const {
  renderHeader(out, name_, help_, "histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    cumulative += buckets_[i];
    *out += name_;
    *out += "_bucket{le=\"";
    *out += i < bounds_.size() ? std::to_string(bounds_[i]) : std::string("+Inf");
    *out += "\"} ";
    *out += std::to_string(cumulative);
    *out += '\n';
  }
  *out += name_ + "_sum " + std::to_string(sum_) + "\n";
  *out += name_ + "_count " + std::to_string(count_) + "\n";
}

// ---------------------------------------------------------------------------
// Metrics

Metrics::Metrics()
    : requests_("switchyard_requests_total",
                "Requests decided (one per decision-log line), by action and deciding rule.",
                {"action", "rule"}),
      bytes_("switchyard_bytes_total",
             "Bytes relayed for clients: in = received from clients, out = sent to clients.",
             {"direction"}),
      upstream_attempts_("switchyard_upstream_attempts_total",
                         "Attempts to reach a mirror or origin, by result "
                         "(served, not_found, http_error, transport_error).",
                         {"result"}),
      cache_("switchyard_cache_total", "Cache lookups of cacheable requests, by result.",
             {"result"}),
      decision_duration_(
          "switchyard_decision_duration_microseconds",
          "Time taken to decide one request (rule and NO_PROXY matching), in microseconds.",
          std::vector<uint64_t>(kDecisionBucketsMicros.begin(), kDecisionBucketsMicros.end())) {
  // Series with a fixed label set exist from the start, at zero, so that
  // rate() and dashboards see them before the first event.
  bytes_.add({"in"}, 0);
  bytes_.add({"out"}, 0);
  cache_.add({"hit"}, 0);
  cache_.add({"miss"}, 0);
  cache_.add({"stale"}, 0);
}

std::string_view Metrics::attemptResult(const AttemptRecord& attempt) {
  if (attempt.next == "served") {
    return "served";
  }
  if (!attempt.status) {
    return "transport_error";
  }
  if (*attempt.status == 404 || *attempt.status == 410) {
    return "not_found";
  }
  return "http_error";
}

void Metrics::countRecord(const DecisionRecord& record) {
  // A request answered before any rule decided (malformed, timed out,
  // refused by the client ACL or by authentication) has no action, and
  // maybe no rule: it is counted as "none" rather than under an empty label,
  // which Prometheus would read as a missing one.
  countRequest(record.action.empty() ? kNoDecision : std::string_view(record.action),
               record.rule.empty() ? kNoDecision : std::string_view(record.rule));
  addBytes(record.bytes_in, record.bytes_out);
  for (const AttemptRecord& attempt : record.attempts) {
    countUpstreamAttempt(attemptResult(attempt));
  }
  if (record.cache == "hit") {
    countCache(CacheResult::kHit);
  } else if (record.cache == "miss") {
    countCache(CacheResult::kMiss);
  } else if (record.cache == "stale") {
    countCache(CacheResult::kStale);
  }
}

void Metrics::countRequest(std::string_view action, std::string_view rule) {
  requests_.add({action, rule});
}

void Metrics::addBytes(uint64_t in, uint64_t out) {
  if (in != 0) {
    bytes_.add({"in"}, in);
  }
  if (out != 0) {
    bytes_.add({"out"}, out);
  }
}

void Metrics::countUpstreamAttempt(std::string_view result) {
  upstream_attempts_.add({result});
}

void Metrics::countCache(CacheResult result) {
  switch (result) {
    case CacheResult::kHit:
      cache_.add({"hit"});
      break;
    case CacheResult::kMiss:
      cache_.add({"miss"});
      break;
    case CacheResult::kStale:
      cache_.add({"stale"});
      break;
  }
}

void Metrics::countCacheEvictions(uint64_t n) {
  cache_evictions_ += n;
}

std::string Metrics::render() const {
  std::string out;
  out.reserve(4096);
  requests_.render(&out);
  renderScalar(&out, "switchyard_connections_active", "Open client connections.", "gauge",
               std::to_string(connections_active_));
  renderScalar(&out, "switchyard_tunnels_active",
               "Open CONNECT tunnels (relaying or intercepted), a subset of the connections.",
               "gauge", std::to_string(tunnels_active_));
  bytes_.render(&out);
  renderScalar(&out, "switchyard_tunnel_spliced_bytes_total",
               "Tunnel bytes moved socket to socket with splice(2), without a copy "
               "(limits.splice).",
               "counter", std::to_string(spliced_bytes_));
  upstream_attempts_.render(&out);
  cache_.render(&out);
  renderScalar(&out, "switchyard_cache_evictions_total",
               "Cache entries removed to stay within cache.max_size.", "counter",
               std::to_string(cache_evictions_));
  renderScalar(&out, "switchyard_cache_bytes", "Bytes stored in the cache.", "gauge",
               std::to_string(cache_bytes_));
  renderScalar(&out, "switchyard_log_dropped_lines_total",
               "Decision-log lines dropped because the log's queue was full.", "counter",
               std::to_string(dropped_source_ ? dropped_source_() : 0));
  decision_duration_.render(&out);
  renderScalar(&out, "switchyard_config_generation",
               "Generation of the config snapshot in use (1 at start, +1 per successful reload).",
               "gauge", std::to_string(config_generation_));
  renderScalar(&out, "switchyard_config_last_reload_success",
               "1 if the last config load or reload succeeded, 0 if it was refused.", "gauge",
               last_reload_success_ ? "1" : "0");
  renderScalar(&out, "switchyard_config_last_reload_timestamp_seconds",
               "Unix time of the last config load or reload attempt.", "gauge",
               std::to_string(last_reload_unix_seconds_));
  return out;
}

}  // namespace switchyard
