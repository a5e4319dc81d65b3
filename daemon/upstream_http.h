// The client side of HTTP/1.1 towards origins and parent proxies: an
// incremental response reader (llhttp in HTTP_RESPONSE mode, strict, with a
// head size limit) and the pool of idle keep-alive connections per next hop,
// shared by every client connection of the loop.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "daemon/http_message.h"
#include "daemon/runtime.h"
#include "daemon/tls_stream.h"

namespace switchyard {

struct ResponseHead {
  int status = 0;
  std::string reason;
  int http_major = 1;
  int http_minor = 1;
  HeaderList headers;
};

// Reads one response after another from a byte stream. The owner feeds the
// bytes it read; the reader calls the Listener for each head, each piece of
// body and the end of each final response, and pauses after that end so
// that any surplus bytes are visible to the owner (which then must not reuse
// the connection).
class ResponseReader {
 public:
  // What to do after a head: read its body, or the response has none even
  // though its fields might say otherwise (a response to HEAD), or stop
  // parsing altogether (a 2xx to CONNECT: tunnel bytes follow).
  enum class HeadAction { kBody, kNoBody, kPause };

  class Listener {
   public:
    virtual ~Listener() = default;
    // Interim (1xx) heads are reported too; their action is ignored.
    virtual HeadAction onResponseHead(const ResponseHead& head) = 0;
    virtual void onResponseBody(const char* at, size_t len) = 0;
    // The final response is complete; the reader is paused.
    virtual void onResponseComplete() = 0;
  };

  struct Result {
    enum class Kind {
      kNeedMore,  // everything consumed, the response is not complete yet
      kPaused,    // stopped after a complete response or a kPause head
      kError,     // malformed or too large; `error` says why
    };
    Kind kind = Kind::kNeedMore;
    size_t consumed = 0;  // bytes of the input that belong to the response(s)
    bool head_too_large = false;
    std::string error;
  };

  ResponseReader(Listener* listener, size_t max_head_bytes);
  ResponseReader(const ResponseReader&) = delete;
  ResponseReader& operator=(const ResponseReader&) = delete;

  Result feed(const char* data, size_t len);
  // The connection ended: completes a response delimited by EOF, or errors.
  Result finish();
  // Makes the reader ready for the next response on the same connection.
  void reset();

  bool headSeen() const { return head_seen_; }  // a final head arrived
  bool started() const { return started_; }     // any byte of a response arrived
  bool keepAlive() const;                       // the connection may carry another request
  bool chunked() const;
  bool hasContentLength() const;
  // True when the body ends only when the connection closes.
  bool bodyUntilEof() const;

 private:
  // The one static llhttp settings table; every hook recovers the reader
  // from parser->data.
  static const llhttp_settings_t* settings();
  static ResponseReader* from(llhttp_t* parser);
  static int onMessageBegin(llhttp_t* parser);
  static int onStatus(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderField(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);
  static int onBody(llhttp_t* parser, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* parser);
  bool countHeadBytes(size_t len);
  Result resultOf(llhttp_errno_t err, const char* data, size_t len);

  llhttp_t parser_;
  Listener* listener_;
  size_t max_head_bytes_;
  ResponseHead head_;
  std::string field_;  // the header name being read
  std::string value_;  // the header value being read
  size_t head_bytes_ = 0;
  bool head_too_large_ = false;
  bool head_seen_ = false;  // the current final response's head was delivered
  bool started_ = false;    // a response began
  bool in_body_ = false;    // after the head: header callbacks are trailers
  bool interim_ = false;    // the current message is 1xx
  bool complete_ = false;   // the final response is complete
  bool no_body_ = false;    // the head's action was kNoBody
};

// Whoever holds a plain upstream connection that may be pooled: the pool's
// idle entry, or the exchange using it. Reading is started once with
// startUpstreamRead, whose callback dispatches through the handle's data to
// the current holder, so a connection moves between pool and exchange
// without stopping and restarting reads (in libuv 1.44 each restart costs
// two epoll_ctl calls: the stopped descriptor stays in the epoll set).
class UpstreamReader {
 public:
  virtual void onUpstreamRead(ssize_t nread, BufferRef block) = 0;

 protected:
  ~UpstreamReader() = default;
};

// Makes `reader` receive the reads of `tcp` (the handle's data).
void setUpstreamReader(uv_tcp_t* tcp, UpstreamReader* reader);
// uv_read_start with the dispatching callback; setUpstreamReader first.
int startUpstreamRead(uv_tcp_t* tcp);

// Idle keep-alive connections to next hops ("direct|host:port" or
// "parent|host:port"), most recently used first. An idle connection is
// watched for reads: a close (or any unsolicited byte) from the other side
// removes it at once, so a taken connection is very likely alive.
class UpstreamPool {
 public:
  // Per next hop and in total until setLimits() says otherwise (the Server
  // derives its bounds from limits.max_connections and the descriptor limit).
  static constexpr size_t kDefaultMaxIdle = 512;

  UpstreamPool(uv_loop_t* loop, std::chrono::milliseconds idle_timeout);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // An idle connection for `key`, now owned by the caller, still reading
  // (startUpstreamRead) with `reader` receiving its reads; `peer` gets the
  // address it is connected to (AF_UNSPEC if unknown). nullptr when there
  // is none.
  uv_tcp_t* take(const std::string& key, UpstreamReader* reader, sockaddr_storage* peer);
  // Hands a connection back after a complete exchange, no write pending;
  // `reading`: startUpstreamRead is active on it (the pool takes over its
  // reads without restarting them). Closes it instead when the pool is full
  // or closed.
  void put(const std::string& key, uv_tcp_t* tcp, const sockaddr_storage& peer, bool reading);
  // The same for TLS connections (https mirror fetches): an idle stream is
  // read from while it waits, so a peer's close drops it at once. take
  // gives the stream with reading on; the caller makes itself its handler.
  // `peer` is the "ip:port" it is connected to, for the decision log.
  TlsStream* takeTls(const std::string& key, std::string* peer);
  void putTls(const std::string& key, TlsStream* stream, std::string peer);
  // A TLS connection is only reused under the same client context (a reload
  // may change which CAs are trusted) and for the same host (SNI, checked
  // name).
  static std::string tlsKey(const Authority& target, const SSL_CTX* ctx);
  // Bounds later puts: at most `per_key` idle connections per next hop and
  // `total` in all. Connections already idle stay until taken or swept.
  void setLimits(size_t per_key, size_t total);
  size_t maxIdlePerKey() const { return max_per_key_; }
  // Closes every idle connection and the sweep timer; later puts close.
  void close();
  size_t idleCount() const { return total_; }

  static std::string directKey(const Authority& target) { return "direct|" + target.str(); }
  static std::string parentKey(const Authority& parent) { return "parent|" + parent.str(); }

 private:
  struct Entry : TlsStream::Handler, UpstreamReader {
    UpstreamPool* pool = nullptr;
    std::string key;
    uv_tcp_t* tcp = nullptr;      // a plain connection, or
    TlsStream* tls = nullptr;     // a TLS one
    std::string peer;             // TLS: "ip:port"
    sockaddr_storage tcp_peer{};  // plain: the address it is connected to
    bool reading = false;         // plain: startUpstreamRead is active
    uint64_t since_ms = 0;        // uv_now() when it became idle
    void onUpstreamRead(ssize_t nread, BufferRef block) override;
    // TlsStream::Handler: anything but silence makes it unusable.
    void onTlsHandshake(TlsStream*) override {}
    void onTlsData(TlsStream*, const BufferRef&, const char*, size_t) override {
      pool->remove(this);
    }
    void onTlsEnd(TlsStream*, bool) override { pool->remove(this); }
    void onTlsError(TlsStream*, const TlsError&) override { pool->remove(this); }
  };
  // Files `entry` as idle (or closes it when the pool is full or closed).
  void keep(Entry* entry);
  Entry* popIdle(const std::string& key);
  void remove(Entry* entry);
  void onSweep();
  void onTimerClosed(uv_handle_t* handle);

  uv_loop_t* loop_;
  uint64_t idle_timeout_ms_;
  uv_timer_t sweep_;
  bool closed_ = false;
  bool timer_closed_ = false;
  size_t total_ = 0;
  size_t max_per_key_ = kDefaultMaxIdle;
  size_t max_total_ = kDefaultMaxIdle;
  std::unordered_map<std::string, std::deque<Entry*>> idle_;
};

}  // namespace switchyard
