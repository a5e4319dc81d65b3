// MirrorFetch: one client request carried along a GOPROXY-syntax list of
// mirrors (a rule's `mirrors:`, or env GOPROXY in module-proxy mode) with
// exactly the go command's fall-back (SEMANTICS.md §b): after ',' only
// 404/410 fall through, after '|' any error does (refused, TLS failure, 5xx,
// timeout), `direct` is the original origin, `off` stops.
//
// Each URL entry gets the mirror base URL + the original path and query
// (`https://m/api/go/` + `/github.com/x/@v/list` ->
// `https://m/api/go/github.com/x/@v/list`). Each attempt resolves, connects
// (limits.connect_timeout, which also bounds the TLS handshake), verifies TLS
// (system store plus tls.upstream_ca_file, SNI, host name), sends the request
// and waits for the response head (limits.response_timeout). A 2xx or 3xx
// head is served: it goes to the Sink as it is (3xx are not followed) and
// the body streams after it with backpressure. Any other outcome is reported
// to the GoproxyWalk, which decides whether the next entry is tried.
//
// Nothing is sent to the Sink before a head is chosen, so a failure of the
// whole walk is still a clean answer: 404 for the not-found class (the
// client's own list continues), 504 when the deciding error was a timeout,
// 502 otherwise, with a text/plain body listing every attempt.
//
// Callback chain (mirror_fetch.cc keeps this order):
//   start -> onTimer(kick) -> step -> onResolved -> onConnected ->
//   [TlsStream: onTlsHandshake] -> sendRequest -> onUpstreamBytes ->
//   (reader hooks: onResponseHead, onResponseBody*, onResponseComplete) ->
//   complete | attemptFailed -> step ... -> finishWalk | abortBody ->
//   dispose -> onHandleClosed (the only place `this` is deleted).
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/decision_log.h"
#include "daemon/http_message.h"
#include "daemon/response_source.h"
#include "daemon/runtime.h"
#include "daemon/tls_stream.h"
#include "daemon/upstream_http.h"
#include "rules/config.h"
#include "rules/decision.h"
#include "rules/goproxy_list.h"

namespace switchyard {

class MirrorFetch : public ResponseSource,
                    public ResponseReader::Listener,
                    public TlsStream::Handler {
 public:
  using Sink = ResponseSink;

  struct Params {
    // The loop, the resolver, the connector and the own-listener check.
    Runtime* rt = nullptr;
    // The parsed list (copied; the walk runs over this copy). For a rule:
    // parseGoproxyList(rule.mirrors, /*insert_noproxy=*/false, ...).
    rules::GoproxyList list;
    // The module matches GONOPROXY (GoproxyWalk's leak guard).
    bool module_private = false;
    // False where switchyard cannot go direct (GOPROXY server mode): a
    // `direct` or noproxy step then ends the walk as not-found.
    bool direct_allowed = true;
    // The original request. The method is sent as is; no request body is
    // carried (GET and HEAD are what mirrors serve).
    std::string method = "GET";
    AbsoluteUrl url;  // scheme (http|https), authority, path + query
    // Where `direct` goes when that is not `url`: a checksum database's own
    // URL (https://<GOSUMDB name>/...) for a /sumdb/<name>/... request.
    std::optional<AbsoluteUrl> direct_url;
    HeaderList headers;  // the client's fields; hop-by-hop ones are dropped here
    int http_major = 1;  // the client's version, for our Via entry
    int http_minor = 1;
    std::string via_token;  // our Via received-by; empty: no Via added
    // For https entries: certs::clientContext(tls.upstream_ca_file), shared
    // (the fetch takes its own reference). Null: https entries fail.
    SSL_CTX* tls_ctx = nullptr;
    std::chrono::milliseconds connect_timeout{10'000};   // limits.connect_timeout
    std::chrono::milliseconds response_timeout{60'000};  // request sent -> head
    std::chrono::milliseconds idle_timeout{300'000};     // body without progress
    size_t max_header_bytes = 64 * 1024;                 // limits.max_header_bytes
    // access.deny_private_destinations (and the rule has no allow_private):
    // applied to the `direct` entry, whose host the client chose. Mirror
    // URLs come from the config and are trusted.
    bool deny_private_direct = false;
  };

  // Creates the fetch and starts the walk on the next loop turn, so the
  // caller holds the pointer before any Sink call.
  static MirrorFetch* start(Params params, Sink* sink);

  // ResponseSource. Backpressure: at most the rest of the current read (one
  // pool block) arrives after pause(); while paused the body idle timer does
  // not run.
  void pause() override;
  void resume() override;
  void cancel() override;

  // Every attempt so far, for the decision log: the URL fetched (masked;
  // the keyword for `off` and steps that were skipped), the status or
  // error, and "served" | "stopped" | "skipped" | "fell through: 404 after
  // ','". An attempt served and then broken off carries its error too.
  const std::vector<AttemptRecord>& attempts() const override { return records_; }
  bool abortedByProxy() const override { return aborted_by_proxy_; }

 private:
  enum class Phase {
    kIdle,         // between attempts (or before the first)
    kResolving,    // the entry's host
    kConnecting,   // Happy Eyeballs
    kHandshaking,  // TLS
    kWaitingHead,  // request sent, no final head yet
    kBody,         // head given to the sink; body streaming
    kDone,         // a terminal call was made, or cancelled
  };
  enum class TimerMode {
    kNone,
    kKick,       // the walk starts on the next loop turn
    kHandshake,  // connect_timeout for the TLS handshake
    kResponse,   // response_timeout for the head
    kIdle,       // idle_timeout for body progress
  };

  // Where one attempt goes.
  struct Target {
    std::string scheme;  // "http" | "https"
    Authority authority;
    std::string path;         // origin-form target: path + query
    std::string credentials;  // "user:password" from the mirror URL, or empty
    std::string url;          // the full URL, credentials masked
    std::string entry;        // the entry, masked ("direct" for direct)
    bool direct = false;
  };
  // What we know of an attempt beyond the walk's outcome.
  struct StepNote {
    const rules::GoproxyEntry* entry = nullptr;
    std::string url;
    std::string proxy_status_error;
  };

  MirrorFetch(Params&& params, Sink* sink);
  ~MirrorFetch() override;

  // The callback chain.
  void step();
  void resolveTarget();
  bool takePooledTls();
  void onResolved(const ResolveResult& result);
  void onConnected(ConnectResult&& result);
  void onTlsHandshake(TlsStream* stream) override;
  void sendRequest();
  void onPlainRead(ssize_t nread, BufferRef block);
  void onPlainWritten(int status, size_t bytes);
  void onTlsData(TlsStream* stream, const BufferRef& block, const char* data, size_t len) override;
  void onTlsEnd(TlsStream* stream, bool clean) override;
  void onTlsError(TlsStream* stream, const TlsError& error) override;
  void onUpstreamBytes(const BufferRef& block, const char* data, size_t len);
  void onUpstreamEnd(bool eof, bool clean_tls, const std::string& why);
  ResponseReader::HeadAction onResponseHead(const ResponseHead& head) override;
  void onResponseBody(const char* at, size_t len) override;
  void onResponseComplete() override;
  void onTimer();
  void complete();
  void attemptFailed(rules::AttemptOutcome outcome, const char* proxy_status_error);
  void finishWalk();
  void abortBody(const std::string& why);
  void dispose();
  void onHandleClosed(uv_handle_t* handle);

  // Helpers.
  // Fills target_ for `entry`; false with the attempt's failure when the
  // entry cannot be tried at all.
  bool prepareTarget(const rules::GoproxyEntry& entry, rules::AttemptOutcome* failure,
                     const char** proxy_status_error);
  void report(const rules::AttemptOutcome& outcome, const char* proxy_status_error);
  void rebuildRecords();
  MirrorFailure buildFailure() const;
  std::string buildRequestHead() const;
  void dropUpstream(bool graceful);
  void armTimer(TimerMode mode);

  Runtime* rt_;
  Sink* sink_;  // null once done
  Params params_;
  // The walk points into params_.list, which never moves after this.
  rules::GoproxyWalk walk_;
  Phase phase_ = Phase::kIdle;
  const rules::GoproxyEntry* current_entry_ = nullptr;  // the entry being tried
  Target target_;
  std::vector<StepNote> notes_;  // one per attempt the walk handed out
  // The walk's attempts as log records, and their RFC 9209 error types.
  std::vector<AttemptRecord> records_;
  std::vector<std::string> record_errors_;

  uv_timer_t timer_;
  TimerMode timer_mode_ = TimerMode::kNone;
  uint64_t last_activity_ms_ = 0;  // uv_now() of the last body progress
  uint64_t resolve_id_ = 0;
  uint64_t connect_id_ = 0;
  uv_tcp_t* plain_ = nullptr;  // http attempt: the connection (data = this)
  TlsStream* tls_ = nullptr;   // https attempt: the stream owning the connection
  std::string resolved_;       // "ip:port" of the current attempt
  ResponseReader reader_;
  BufferRef current_block_;  // the bytes being parsed, for zero-copy body pieces
  // A final head that is not served (>= 400 or unusable), decided inside
  // the reader hook and acted upon after feed() returns.
  std::optional<rules::AttemptOutcome> pending_outcome_;
  const char* pending_error_type_ = "";
  int handles_open_ = 1;  // the timer, plus plain connections not yet closed
  uint64_t body_bytes_ = 0;

  // Flags, each true while / once:
  bool paused_ = false;             // the sink asked for no more body now
  bool head_delivered_ = false;     // onMirrorHead() was called
  bool response_complete_ = false;  // the reader saw the end of the body
  bool body_until_eof_ = false;     // the body ends with the connection
  bool disposed_ = false;
  bool aborted_by_proxy_ = false;  // our idle timer ended the body
  bool reused_tls_ = false;        // this attempt runs on a pooled connection
  bool retried_fresh_ = false;     // ... which failed, and was replaced once
  bool upstream_ended_ = false;    // the upstream closed its side
  bool surplus_ = false;           // bytes came after the response
};

// Fills the config-derived part of `params` for a request that rules::decide()
// sent to `decision`: the list (action mirror: the rule's `mirrors:`; action
// direct: the single entry `direct`, e.g. an intercepted request that goes to
// its origin), the limits, and the private-destination policy. The caller
// still sets rt, url, method, headers, via_token and tls_ctx. False with
// *error for other actions or a list that does not parse.
bool configureMirrorParams(const rules::Config& config, const rules::Decision& decision,
                           MirrorFetch::Params* params, std::string* error);

namespace detail {

// A mirror base URL split for use: "https://user:pw@[::1]:8443/api/go/".
struct MirrorBase {
  std::string scheme;  // lowercased: "http" | "https" | other (rejected later)
  Authority authority;
  std::string user;      // percent-decoded
  std::string password;  // percent-decoded
  bool has_credentials = false;
  std::string userinfo;  // as written, for the masked form in logs
  std::string path;      // as written, without query or fragment ("" or "/api/go/")
};
// Parses a URL entry of a parsed GOPROXY list. False with *error for
// anything that is not http(s)://host[:port][/path].
bool parseMirrorBase(std::string_view url, MirrorBase* out, std::string* error);

// The path to request from a mirror: `base_path` without its trailing
// slashes + `original` (which starts with '/', query included).
// ("/api/go/", "/x/@v/list") -> "/api/go/x/@v/list"; ("", "/") -> "/".
std::string joinMirrorPath(std::string_view base_path, std::string_view original);

}  // namespace detail
}  // namespace switchyard
