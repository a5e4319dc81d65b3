// Tunnel: a CONNECT from the moment its head is parsed and allowed, to the
// end of the byte relay. It owns both sockets: it resolves the target (or
// the parent proxy), connects (Happy Eyeballs, via the Connector), asks the
// parent for its own CONNECT when the action is `upstream`, answers
// `200 Connection established`, and relays bytes both ways with
// backpressure and half-close, until both directions have ended.
//
// Callback chain, in the order it runs (tunnel.cc keeps this order):
//   start -> onResolved -> onConnected -> [sendParentConnect ->
//   onParentData -> onResponseHead] -> establish -> onSideRead ->
//   onSideWritten -> onSideShutdown -> finish -> dispose -> onHandleClosed
//   (the only place `this` is deleted).
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "daemon/connector.h"
#include "daemon/decision_log.h"
#include "daemon/http_message.h"
#include "daemon/proxy_status.h"
#include "daemon/resolver.h"
#include "daemon/runtime.h"
#include "daemon/upstream_http.h"
#include "rules/decision.h"

namespace switchyard {

class Tunnel : public Session, public ResponseReader::Listener {
 public:
  enum class Phase {
    kResolving,        // waiting for the target's (or parent's) addresses
    kConnecting,       // Happy Eyeballs towards them
    kParentHandshake,  // our CONNECT sent to the parent, awaiting its answer
    kRelaying,         // 200 sent; bytes flow both ways
    kClosing,          // logged; handles closing
  };

  // A direction stops reading when the other side's pending writes exceed
  // kHighWater and resumes below kLowWater: at most ~256 KiB (plus one read
  // block) queued per direction.
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kLowWater = 64 * 1024;
  // Splice only while this many tunnel directions move bulk data.
  static constexpr size_t kMinBulkForSplice = 2;

  struct Params {
    Runtime* rt = nullptr;
    LiveConfigPtr config;
    uv_tcp_t* client = nullptr;   // ownership passes to the tunnel
    std::string client_ip;        // for the per-client connection count
    std::string leftover;         // bytes the client sent after the head
    bool client_reading = false;  // libuv still reads `client`: take the reads over
    Authority target;
    rules::Decision decision;
    DecisionRecord record;  // filled so far by the Connection
    uint64_t start_ms = 0;
    std::string via_token;
  };

  static void start(Params&& params);

  // Session: a tunnel has no request boundary to stop at, so draining lets
  // it run until the drain deadline aborts it.
  void drain() override {}
  void abort() override;

 private:
  // One end of the relay. The handle's data points here.
  struct Side {
    Tunnel* tunnel = nullptr;
    Side* peer = nullptr;
    uv_tcp_t* tcp = nullptr;
    const char* name = "";         // "client" | "upstream", for closed_by
    uv_shutdown_t shutdown_req{};  // data points to this Side
    uint64_t bytes_read = 0;
    // Flags, each true while / once:
    bool reading = false;        // uv_read_start is active
    bool eof = false;            // this side sent EOF (its direction ended)
    bool throttled = false;      // reading stopped: the peer's queue is full
    bool shutdown_sent = false;  // we shut down writing to this side
    bool shutdown_done = false;  // ... and it completed
    // The last read filled a standard block although a large one was
    // wanted: libuv would read again at once; we decline once (see
    // Side::onRead) and wait for the next poll.
    bool yield_next_read = false;
    // The last read was at least a standard block: read into large blocks,
    // or splice (Tunnel::spliceReady). Set through setBulk, which keeps
    // bulk_directions_ counted.
    bool large_reads = false;
    void setBulk(bool bulk) {
      if (bulk != large_reads) {
        bulk ? ++bulk_directions_ : --bulk_directions_;
        large_reads = bulk;
      }
    }
    // allocBlock declined the read so that onRead splices instead.
    bool splice_next = false;
    void onRead(ssize_t nread, BufferRef block);
    static void allocBlock(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void readDone(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    void onWritten(int status, size_t bytes);
    void onClosed(uv_handle_t* handle);
  };

  explicit Tunnel(Params&& params);
  ~Tunnel() override;

  // The callback chain.
  void resolveNextHop();
  void onResolved(const ResolveResult& result);
  void onConnected(ConnectResult&& result);
  void sendParentConnect();
  void onParentData(ssize_t nread, BufferRef block);
  ResponseReader::HeadAction onResponseHead(const ResponseHead& head) override;
  void onResponseBody(const char*, size_t) override {}
  void onResponseComplete() override {}
  void parentAnswered(const char* rest, size_t rest_len, BufferRef block);
  void establish(BufferRef block, const char* parent_rest, size_t parent_rest_len);
  void onSideRead(Side& side, ssize_t nread, BufferRef block);
  void onEarlyClientRead(ssize_t nread, BufferRef block);
  void onSideWritten(Side& side, int status);
  void onSideShutdown(Side& side, int status);
  void onTimer();
  void fail(ProxyError error);
  void finish(const char* closed_by);
  void logOnce(const char* closed_by);
  void dispose();
  void onTimerClosed(uv_handle_t* handle);
  void onHandleClosed();

  void startReading(Side& side);
  void stopReading(Side& side);
  void relay(Side& from, BufferRef block, const char* at, size_t len);
  bool spliceReady(const Side& from) const;
  void spliceFrom(Side& from);
  void maybeFinishHalfClose();
  std::string nextHopName() const;

  Runtime* rt_;
  LiveConfigPtr config_;
  std::string client_ip_;
  std::string leftover_;  // client bytes to send once connected
  // The client's EOF or error, read before the tunnel was established;
  // acted on once it is (0: none).
  ssize_t early_client_end_ = 0;
  Authority target_;
  rules::Decision decision_;
  DecisionRecord record_;
  uint64_t start_ms_;
  std::string via_token_;
  Phase phase_ = Phase::kResolving;

  Side client_;
  Side upstream_;
  uv_timer_t timer_;  // parent answer deadline, then idle deadline
  std::unique_ptr<ResponseReader> parent_reader_;
  ResponseHead parent_head_;
  bool via_parent_ = false;
  Authority parent_;
  std::string proxy_authorization_;
  uint64_t resolve_id_ = 0;
  uint64_t connect_id_ = 0;
  uint64_t last_activity_ms_ = 0;
  int pending_closes_ = 0;
  const char* first_eof_ = nullptr;  // the side that ended first

  // Flags, each true once:
  bool logged_ = false;
  bool disposed_ = false;
  bool failing_ = false;  // an error answer is being written to the client
  // limits.splice when the tunnel started.
  bool splice_ = false;
  // Tunnel directions in the loop whose last read was bulk (one thread).
  static inline size_t bulk_directions_ = 0;
};

}  // namespace switchyard
