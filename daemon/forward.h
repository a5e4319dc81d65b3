// ForwardExchange: one absolute-form request (`GET http://host/path`) carried
// to the origin (action direct, origin-form target) or to a parent proxy
// (action upstream, absolute-form target plus the parent's credentials),
// and its response carried back. Bodies stream both ways, never buffered
// whole; hop-by-hop fields are removed, `Via` is added and the framing is
// redone on each side (chunked re-encoding when needed). The upstream
// connection comes from, and goes back to, the UpstreamPool.
//
// Callback chain (forward.cc keeps this order):
//   start -> [pool hit | onResolved -> onConnected] -> sendHead ->
//   onRequestBody* -> onRequestComplete -> onUpstreamRead -> (reader hooks:
//   onResponseHead, onResponseBody*, onResponseComplete) -> finish ->
//   dispose -> onHandleClosed (the only place `this` is deleted).
#pragma once

#include <uv.h>

#include <memory>
#include <optional>
#include <string>

#include "daemon/connector.h"
#include "daemon/decision_log.h"
#include "daemon/exchange.h"
#include "daemon/http_message.h"
#include "daemon/proxy_status.h"
#include "daemon/resolver.h"
#include "daemon/runtime.h"
#include "daemon/upstream_http.h"
#include "rules/decision.h"

namespace switchyard {

class Connection;

class ForwardExchange : public ResponseReader::Listener, public Exchange, public UpstreamReader {
 public:
  enum class Phase {
    kResolving,   // waiting for the next hop's addresses
    kConnecting,  // Happy Eyeballs towards them
    kExchanging,  // request going out and/or response coming back
    kDone,        // logged; handles closing or pooled
  };

  // Pending writes above this stop the reading side until they fall below
  // kLowWater: at most ~256 KiB queued per direction per exchange.
  static constexpr size_t kHighWater = 256 * 1024;
  // Interim (1xx) responses passed on per request before we give up (502).
  static constexpr int kMaxInterimResponses = 32;
  static constexpr size_t kLowWater = 64 * 1024;

  struct Params {
    Runtime* rt = nullptr;
    Connection* conn = nullptr;
    LiveConfigPtr config;
    RequestHead head;
    AbsoluteUrl url;
    rules::Decision decision;
    DecisionRecord record;  // filled so far by the Connection
    uint64_t start_ms = 0;  // uv_now() when the request began
    bool request_chunked = false;
    bool request_has_body = false;
    bool client_keep_alive = false;  // the client allows another request
    std::string via_token;
  };

  // Creates the exchange; begin() starts it (separately, so that the
  // Connection holds the pointer before any callback can run). It lives
  // until its handles are closed.
  static ForwardExchange* create(Params&& params);
  void begin();

  // ---- From the Connection.
  void onRequestBody(const char* at, size_t len) override;
  void onRequestComplete() override;
  // The client's body was malformed midway: answer 400 (or abort) and log.
  void onRequestBodyError(const std::string& why) override;
  // A client write completed: backpressure may be released.
  void onClientWritten() override;
  // The connection is going away (client closed, drain deadline): stop,
  // log once and close. `closed_by` is "client" or "proxy".
  void detach(const char* closed_by) override;

 private:
  explicit ForwardExchange(Params&& params);
  ~ForwardExchange() override = default;

  // The callback chain.
  void connectNextHop();
  void onResolved(const ResolveResult& result);
  void onConnected(ConnectResult&& result);
  void attachUpstream(uv_tcp_t* tcp);
  void sendHead();
  void onUpstreamWritten(int status, size_t bytes);
  void onUpstreamRead(ssize_t nread, BufferRef block) override;
  ResponseReader::HeadAction onResponseHead(const ResponseHead& head) override;
  void onResponseBody(const char* at, size_t len) override;
  void throttleUpstreamIfBehind();
  // Client output gathered while one upstream read is parsed (head, body
  // piece, chunk framing) goes out as one write at the end of that read.
  void queueClientText(std::string text);
  void queueClientBody(std::string prefix, const char* at, size_t len, std::string suffix);
  void flushClientOutput();
  void onResponseComplete() override;
  void onTimer();
  void finish();
  void fail(ProxyError error);
  // `why` goes into the attempt record: the status line already went out.
  void abortMidResponse(const char* closed_by, const std::string& why);
  void upstreamBroke(const std::string& why);
  void logOnce(const char* closed_by);
  std::string attemptUrl() const;  // the next hop, as an attempt's url
  void dispose();
  void onHandleClosed(uv_handle_t* handle);

  // What the one timer currently measures.
  enum class TimerMode {
    kNone,
    kIdle,             // limits.idle_timeout without progress either way
    kResponse,         // limits.response_timeout for the first response byte
    kDeferredFailure,  // a synchronous failure, handled on the next loop turn
  };
  void armTimer(TimerMode mode);
  void deferFailure(std::string why);
  void writeUpstream(std::string bytes);
  void releaseUpstream();
  bool retryable() const;
  std::string nextHopName() const;  // masked, for messages

  Runtime* rt_;
  Connection* conn_;  // null once detached or finished
  LiveConfigPtr config_;
  RequestHead head_;
  AbsoluteUrl url_;
  rules::Decision decision_;
  DecisionRecord record_;
  uint64_t start_ms_;
  std::string via_token_;
  Phase phase_ = Phase::kResolving;

  // The next hop: the origin (direct) or the parent proxy (upstream).
  bool via_parent_ = false;
  Authority next_hop_;
  std::string proxy_authorization_;  // "Basic ..." for the parent, or empty
  std::string pool_key_;

  uv_tcp_t* upstream_ = nullptr;      // heap; pooled or closed at the end
  sockaddr_storage upstream_peer_{};  // what upstream_ is connected to
  uv_timer_t timer_;
  TimerMode timer_mode_ = TimerMode::kNone;
  std::string deferred_failure_;  // why, for kDeferredFailure
  std::string attempt_error_;     // the failure, for the attempt record
  bool attempted_ = false;        // a next hop was asked (resolve started)
  ResponseReader reader_;
  BufferRef current_block_;  // the upstream read being parsed
  uint64_t resolve_id_ = 0;
  uint64_t connect_id_ = 0;
  std::string request_head_bytes_;      // kept for one retry on a stale pooled connection
  WriteRequest* client_out_ = nullptr;  // gathered for the client (flushClientOutput)
  uint64_t last_activity_ms_ = 0;
  int pending_closes_ = 0;
  size_t upstream_writes_pending_ = 0;
  std::optional<ProxyError> pending_failure_;  // decided inside a reader hook

  // Flags, each true while / once:
  bool request_chunked_;  // the client's body is chunked: re-chunk it
  bool request_has_body_;
  bool client_keep_alive_;          // the client connection may be reused
  bool head_sent_ = false;          // the request head was written upstream
  bool body_resumed_ = false;       // the Connection was told to feed the body
  bool upstream_eof_ = false;       // the response ended with the connection
  bool surplus_ = false;            // bytes followed the response: no reuse
  bool request_complete_ = false;   // the whole request was queued upstream
  bool request_body_seen_ = false;  // some body bytes went out (no retry)
  bool reused_ = false;             // the upstream came from the pool
  bool retried_ = false;            // one retry was spent
  bool response_started_ = false;   // a final head went to the client
  bool response_complete_ = false;
  bool chunk_to_client_ = false;     // re-chunk the response body
  bool head_request_ = false;        // HEAD: the response has no body
  bool upstream_throttled_ = false;  // upstream reads stopped (client slow)
  bool upstream_reading_ = false;    // startUpstreamRead is active on upstream_
  int interim_responses_ = 0;
  bool client_throttled_ = false;   // client reads stopped (upstream slow)
  bool pool_when_written_ = false;  // pool the upstream once writes finish
  bool logged_ = false;
  bool disposed_ = false;
};

}  // namespace switchyard
