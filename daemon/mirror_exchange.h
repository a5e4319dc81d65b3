// MirrorExchange: one absolute-form request that a rule sends to a mirror
// list (action mirror), carried by a MirrorFetch and answered to the
// Connection that read it. The fetch walks the list with go's fall-back; this
// class only re-frames what it serves for the client (chunked for HTTP/1.1
// when the length is unknown, close-delimited for HTTP/1.0), applies write
// backpressure, and turns a failed walk into one recordError() answer.
//
// Callback chain: create -> begin -> (MirrorFetch) onMirrorHead ->
// onMirrorBody* -> onMirrorComplete | onMirrorFailed | onMirrorAborted, or
// detach from the Connection. Each of the last four logs the request once
// and deletes `this`.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "daemon/decision_log.h"
#include "daemon/exchange.h"
#include "daemon/http_message.h"
#include "daemon/mirror_fetch.h"
#include "daemon/proxy_status.h"
#include "daemon/runtime.h"
#include "rules/decision.h"

namespace switchyard {

class Connection;

// The RFC 9209 kind for a MirrorFailure::proxy_status_error token.
ProxyErrorKind proxyErrorKindFromToken(const std::string& token);

// The ProxyError that answers a failed mirror walk: its status (404 stays
// 404), reason, kind, details, next hop and the attempts listing as body.
ProxyError proxyErrorFromMirrorFailure(const MirrorFailure& failure);

// The client TLS context for `live`'s tls.upstream_ca_file, cached on the
// Runtime and rebuilt after a reload. Null with *error when it cannot load.
SSL_CTX* upstreamTlsContext(Runtime* rt, const LiveConfig& live, std::string* error);

// Fills the config-derived part of `params` for a fetch that `decision`
// sends along a mirror list (or to its origin): configureMirrorParams() plus
// the upstream TLS context. On failure, the 502 to answer, naming the rule.
std::optional<ProxyError> prepareMirrorFetch(Runtime* rt, const LiveConfig& live,
                                             const rules::Decision& decision,
                                             MirrorFetch::Params* params);

class MirrorExchange : public Exchange, public ResponseSink {
 public:
  // Pending client writes above this pause the fetch until they fall below
  // kLowWater (the same bounds as ForwardExchange).
  static constexpr size_t kHighWater = 256 * 1024;
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
    bool client_keep_alive = false;
    std::string via_token;
    // Starts the source that answers (the module cache, a GOPROXY-server
    // fetch, a local answer). Unset: a MirrorFetch along the decision's
    // mirrors, the default for action mirror.
    std::function<ResponseSource*(ResponseSink*)> source;
  };

  // Creates the exchange; begin() starts the fetch (separately, so that the
  // Connection holds the pointer before any callback can run). The request
  // must be a GET or HEAD without a body.
  static MirrorExchange* create(Params&& params);
  void begin();

  // Exchange
  void onRequestBody(const char* at, size_t len) override;
  void onRequestComplete() override;
  void onRequestBodyError(const std::string& why) override;
  void onClientWritten() override;
  void detach(const char* closed_by) override;

  // ResponseSink
  void onMirrorHead(const ResponseHead& head, const MirrorResponseInfo& info) override;
  void onMirrorBody(const BufferRef& block, const char* data, size_t len) override;
  void onMirrorComplete() override;
  void onMirrorFailed(const MirrorFailure& failure) override;
  void onMirrorAborted(const std::string& why) override;

 private:
  explicit MirrorExchange(Params&& params);
  ~MirrorExchange() override = default;

  // Answers with `error` (before any head went out), logs and ends.
  void fail(const ProxyError& error);
  void logOnce(const char* closed_by);

  Runtime* rt_;
  Connection* conn_;  // null once detached or finished
  LiveConfigPtr config_;
  RequestHead head_;
  AbsoluteUrl url_;
  rules::Decision decision_;
  DecisionRecord record_;
  uint64_t start_ms_;
  std::string via_token_;
  std::function<ResponseSource*(ResponseSink*)> source_factory_;
  ResponseSource* fetch_ = nullptr;  // null once it made its terminal call

  bool client_keep_alive_;
  bool head_request_;
  bool chunk_to_client_ = false;  // re-framing an unknown length as chunked
  bool paused_ = false;           // the fetch is paused for backpressure
  bool logged_ = false;
};

}  // namespace switchyard
