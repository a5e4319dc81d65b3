// DecisionLog: one line per request (per CONNECT, per forwarded request, per
// intercepted inner request), text or JSON, written by spdlog's async logger
// so the event loop never blocks on disk. If the queue overflows, lines are
// dropped and counted, never waited for.
#pragma once

#include <uv.h>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rules/config.h"

namespace switchyard {

struct AttemptRecord {
  std::string url;
  std::optional<int> status;         // HTTP status, when one came back
  std::optional<std::string> error;  // transport error, when none did
  std::string next;                  // "fell through: 404 after ','" | "stopped" | "served"
};

// The fields of DESIGN.md's decision log, in its order.
struct DecisionRecord {
  std::string ts;  // filled by write() when empty (RFC 3339, ms)
  uint64_t conn = 0;
  std::string client;  // "127.0.0.1:54321"
  std::string user;    // proxy-auth user, never the password
  std::string method;
  std::string target;  // request target, credentials masked
  std::string host;
  uint16_t port = 0;
  std::string module;
  std::string rule;
  std::string source;   // "file:line" | "env:NAME" | "builtin"
  std::string matched;  // MatchedEntry::describe()
  std::string action;
  std::string next_hop;  // "direct", parent proxy (masked), mirror URL
  std::string resolved;  // "93.184.216.34:443"
  std::vector<AttemptRecord> attempts;
  std::string cache = "none";  // hit | miss | stale | none
  int status = 0;
  uint64_t bytes_in = 0;   // from the client
  uint64_t bytes_out = 0;  // to the client
  uint64_t duration_ms = 0;
  std::string closed_by;     // client | upstream | proxy
  std::string proxy_status;  // RFC 9209 header value, empty when none
  uint64_t config_gen = 0;
};

class DecisionLog {
 public:
  static constexpr size_t kQueueSize = 1 << 16;

  // Opens the sink named by `config.decisions` (stderr, stdout, or a path).
  // Returns nullptr and sets *error when the file cannot be opened.
  static std::unique_ptr<DecisionLog> open(const rules::LogConfig& config, std::string* error);
  // For tests: the same with a queue of `queue_size` lines.
  static std::unique_ptr<DecisionLog> openForTest(const rules::LogConfig& config, size_t queue_size,
                                                  std::string* error);
  ~DecisionLog();

  void write(const DecisionRecord& record);
  // From now on, lines written on `loop`'s thread are gathered and handed to
  // the writer thread together, at the latest 20 ms after the first of them
  // (a timer that keeps the loop alive until then), or at once when many
  // have gathered: one wake-up and one write(2) for all of them.
  void batchOn(uv_loop_t* loop);
  // Hands over what is gathered and closes the timer; the loop must run once
  // more for its close callback. Without it, uv_loop_close fails.
  void stopBatching();
  // Reopens the file (SIGUSR1, after logrotate moved it).
  void reopen();
  // Lines dropped because the async queue was full, since start.
  uint64_t dropped() const;
  // Waits (a bounded time) until every queued line was written. For shutdown
  // and tests, not for the event loop's hot path.
  void flush();
  // For tests: holds the writer thread before its next line, so that the
  // queue fills up deterministically.
  void pauseWriterForTest(bool paused);

  // The line write() would produce (for tests).
  static std::string formatText(const DecisionRecord& record);
  static std::string formatJson(const DecisionRecord& record);

 private:
  DecisionLog() = default;
  void postBatch();
  void post(const std::string& text, uint64_t lines);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard
