#include "daemon/tls_stream.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cassert>
#include <utility>

#include "daemon/net_address.h"

namespace switchyard {

namespace {

// The host_name entry of a ClientHello's server_name extension (RFC 6066 3):
// a two-byte list length, then entries of a one-byte type, a two-byte length
// and the name. Anything malformed reads as "no SNI"; OpenSSL itself rejects
// such a hello later.
std::string sniOf(SSL* ssl) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2) {
    return {};
  }
  size_t list_len = (static_cast<size_t>(p[0]) << 8) | p[1];
  if (list_len + 2 != len) {
    return {};
  }
  size_t pos = 2;
  while (pos + 3 <= len) {
    unsigned type = p[pos];
    size_t name_len = (static_cast<size_t>(p[pos + 1]) << 8) | p[pos + 2];
    pos += 3;
    if (pos + name_len > len) {
      return {};
    }
    if (type == TLSEXT_NAMETYPE_host_name) {
      return std::string(reinterpret_cast<const char*>(p + pos), name_len);
    }
    pos += name_len;
  }
  return {};
}

std::string opensslReason(const char* fallback) {
  std::string text = certs::drainOpensslErrors();
  return text.empty() ? std::string(fallback) : text;
}

}  // namespace

const char* TlsError::proxyStatusError() const {
  switch (kind) {
    case Kind::kCertificate:
      return "tls_certificate_error";
    case Kind::kHandshake:
    case Kind::kProtocol:
      return "tls_protocol_error";
    case Kind::kTransport:
      return "connection_terminated";
  }
  return "tls_protocol_error";
}

bool TlsStream::Handler::onTlsServerName(TlsStream*, const std::string&) {
  return false;
}

TlsStream* TlsStream::create(uv_tcp_t* tcp, Options options, Handler* handler) {
  return new TlsStream(tcp, std::move(options), handler);
}

TlsStream::TlsStream(uv_tcp_t* tcp, Options options, Handler* handler)
    : tcp_(tcp),
      handler_(handler),
      role_(options.role),
      ctx_(options.ctx),
      host_(std::move(options.host)),
      leaf_(std::move(options.leaf)) {
  tcp_->data = this;
  uv_timer_init(tcp_->loop, &timer_);
  timer_.data = this;
  if (ctx_ != nullptr) {
    SSL_CTX_up_ref(ctx_);
  }
}

TlsStream::~TlsStream() {
  assert(disposed_);
  ssl_.reset();
  if (ctx_ != nullptr) {
    SSL_CTX_free(ctx_);
  }
}

// ---------------------------------------------------------------------------
// Setup.

bool TlsStream::start(std::string already_read, std::string* error) {
  error->clear();
  if (started_ || closing_) {
    *error = "TLS stream already started or closed";
    return false;
  }
  started_ = true;
  if (ctx_ == nullptr) {
    *error = "no TLS context";
    return false;
  }
  ERR_clear_error();
  ssl_.reset(SSL_new(ctx_));
  if (!ssl_) {
    *error = "cannot create a TLS session: " + opensslReason("out of memory");
    return false;
  }
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (rbio_ == nullptr || wbio_ == nullptr) {
    BIO_free(rbio_);
    BIO_free(wbio_);
    rbio_ = wbio_ = nullptr;
    *error = "cannot create TLS buffers";
    return false;
  }
  // An empty memory BIO must read as "try again", not as end of stream:
  // the end of the stream is the socket's EOF, which we track ourselves.
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_.get(), rbio_, wbio_);
  SSL_set_app_data(ssl_.get(), this);
  if (role_ == Role::kClient) {
    if (!certs::setClientHost(ssl_.get(), host_, error)) {
      return false;
    }
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
    // The ClientHello callback reads the SNI for serverName() and, without
    // a preset certificate, lets the handler choose one. It is set on the
    // shared context every time; the callback ignores sessions that are
    // not ours.
    SSL_CTX_set_client_hello_cb(ctx_, &TlsStream::clientHelloCallback, nullptr);
    if (leaf_) {
      if (!certs::useLeaf(ssl_.get(), *leaf_, error)) {
        return false;
      }
      leaf_ready_ = true;
    } else if (SSL_CTX_get0_certificate(ctx_) != nullptr) {
      leaf_ready_ = true;
    }
  }
  uv_tcp_nodelay(tcp_, 1);
  already_read_ = std::move(already_read);
  startSocketRead();
  // The ClientHello (client) and the bytes read before (server) are
  // handled on the next loop turn, so that no handler method runs inside
  // start().
  kick();
  return true;
}

void TlsStream::kick() {
  if (closing_ || kick_pending_) {
    return;
  }
  kick_pending_ = true;
  startTimer<&TlsStream::onTimer, TlsStream>(&timer_, 0);
}

void TlsStream::onTimer() {
  if (closing_) {
    // The linger deadline after close(). A peer still taking our bytes
    // gets more time; one that stopped reading (or never sends its FIN)
    // does not.
    size_t queued = uv_stream_get_write_queue_size(asStream(tcp_));
    if (writes_in_flight_ > 0 && queued < linger_queue_size_) {
      linger_queue_size_ = queued;
      startTimer<&TlsStream::onTimer, TlsStream>(&timer_, kCloseLingerMs);
      return;
    }
    dispose(false);
    return;
  }
  onKick();
}

// ---------------------------------------------------------------------------
// The callback chain.

void TlsStream::onKick() {
  kick_pending_ = false;
  if (closing_) {
    return;
  }
  if (failed_) {
    // A failure found outside a read callback (a write, a late ClientHello
    // verdict) is reported from here, never from inside the owner's call.
    if (!pending_error_.message.empty()) {
      TlsError error = std::move(pending_error_);
      pending_error_ = TlsError();
      handler_->onTlsError(this, error);
    }
    return;
  }
  if (!already_read_.empty()) {
    BIO_write(rbio_, already_read_.data(), static_cast<int>(already_read_.size()));
    already_read_.clear();
  }
  pump();
}

void TlsStream::onSocketRead(ssize_t nread, BufferRef block) {
  if (nread == 0) {
    return;
  }
  if (closing_) {
    // Lingering after close(): the peer's last bytes (its close_notify) are
    // read and dropped, so that our close does not turn into a reset.
    if (nread < 0) {
      socket_eof_ = true;
      stopSocketRead();
      if (shutdown_done_ || writes_in_flight_ == 0) {
        dispose(false);
      }
    }
    return;
  }
  if (failed_) {
    return;
  }
  if (nread < 0) {
    socket_eof_ = true;
    stopSocketRead();
    if (nread != UV_EOF) {
      fail(TlsError::Kind::kTransport,
           "reading from " + peerName() + " failed: " + uv_strerror(static_cast<int>(nread)));
      return;
    }
    if (!handshake_done_) {
      fail(TlsError::Kind::kHandshake,
           "TLS handshake with " + peerName() + " failed: the connection was closed");
      return;
    }
    pump();  // delivers what is still buffered, then reports the end
    return;
  }
  if (!already_read_.empty()) {
    BIO_write(rbio_, already_read_.data(), static_cast<int>(already_read_.size()));
    already_read_.clear();
  }
  BIO_write(rbio_, block.data(), static_cast<int>(nread));
  pump();
}

void TlsStream::pump() {
  if (!live() || waiting_for_leaf_) {
    return;
  }
  if (!handshake_done_ && !doHandshake()) {
    return;
  }
  deliverPlaintext();
  if (!closing_) {
    flushCiphertext();
  }
}

bool TlsStream::doHandshake() {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_.get());
  int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), rc);
  // Our part of the handshake, or the alert telling the peer why it failed.
  flushCiphertext();
  if (!live()) {
    return false;
  }
  if (rc == 1) {
    handshake_done_ = true;
    std::vector<std::pair<std::string, WriteCallback>> early = std::move(early_writes_);
    early_writes_.clear();
    early_bytes_ = 0;
    for (auto& [text, done] : early) {
      write(std::move(text), std::move(done));
    }
    handler_->onTlsHandshake(this);
    return live();
  }
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return false;
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
      waiting_for_leaf_ = true;
      return false;
    default:
      handshakeFailed(err);
      return false;
  }
}

int TlsStream::clientHelloCallback(SSL* ssl, int* alert, void*) {
  auto* self = static_cast<TlsStream*>(SSL_get_app_data(ssl));
  if (self == nullptr) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  return self->onClientHello(alert);
}

int TlsStream::onClientHello(int* alert) {
  if (!asked_for_leaf_) {
    server_name_ = sniOf(ssl_.get());
  }
  if (leaf_ready_) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  if (!asked_for_leaf_) {
    asked_for_leaf_ = true;
    in_hello_callback_ = true;
    bool will_provide = handler_->onTlsServerName(this, server_name_);
    in_hello_callback_ = false;
    if (leaf_ready_) {
      return SSL_CLIENT_HELLO_SUCCESS;
    }
    if (!will_provide || closing_) {
      hello_error_ =
          "no certificate for " +
          (server_name_.empty() ? std::string("a client without SNI") : "\"" + server_name_ + "\"");
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_CLIENT_HELLO_ERROR;
    }
  }
  // Suspends the handshake: SSL_do_handshake() reports
  // SSL_ERROR_WANT_CLIENT_HELLO_CB until provideLeaf() resumes it.
  return SSL_CLIENT_HELLO_RETRY;
}

bool TlsStream::provideLeaf(LeafPtr leaf, std::string* error) {
  error->clear();
  if (role_ != Role::kServer || !ssl_ || closing_ || failed_) {
    *error = "the TLS stream does not wait for a certificate";
    return false;
  }
  if (!leaf) {
    *error = "no certificate";
    return false;
  }
  if (!certs::useLeaf(ssl_.get(), *leaf, error)) {
    return false;
  }
  leaf_ = std::move(leaf);
  leaf_ready_ = true;
  if (waiting_for_leaf_ && !in_hello_callback_) {
    waiting_for_leaf_ = false;
    kick();
  }
  return true;
}

void TlsStream::deliverPlaintext() {
  while (live() && !paused_ && !end_reported_) {
    BufferRef block = BufferRef::make();
    size_t filled = 0;
    int err = SSL_ERROR_NONE;
    while (filled < kMaxPlaintextPerCallback) {
      ERR_clear_error();
      size_t got = 0;
      int rc =
          SSL_read_ex(ssl_.get(), block.data() + filled, kMaxPlaintextPerCallback - filled, &got);
      if (rc == 1) {
        filled += got;
        continue;
      }
      err = SSL_get_error(ssl_.get(), rc);
      break;
    }
    if (filled > 0) {
      handler_->onTlsData(this, block, block.data(), filled);
      if (!live()) {
        return;
      }
    }
    switch (err) {
      case SSL_ERROR_NONE:
        continue;  // the block filled up; there may be more
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        if (socket_eof_ && !paused_) {
          // TCP ended without close_notify: the stream may be truncated,
          // and the handler decides whether that matters.
          end_reported_ = true;
          handler_->onTlsEnd(this, false);
        }
        return;
      case SSL_ERROR_ZERO_RETURN:
        if (paused_) {
          return;  // reported once delivery resumes (nothing precedes it)
        }
        peer_closed_ = true;
        end_reported_ = true;
        stopSocketRead();
        handler_->onTlsEnd(this, true);
        return;
      default:
        fail(TlsError::Kind::kProtocol,
             "TLS error from " + peerName() + ": " + opensslReason("bad record"));
        return;
    }
  }
}

// ---------------------------------------------------------------------------
// Writing.

int TlsStream::write(const char* data, size_t len, WriteCallback done) {
  return write(std::string(data, len), std::move(done));
}

int TlsStream::write(std::string plaintext, WriteCallback done) {
  if (closing_ || failed_) {
    return UV_EPIPE;
  }
  if (plaintext.empty()) {
    return UV_EINVAL;
  }
  if (!handshake_done_) {
    early_bytes_ += plaintext.size();
    early_writes_.emplace_back(std::move(plaintext), std::move(done));
    return 0;
  }
  ERR_clear_error();
  size_t written = 0;
  // The write BIO grows as needed, so one call takes everything.
  if (SSL_write_ex(ssl_.get(), plaintext.data(), plaintext.size(), &written) != 1 ||
      written != plaintext.size()) {
    fail(TlsError::Kind::kProtocol,
         "TLS write to " + peerName() + " failed: " + opensslReason("session unusable"));
    return UV_EPROTO;
  }
  if (done) {
    unflushed_callbacks_.push_back(std::move(done));
  }
  flushCiphertext();
  return 0;
}

void TlsStream::flushCiphertext() {
  if (disposed_ || wbio_ == nullptr) {
    return;
  }
  size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) {
    return;
  }
  std::string bytes(pending, '\0');
  int got = BIO_read(wbio_, bytes.data(), static_cast<int>(pending));
  if (got <= 0) {
    return;
  }
  bytes.resize(static_cast<size_t>(got));
  inflight_callbacks_.push_back(std::move(unflushed_callbacks_));
  unflushed_callbacks_.clear();
  ++writes_in_flight_;
  int rc = submitWrite<&TlsStream::onSocketWritten, TlsStream>(asStream(tcp_), this,
                                                               makeWrite(std::move(bytes)));
  if (rc != 0) {
    --writes_in_flight_;
    inflight_callbacks_.pop_back();
    if (!closing_) {
      fail(TlsError::Kind::kTransport,
           "writing to " + peerName() + " failed: " + std::string(uv_strerror(rc)));
    }
  }
}

void TlsStream::onSocketWritten(int status, size_t) {
  --writes_in_flight_;
  std::vector<WriteCallback> callbacks = std::move(inflight_callbacks_.front());
  inflight_callbacks_.pop_front();
  if (closing_) {
    if (!disposed_ && writes_in_flight_ == 0 && !shutdown_sent_) {
      beginShutdown();
    }
    return;
  }
  for (WriteCallback& done : callbacks) {
    if (closing_) {
      return;
    }
    if (done) {
      done(status);
    }
  }
  if (status < 0 && live()) {
    fail(TlsError::Kind::kTransport,
         "writing to " + peerName() + " failed: " + std::string(uv_strerror(status)));
  }
}

size_t TlsStream::writeQueueSize() const {
  if (disposed_) {
    return 0;
  }
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(tcp_)) + early_bytes_;
}

// ---------------------------------------------------------------------------
// Reading control.

void TlsStream::startSocketRead() {
  if (reading_ || socket_eof_ || disposed_) {
    return;
  }
  if (startRead<&TlsStream::onSocketRead, TlsStream>(asStream(tcp_)) == 0) {
    reading_ = true;
  }
}

void TlsStream::stopSocketRead() {
  if (reading_) {
    uv_read_stop(asStream(tcp_));
    reading_ = false;
  }
}

void TlsStream::pauseReading() {
  if (closing_) {
    return;
  }
  paused_ = true;
  stopSocketRead();
}

void TlsStream::resumeReading() {
  if (closing_ || !paused_) {
    return;
  }
  paused_ = false;
  if (!end_reported_ && !failed_) {
    startSocketRead();
  }
  // Plaintext (or an end) may be waiting inside the session already.
  kick();
}

// ---------------------------------------------------------------------------
// Failures and the end.

void TlsStream::handshakeFailed(int ssl_error) {
  long verify = SSL_get_verify_result(ssl_.get());
  if (role_ == Role::kClient && verify != X509_V_OK) {
    certs::drainOpensslErrors();
    fail(TlsError::Kind::kCertificate, "TLS certificate verification failed for " + host_ + ": " +
                                           certs::verifyResultText(ssl_.get()));
    return;
  }
  std::string why;
  if (!hello_error_.empty()) {
    certs::drainOpensslErrors();
    why = hello_error_;
  } else if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    why = "the peer closed the session";
  } else {
    why = opensslReason("handshake error");
  }
  fail(TlsError::Kind::kHandshake, "TLS handshake with " + peerName() + " failed: " + why);
}

void TlsStream::fail(TlsError::Kind kind, std::string message) {
  if (failed_ || closing_) {
    return;
  }
  failed_ = true;
  stopSocketRead();
  pending_error_.kind = kind;
  pending_error_.message = std::move(message);
  // Reported on the next loop turn: fail() may run inside the owner's own
  // call (write()), and the owner's reaction (close) must not re-enter it.
  kick_pending_ = false;
  kick();
}

void TlsStream::close() {
  if (closing_) {
    return;
  }
  closing_ = true;
  handler_ = nullptr;
  uv_timer_stop(&timer_);
  kick_pending_ = false;
  early_writes_.clear();
  early_bytes_ = 0;
  if (!started_ || ssl_ == nullptr) {
    dispose(false);
    return;
  }
  if (handshake_done_ && !failed_) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // queues our close_notify
    certs::drainOpensslErrors();
    flushCiphertext();
  }
  linger_queue_size_ = uv_stream_get_write_queue_size(asStream(tcp_));
  startTimer<&TlsStream::onTimer, TlsStream>(&timer_, kCloseLingerMs);
  // Keep reading until the peer's FIN, discarding, so that unread bytes in
  // the kernel do not make our close a reset.
  paused_ = false;
  startSocketRead();
  if (writes_in_flight_ == 0) {
    beginShutdown();
  }
}

void TlsStream::beginShutdown() {
  if (shutdown_sent_ || disposed_) {
    return;
  }
  shutdown_sent_ = true;
  shutdown_req_.data = this;
  int rc = uv_shutdown(&shutdown_req_, asStream(tcp_), [](uv_shutdown_t* req, int status) {
    static_cast<TlsStream*>(req->data)->onShutdown(status);
  });
  if (rc != 0) {
    dispose(false);
  }
}

void TlsStream::onShutdown(int status) {
  shutdown_done_ = true;
  if (disposed_) {
    return;
  }
  if (status < 0 || socket_eof_) {
    dispose(false);
  }
  // Otherwise the peer's FIN (onSocketRead) or the linger timer ends it.
}

void TlsStream::abort() {
  closing_ = true;
  handler_ = nullptr;
  dispose(true);
}

void TlsStream::dispose(bool reset) {
  if (disposed_) {
    return;
  }
  disposed_ = true;
  closing_ = true;
  stopSocketRead();
  uv_timer_stop(&timer_);
  pending_closes_ = 2;
  closeHandle<&TlsStream::onHandleClosed, TlsStream>(asHandle(&timer_));
  // A reset tells the peer the stream ended badly, and discards whatever
  // we still had queued for it.
  if (reset && !shutdown_sent_ && uv_tcp_close_reset(tcp_, [](uv_handle_t* h) {
                                    static_cast<TlsStream*>(h->data)->onHandleClosed(h);
                                  }) == 0) {
    return;
  }
  closeHandle<&TlsStream::onHandleClosed, TlsStream>(asHandle(tcp_));
}

void TlsStream::onHandleClosed(uv_handle_t*) {
  if (--pending_closes_ > 0) {
    return;
  }
  delete tcp_;
  delete this;
}

// ---------------------------------------------------------------------------
// Accessors.

std::string TlsStream::alpn() const {
  if (!ssl_) {
    return {};
  }
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &len);
  return data == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(data), len);
}

std::string TlsStream::protocolVersion() const {
  return ssl_ ? SSL_get_version(ssl_.get()) : "";
}

std::string TlsStream::peerName() const {
  if (role_ == Role::kClient && !host_.empty()) {
    return host_;
  }
  sockaddr_storage peer{};
  int len = sizeof(peer);
  if (uv_tcp_getpeername(tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    return formatAddress(reinterpret_cast<const sockaddr*>(&peer));
  }
  return role_ == Role::kClient ? "the server" : "the client";
}

// ---------------------------------------------------------------------------
// UpstreamTlsContexts

SSL_CTX* UpstreamTlsContexts::get(const std::string& upstream_ca_file, std::string* error) {
  error->clear();
  auto it = contexts_.find(upstream_ca_file);
  if (it != contexts_.end()) {
    return it->second.get();
  }
  certs::SslCtxPtr ctx = certs::clientContext(upstream_ca_file, error);
  if (!ctx) {
    return nullptr;
  }
  SSL_CTX* raw = ctx.get();
  contexts_.emplace(upstream_ca_file, std::move(ctx));
  return raw;
}

}  // namespace switchyard
