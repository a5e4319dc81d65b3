// InterceptSession: a CONNECT tunnel whose rule says `intercept: true`. We
// answer `200 Connection established`, terminate the client's TLS with a
// leaf minted by our CA for the CONNECT host, and read plaintext HTTP/1.1
// requests from it. Each inner request is decided on its own
// (RequestKind::kIntercepted) and carried by a MirrorFetch: along the rule's
// mirrors, or for action direct to the origin itself over verified TLS.
//
// Callback chain (intercept.cc keeps this order):
//   start -> [mint on the thread pool -> onMinted -> provideLeaf] ->
//   onTlsHandshake -> onTlsData -> processInput -> dispatchInner ->
//   (MirrorFetch Sink) onMirrorHead -> onMirrorBody* -> onMirrorComplete |
//   onMirrorFailed | onMirrorAborted -> finishInner -> processInput ... ->
//   finish (the only place `this` is deleted, once no mint job refers to it).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "certs/ca.h"
#include "certs/leaf_cache.h"
#include "certs/tls_context.h"
#include "daemon/decision_log.h"
#include "daemon/http_message.h"
#include "daemon/intercept_check.h"
#include "daemon/mirror_fetch.h"
#include "daemon/request_head_reader.h"
#include "daemon/runtime.h"
#include "daemon/tls_stream.h"
#include "rules/config.h"

namespace switchyard {

// What interception needs of the CA, per Runtime: loaded on first use from
// tls.ca_dir (and again when that setting changes).
struct InterceptCa {
  std::string dir;
  std::unique_ptr<certs::CertificateAuthority> ca;
  certs::LeafCache leaves;
  certs::SslCtxPtr server_ctx;
};

class InterceptSession : public Session, public TlsStream::Handler, public ResponseSink {
 public:
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kLowWater = 64 * 1024;

  struct Params {
    Runtime* rt = nullptr;
    LiveConfigPtr config;
    uv_tcp_t* client = nullptr;  // ownership passes to the session
    std::string client_ip;       // for the per-client connection count
    std::string leftover;        // bytes after the CONNECT head (a ClientHello)
    Authority target;            // the CONNECT authority
    DecisionRecord record;       // the CONNECT's record, filled so far
    uint64_t start_ms = 0;
    std::string via_token;
  };

  static void start(Params&& params);

  // Session
  void drain() override;
  void abort() override;

  // TlsStream::Handler
  void onTlsHandshake(TlsStream* stream) override;
  void onTlsData(TlsStream* stream, const BufferRef& block, const char* data, size_t len) override;
  void onTlsEnd(TlsStream* stream, bool clean) override;
  void onTlsError(TlsStream* stream, const TlsError& error) override;
  bool onTlsServerName(TlsStream* stream, const std::string& server_name) override;

  // ResponseSink
  void onMirrorHead(const ResponseHead& head, const MirrorResponseInfo& info) override;
  void onMirrorBody(const BufferRef& block, const char* data, size_t len) override;
  void onMirrorComplete() override;
  void onMirrorFailed(const MirrorFailure& failure) override;
  void onMirrorAborted(const std::string& why) override;

 private:
  explicit InterceptSession(Params&& params);
  ~InterceptSession() override = default;

  void begin();
  void onEstablishedWritten(int status, size_t bytes);
  void onMinted(std::shared_ptr<const certs::CertificateAuthority::Leaf> leaf,
                const std::string& error);
  // What the session's one timer is waiting for.
  enum class TimerMode {
    kNone,
    kFirstHead,  // TLS handshake and the first inner head: limits.header_timeout
    kIdle,       // between inner requests: limits.idle_timeout
    kHead,       // the rest of a head that has begun: limits.header_timeout
    kStalled,    // the client stopped reading our answer: limits.idle_timeout
  };

  void processInput();
  void beginInnerRecord();
  void dispatchInner(RequestHead head, bool keep_alive);
  void armTimer(TimerMode mode);
  void onTimer();
  void maybeDelete();
  void answerError(const ProxyError& error, bool keep);
  void finishInner(bool keep);
  void onTlsWritten(int status);
  void finish(bool reset);

  Runtime* rt_;
  LiveConfigPtr config_;
  uv_tcp_t* client_;
  std::string client_ip_;
  std::string leftover_;
  Authority target_;
  DecisionRecord connect_record_;
  uint64_t start_ms_;
  std::string via_token_;
  std::shared_ptr<InterceptCa> ca_;
  TlsStream* tls_ = nullptr;
  ResponseSource* fetch_ = nullptr;  // the inner request in flight, if any
  std::string input_;                // plaintext not yet parsed
  RequestHeadReader reader_;         // the inner head being read
  uv_timer_t timer_{};               // data points here; see TimerMode
  TimerMode timer_mode_ = TimerMode::kNone;
  bool timer_open_ = false;      // uv_timer_init ran; closed by finish()
  bool input_paused_ = false;    // TLS reads stopped: input_ is full
  DecisionRecord inner_record_;  // the inner request in flight
  uint64_t inner_start_ms_ = 0;
  bool inner_head_request_ = false;
  bool inner_keep_ = false;
  bool inner_http11_ = true;
  bool chunk_to_client_ = false;
  bool fetch_paused_ = false;
  bool draining_ = false;
  bool minting_ = false;  // a mint job refers to `this`
  bool done_ = false;     // finish() ran; deleted when no mint job is left
                          // and the timer is closed
};

}  // namespace switchyard
