// Connection: one client connection while it speaks HTTP/1.1 to us, with its
// explicit state machine. It reads request heads (llhttp, strict, with size
// and time limits), asks rules::decide() what to do, and then either
//  - answers itself through recordError() (refusals, malformed requests),
//  - runs a ForwardExchange for an absolute-form request (and keeps the
//    client connection for the next request when both sides allow it), or
//  - hands the client socket to a Tunnel for CONNECT, and ends.
//
// Callback chain, in the order it runs (connection.cc keeps this order):
//   start -> onClientRead -> feed -> (llhttp hooks) -> dispatchRequest |
//   dispatchConnect -> [ForwardExchange ... exchangeFinished] -> nextRequest
//   -> ... -> close -> onHandleClosed (the only place `this` is deleted).
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "daemon/decision_log.h"
#include "daemon/exchange.h"
#include "daemon/http_message.h"
#include "daemon/proxy_auth.h"
#include "daemon/proxy_status.h"
#include "daemon/runtime.h"

namespace switchyard {

class ForwardExchange;

class Connection : public Session {
 public:
  // The coarse phase. Finer facts are the flags below.
  enum class Phase {
    kReadingHead,  // waiting for or parsing a request head
    kForwarding,   // a ForwardExchange owns the current request
    kResponding,   // writing our own final response; closes afterwards
    kHandedOff,    // the client socket belongs to a Tunnel now
    kClosing,      // handles are closing; deleted in the last close callback
  };

  // Named limits (request side). The byte limit is limits.max_header_bytes,
  // for the request-target alone (414 beyond it) and for the target and
  // the header fields together (431).
  // More fields than any browser or tool sends; bounds the list we build.
  static constexpr size_t kMaxRequestFields = 256;
  // Longer than any method llhttp knows (13 bytes at most): a
  // method token this long gets 501 without waiting for its end.
  static constexpr size_t kMaxMethodBytes = 32;

  // Bytes read ahead of the parser (a pipelined request arriving while the
  // current one is in flight) kept before client reads really stop.
  static constexpr size_t kMaxPendingInput = 64 * 1024;

  // What the acceptor already knows about a socket; each fact given saves a
  // syscall per connection.
  struct Accepted {
    const sockaddr* peer = nullptr;  // the peer's address (else getpeername)
    std::string via_token;           // our Via token for its listener (else getsockname)
    bool nodelay = false;            // TCP_NODELAY is on (inherited from the listener)
  };

  // Takes an accepted, initialised socket (heap-allocated; `data` unused)
  // and starts reading from it. `allowed`: the peer passed allow_clients.
  static void start(Runtime* rt, uv_tcp_t* client, bool allowed, const Accepted& accepted);
  static void start(Runtime* rt, uv_tcp_t* client, bool allowed) {
    start(rt, client, allowed, Accepted());
  }

  // Session
  void drain() override;
  void abort() override;

  // ---- Used by the ForwardExchange of the current request.
  // The exchange is ready for the request body: parsing resumes.
  void resumeRequestBody();
  // Backpressure on the request body: the upstream cannot take more now.
  void pauseClientReads();
  void resumeClientReads();
  void writeToClient(WriteRequest* w);
  // The same, written at once when the socket takes it all (writeNow): no
  // completion follows, so the exchange's onClientWritten is not called
  // for it (nothing was queued that could release backpressure).
  void writeToClientNow(WriteRequest* w);
  size_t clientWriteQueueSize() const;
  // The exchange has queued its whole response (or an error response) and
  // logged its record. `keep_client`: the next request may follow.
  void exchangeFinished(bool keep_client);
  // The response broke off midway: the client must see an unclean end.
  void abortClient();
  bool draining() const { return draining_; }

 private:
  Connection(Runtime* rt, uv_tcp_t* client, bool allowed, const Accepted& accepted);
  ~Connection() override = default;

  // The callback chain.
  void onClientRead(ssize_t nread, BufferRef block);
  void feed(const char* data, size_t len);
  void dispatchRequest();
  void dispatchGoproxy(DecisionRecord record);
  void dispatchConnect(std::string leftover);
  // Proxy authentication (access.users_file) of the current request: true
  // when it may go on. Otherwise it was answered (407 / 401), or its
  // credentials are being verified on the thread pool with the connection
  // paused, after which the dispatch runs again (`leftover`: a CONNECT's,
  // kept meanwhile; null for other requests).
  bool authenticated(AuthKind kind, DecisionRecord* record, std::string* leftover);
  void onAuthVerified(bool ok, AuthKind kind, std::string user, bool connect);
  // llhttp refused the request line's method or version; the bytes decide
  // between 400, 501, 505 and reading the request as HTTP/1.1.
  void keepLineStart(const char* data, size_t len);
  void keepRefusedBytes(const char* data, size_t len);
  void judgeRefusedLine();
  void judgeRefusedMethod();
  void judgeRefusedVersion();
  void replayAsHttp11();
  // Answers a head llhttp accepted but RFC 9110 / 9112 do not (version,
  // Host, target characters, Transfer-Encoding); true when it did.
  bool refusedMalformedHead(DecisionRecord* record);
  void nextRequest();
  void onClientWritten(int status, size_t bytes);
  void onTimer();
  void close();
  void onHandleClosed(uv_handle_t* handle);

  // llhttp hooks: one static table, each recovers `this` from parser->data.
  static const llhttp_settings_t* settings();
  static Connection* from(llhttp_t* parser);
  static int onMessageBegin(llhttp_t* parser);
  static int onUrl(llhttp_t* parser, const char* at, size_t len);
  static int onVersion(llhttp_t* parser, const char* at, size_t len);
  static int onVersionComplete(llhttp_t* parser);
  static int onHeaderField(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);
  static int onBody(llhttp_t* parser, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* parser);

  // Helpers.
  void startReading();
  void stopReading();
  void softPauseReading();
  std::string takePendingInput();
  void holdInput(ssize_t nread, const BufferRef& block);
  bool countHeadBytes(size_t len);
  DecisionRecord newRecord() const;
  // Answers the current request through recordError(), logs the record and
  // closes once the answer is written.
  void respondError(ProxyError error, DecisionRecord record);
  void respondParseError(llhttp_errno_t err);
  void closeAfterWrites();
  void lingerClose();
  void onShutdown(int status);
  void armHeaderTimer();
  void armIdleTimer();

  Runtime* rt_;
  // The config snapshot this connection started under; kept for its whole
  // life (a reload does not change a connection midway).
  LiveConfigPtr config_;
  uv_tcp_t* client_;  // heap; closed here unless handed to a Tunnel
  // What the one timer currently measures.
  enum class TimerMode {
    kNone,
    kHeader,  // limits.header_timeout for the current head (408)
    kIdle,    // limits.idle_timeout between keep-alive requests (silent close)
    kWrite,   // our final answer must be taken within idle_timeout
    kLinger,  // after our answer and FIN: wait for the client's close
    kBroken,  // a write failed synchronously: close on the next loop turn
  };
  uv_timer_t timer_;
  TimerMode timer_mode_ = TimerMode::kNone;
  uv_shutdown_t shutdown_req_{};  // the FIN after our final answer
  llhttp_t parser_;
  Phase phase_ = Phase::kReadingHead;
  Exchange* exchange_ = nullptr;  // the current request's, if any

  uint64_t id_;
  std::string client_addr_;    // "ip:port" of the peer
  std::string client_ip_;      // for limits.max_connections_per_client
  std::string via_token_;      // our Via received-by for this listener address
  int pending_closes_ = 0;     // handle closes still to come before delete
  size_t writes_pending_ = 0;  // uv_write requests not yet completed

  // Flags, each true while:
  bool client_allowed_;   // the peer passed access.allow_clients
  bool reading_ = false;  // uv_read_start is active on the client
  // Soft pause: the parser waits (after a head or a whole request) but libuv
  // keeps reading, because stopping and restarting costs epoll_ctl calls on
  // every request. What arrives meanwhile goes to pending_input_; past
  // kMaxPendingInput reads really stop. Backpressure (pauseClientReads)
  // always really stops.
  bool soft_paused_ = false;
  ssize_t deferred_end_ = 0;  // EOF or error read while soft-paused, acted on when reading resumes
  bool request_started_ = false;        // a byte of the current request arrived
  bool head_complete_ = false;          // the current request's head is parsed
  bool request_complete_ = false;       // the current request's body has ended
  bool body_flowing_ = false;           // body bytes go to the exchange
  bool throttled_ = false;              // the exchange asked us to stop reading
  bool close_after_writes_ = false;     // close once every queued write is done
  bool draining_ = false;               // SIGTERM: no further requests
  bool lingering_ = false;              // FIN sent after our answer; reading to discard
  bool handed_off_ = false;             // the client socket went to a Tunnel
  bool parsing_ = false;                // inside llhttp_execute (hooks may run)
  bool next_request_deferred_ = false;  // start the next request once it returns
  bool head_too_large_ = false;         // the head passed max_header_bytes
  bool target_too_long_ = false;        // the request-target passed max_header_bytes
  bool too_many_fields_ = false;        // the head passed kMaxRequestFields
  std::string field_error_;             // a bad field name or value, for the 400

  // The current request.
  RequestHead request_;
  std::string field_;              // header name being read
  std::string value_;              // header value being read
  size_t head_bytes_ = 0;          // bytes of the head read so far (target and fields)
  size_t target_bytes_ = 0;        // of which the request-target
  std::string version_;            // the HTTP-version digits llhttp read ("1.1")
  bool version_accepted_ = false;  // ... and llhttp accepted them
  // What llhttp refused in the request line, while the bytes that tell how
  // to answer are still coming.
  enum class Refused { kNone, kMethod, kVersion };
  Refused refused_ = Refused::kNone;
  std::string line_start_;     // the first bytes of the request (a method's worth)
  std::string after_version_;  // the bytes after a version llhttp refused
  uint64_t request_start_ms_ = 0;
  // Bytes read but not yet parsed: the parser pauses after each head and
  // each request, and what follows waits here.
  std::string pending_input_;

  // Proxy authentication of the current request.
  AuthJob* auth_job_ = nullptr;  // the verification running, if any
  bool auth_verified_ = false;   // the current request's credentials are good
  std::string auth_user_;        // ... and name this user (for the record)
  std::string auth_leftover_;    // a CONNECT's leftover while verifying
};

}  // namespace switchyard
