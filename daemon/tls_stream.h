// TlsStream: TLS on top of an already-connected uv_tcp_t, for both ends the
// proxy plays: the client of a mirror or origin (verifying it, with SNI), and
// the server of an intercepted tunnel (presenting a minted leaf).
//
// OpenSSL never touches the socket. It reads ciphertext from one memory BIO
// that we fill from libuv reads, and writes ciphertext into another that we
// drain into uv_write() after every OpenSSL call. So the event loop stays in
// charge of all I/O, the read buffers are the daemon's pool blocks, and
// backpressure is simply the socket's write queue (writeQueueSize()).
//
// Lifetime: the stream owns the TCP handle from create() on. The owner calls
// close() (close_notify, flush, FIN, short linger) or abort() (reset) exactly
// once; from that call on no Handler method and no write callback runs again,
// and the stream frees itself and the handle in their close callbacks. The
// owner must forget the pointer after calling either.
//
// Callback chain (tls_stream.cc keeps this order):
//   create -> start -> [onKick] -> onSocketRead -> pump -> doHandshake ->
//   [onClientHello -> Handler::onTlsServerName -> provideLeaf] ->
//   Handler::onTlsHandshake -> deliverPlaintext -> Handler::onTlsData* ->
//   Handler::onTlsEnd | fail -> Handler::onTlsError;
//   write -> flushCiphertext -> onSocketWritten -> write callback;
//   close | abort -> [onShutdown -> linger] -> dispose -> onHandleClosed
//   (the only place `this` is deleted).
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "certs/ca.h"
#include "certs/tls_context.h"
#include "daemon/runtime.h"

namespace switchyard {

struct TlsError {
  enum class Kind {
    kCertificate,  // client mode: the peer's chain or name did not verify
    kHandshake,    // any other handshake failure (alert, no shared cipher, EOF)
    kProtocol,     // a bad record or alert after the handshake
    kTransport,    // the socket failed (read or write error)
  };
  Kind kind = Kind::kHandshake;
  // Readable, e.g. "TLS certificate verification failed for mirror.test:
  // hostname mismatch".
  std::string message;

  // The RFC 9209 error type: tls_certificate_error, tls_protocol_error,
  // connection_terminated.
  const char* proxyStatusError() const;
};

class TlsStream {
 public:
  enum class Role { kClient, kServer };
  using LeafPtr = std::shared_ptr<const certs::CertificateAuthority::Leaf>;
  // Called when the ciphertext carrying a write() has been handed to the
  // kernel (status 0) or the socket failed (a negative UV error).
  using WriteCallback = std::function<void(int status)>;

  // After close() was called, our last bytes (close_notify included) are
  // still written and the peer's FIN awaited, but never for longer than
  // this without progress; then the handle is closed regardless.
  static constexpr uint64_t kCloseLingerMs = 2000;
  // Plaintext handed to the Handler per onTlsData() call at most: one pool
  // block (up to four TLS records).
  static constexpr size_t kMaxPlaintextPerCallback = BufferPool::kBlockSize;

  class Handler {
   public:
    virtual ~Handler() = default;
    // The handshake completed: data flows, writes queued before go out now.
    virtual void onTlsHandshake(TlsStream* stream) = 0;
    // Plaintext from the peer; `data` lies inside `block`, which the handler
    // may keep (for a zero-copy write elsewhere) by copying the BufferRef.
    virtual void onTlsData(TlsStream* stream, const BufferRef& block, const char* data,
                           size_t len) = 0;
    // The peer ended its direction: `clean` after its close_notify, false
    // when TCP ended without one (a possibly truncated stream). No data
    // follows. The handler still owns the stream and must close() it.
    virtual void onTlsEnd(TlsStream* stream, bool clean) = 0;
    // Something failed; nothing more will be read. The handler must close()
    // or abort() the stream.
    virtual void onTlsError(TlsStream* stream, const TlsError& error) = 0;
    // Server mode without a preset leaf: the ClientHello arrived, naming
    // `server_name` (SNI; empty when the client sent none). Return true to
    // present a certificate: the handshake waits until provideLeaf() is
    // called (from here, or later, e.g. after minting on a worker thread)
    // unless the handler gives up with abort(). Return false to refuse: the
    // client gets an unrecognized_name alert and onTlsError() follows. The
    // default refuses every name.
    virtual bool onTlsServerName(TlsStream* stream, const std::string& server_name);
  };

  struct Options {
    Role role = Role::kClient;
    // The context: certs::clientContext() for kClient, certs::serverContext()
    // (or serverContextForLeaf()) for kServer. The stream holds a reference
    // of its own, so a config reload may drop the owner's.
    SSL_CTX* ctx = nullptr;
    // kClient: the name (or IP literal) to send as SNI and to verify.
    std::string host;
    // kServer: the certificate to present; when null, the handler's
    // onTlsServerName() chooses one per ClientHello (unless the context
    // already carries a certificate).
    LeafPtr leaf;
  };

  // Takes ownership of `tcp`: connected, allocated with `new`, not reading,
  // `data` unused. Nothing happens until start().
  static TlsStream* create(uv_tcp_t* tcp, Options options, Handler* handler);

  // Starts the handshake. `already_read` is ciphertext the owner read from
  // the socket before (a ClientHello behind a CONNECT head); it is processed
  // first. Handler methods are never called from inside start(): the first
  // ones run on a later loop turn. Returns false with *error when the
  // session cannot be set up (bad host name, unusable leaf); then the owner
  // must abort().
  bool start(std::string already_read, std::string* error);

  // Server mode: the certificate for the pending ClientHello (see
  // Handler::onTlsServerName). Returns false with *error when OpenSSL
  // rejects it (the owner then aborts).
  bool provideLeaf(LeafPtr leaf, std::string* error);

  // Queues plaintext. Before the handshake completes it is held and sent
  // right after it. Returns 0, or a negative UV error when the stream can no
  // longer write (failed, ended by us, or empty data); `done` is then never
  // called.
  int write(std::string plaintext, WriteCallback done = nullptr);
  int write(const char* data, size_t len, WriteCallback done = nullptr);

  // Stops and restarts delivering plaintext: decrypted data already buffered
  // is held, and the socket is not read, until resume.
  // Hands the stream to another handler (an idle-connection pool, the next
  // fetch that takes it from the pool). Only between callbacks.
  void setHandler(Handler* handler) { handler_ = handler; }
  void pauseReading();
  void resumeReading();

  // Bytes accepted by write() but not yet handed to the kernel: ciphertext
  // queued on the socket plus plaintext waiting for the handshake.
  size_t writeQueueSize() const;

  // Ends the session politely: close_notify, our queued bytes, FIN, then a
  // bounded wait for the peer's FIN. No callbacks from now on.
  void close();
  // Ends it at once with a TCP reset (the peer sees an unclean end), for
  // errors and responses broken off midway. No callbacks from now on.
  void abort();

  Role role() const { return role_; }
  bool handshakeDone() const { return handshake_done_; }
  // Server mode: the SNI the client sent (empty until the ClientHello, or
  // when it sent none).
  const std::string& serverName() const { return server_name_; }
  // The negotiated ALPN protocol, empty when none.
  std::string alpn() const;
  // "TLSv1.3", for logs.
  std::string protocolVersion() const;
  const SSL* ssl() const { return ssl_.get(); }
  uv_tcp_t* tcp() const { return tcp_; }

 private:
  TlsStream(uv_tcp_t* tcp, Options options, Handler* handler);
  ~TlsStream();

  // The callback chain.
  void onKick();
  void onSocketRead(ssize_t nread, BufferRef block);
  void pump();
  bool doHandshake();
  static int clientHelloCallback(SSL* ssl, int* alert, void* arg);
  int onClientHello(int* alert);
  void deliverPlaintext();
  void flushCiphertext();
  void onSocketWritten(int status, size_t bytes);
  void fail(TlsError::Kind kind, std::string message);
  void handshakeFailed(int ssl_error);
  void beginShutdown();
  void onShutdown(int status);
  void onTimer();
  void dispose(bool reset);
  void onHandleClosed(uv_handle_t* handle);

  void startSocketRead();
  void stopSocketRead();
  void kick();
  bool live() const { return !closing_ && !failed_; }
  std::string peerName() const;

  uv_tcp_t* tcp_;
  uv_timer_t timer_;  // kick (0 ms) while open, linger deadline while closing
  Handler* handler_;
  Role role_;
  certs::SslPtr ssl_;
  BIO* rbio_ = nullptr;  // ciphertext from the peer (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext to the peer (owned by ssl_)
  SSL_CTX* ctx_;         // our reference
  std::string host_;     // client mode: the name verified
  LeafPtr leaf_;         // server mode: the certificate presented
  std::string server_name_;
  std::string already_read_;  // start()'s bytes, fed on the first kick
  TlsError pending_error_;    // reported on the next kick (see fail())
  std::string hello_error_;   // why the ClientHello callback refused

  // Plaintext written before the handshake completed, with its callbacks.
  std::vector<std::pair<std::string, WriteCallback>> early_writes_;
  size_t early_bytes_ = 0;
  // Callbacks of write() calls whose ciphertext is in wbio_ but not yet
  // submitted; then one entry per uv_write in flight, in order (libuv
  // completes a stream's writes in order).
  std::vector<WriteCallback> unflushed_callbacks_;
  std::deque<std::vector<WriteCallback>> inflight_callbacks_;
  size_t writes_in_flight_ = 0;
  size_t linger_queue_size_ = 0;  // the write queue when the linger timer was armed
  int pending_closes_ = 0;
  uv_shutdown_t shutdown_req_{};

  // Flags, each true while / once:
  bool started_ = false;
  bool reading_ = false;  // uv_read_start is active
  bool paused_ = false;   // the owner paused plaintext delivery
  bool handshake_done_ = false;
  bool waiting_for_leaf_ = false;   // server: the handshake awaits provideLeaf()
  bool asked_for_leaf_ = false;     // server: onTlsServerName() was called
  bool leaf_ready_ = false;         // server: a certificate is installed
  bool in_hello_callback_ = false;  // inside OpenSSL's ClientHello callback
  bool socket_eof_ = false;         // TCP EOF arrived (data may still be buffered)
  bool peer_closed_ = false;        // close_notify received
  bool end_reported_ = false;       // onTlsEnd() was called
  bool failed_ = false;             // onTlsError() was called (or is due)
  bool closing_ = false;            // close() or abort(): no more callbacks
  bool shutdown_sent_ = false;      // uv_shutdown was requested
  bool shutdown_done_ = false;      // ... and its callback ran
  bool kick_pending_ = false;       // the 0 ms timer will call pump()
  bool disposed_ = false;
};

// Client contexts for upstream TLS, one per `tls.upstream_ca_file` value,
// built on first use: loading the system trust store costs milliseconds, far
// too much per request. Lives on the loop thread; clear() on reload so that
// a changed file is read again.
class UpstreamTlsContexts {
 public:
  // The context for `upstream_ca_file` (may be empty), or nullptr with
  // *error when the file cannot be loaded.
  SSL_CTX* get(const std::string& upstream_ca_file, std::string* error);
  void clear() { contexts_.clear(); }

 private:
  std::map<std::string, certs::SslCtxPtr> contexts_;
};

}  // namespace switchyard
