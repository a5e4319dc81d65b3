// The CONNECT tunnel, in callback order. Two things deserve a word before
// the code:
//
// Memory. A tunnel holds no buffer of its own. Each read takes a 64 KiB
// block (256 KiB while a direction moves bulk data) from the pool just
// before the read syscall, the block travels to the
// other side as the write request's payload, and it returns to the pool when
// that write completes. An idle tunnel therefore pins nothing but its two
// sockets, its timer and this object; a busy one at most kHighWater of
// queued writes per direction plus one block in flight.
//
// Ending. TCP has two directions and each ends on its own: EOF from one
// side becomes a FIN (shutdown(2), through uv_shutdown when bytes are still
// queued) to the other once the bytes queued for it are out, and the tunnel stays up until both
// directions have ended that way, so a client that half-closes after its request still gets the
// whole answer. A reset, a write error or the idle timer end both at once.
#include "daemon/tunnel.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "daemon/busy_poll.h"
#include "daemon/destination.h"
#include "daemon/metrics.h"
#include "daemon/net_address.h"
#include "daemon/splice_pipe.h"
#include "daemon/write_now.h"
#include "rules/config_loader.h"

namespace switchyard {

namespace {

constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";

}  // namespace

void Tunnel::start(Params&& params) {
  auto* tunnel = new Tunnel(std::move(params));
  tunnel->resolveNextHop();
}

Tunnel::Tunnel(Params&& p)
    : rt_(p.rt),
      config_(std::move(p.config)),
      client_ip_(std::move(p.client_ip)),
      leftover_(std::move(p.leftover)),
      target_(std::move(p.target)),
      decision_(std::move(p.decision)),
      record_(std::move(p.record)),
      start_ms_(p.start_ms),
      via_token_(std::move(p.via_token)),
      splice_(config_->config().limits.splice) {
  client_.tunnel = this;
  client_.peer = &upstream_;
  client_.tcp = p.client;
  client_.name = "client";
  client_.tcp->data = &client_;
  if (p.client_reading) {
    // libuv keeps reading the socket the Connection read the CONNECT from;
    // its callbacks become ours without a stop and restart (each restart
    // costs two epoll_ctl in libuv 1.44). uv_stream_t exposes both fields.
    auto* stream = asStream(client_.tcp);
    stream->alloc_cb = &Side::allocBlock;
    stream->read_cb = &Side::readDone;
    client_.reading = true;
  }
  upstream_.tunnel = this;
  upstream_.peer = &client_;
  upstream_.name = "upstream";
  uv_timer_init(rt_->loop(), &timer_);
  timer_.data = this;
  last_activity_ms_ = uv_now(rt_->loop());
  rt_->addSession(this);
  if (rt_->metrics != nullptr) {
    rt_->metrics->tunnelOpened();
  }
}

// ---------------------------------------------------------------------------
// The callback chain.

Tunnel::~Tunnel() {
  client_.setBulk(false);
  upstream_.setBulk(false);
}

// The next hop is the target itself (direct) or the parent proxy
// (upstream); only the parent's name and port come from the rule's URL.
void Tunnel::resolveNextHop() {
  if (decision_.action == rules::Action::kUpstream) {
    ProxyError error;
    if (!parentHop(decision_, &parent_, &proxy_authorization_, &error)) {
      fail(std::move(error));
      return;
    }
    via_parent_ = true;
  }
  const Authority& hop = via_parent_ ? parent_ : target_;
  phase_ = Phase::kResolving;
  resolve_id_ = rt_->resolver->resolve(hop.host, hop.port, [this](const ResolveResult& result) {
    resolve_id_ = 0;
    onResolved(result);
  });
}

void Tunnel::onResolved(const ResolveResult& result) {
  if (phase_ != Phase::kResolving || failing_) {
    return;
  }
  const rules::Config& config = config_->config();
  const Authority& hop = via_parent_ ? parent_ : target_;
  // The destination policy applies to the origin only, not to a parent.
  bool deny_private =
      !via_parent_ && config.access.deny_private_destinations && !decision_.allow_private;
  std::vector<sockaddr_storage> usable;
  ProxyError error;
  if (!usableDestinations(*rt_, result, deny_private, hop.host, nextHopName(), &usable, &error)) {
    fail(std::move(error));
    return;
  }
  phase_ = Phase::kConnecting;
  // The upstream socket reads from the start (EarlyRead): the relay and the
  // parent's answer both read it right after the connect.
  connect_id_ = rt_->connector->connect(
      std::move(usable), config.limits.connect_timeout,
      [this](ConnectResult&& result) {
        connect_id_ = 0;
        onConnected(std::move(result));
      },
      EarlyRead{&Side::allocBlock, &Side::readDone});
}

void Tunnel::onConnected(ConnectResult&& result) {
  if (phase_ != Phase::kConnecting || failing_) {
    if (result.tcp != nullptr) {
      closeAndDelete(asHandle(result.tcp));
    }
    return;
  }
  if (result.status != 0 || result.tcp == nullptr) {
    ProxyError e = connectFailure(result, nextHopName(), config_->config().limits.connect_timeout);
    if (via_parent_) {
      e.next_hop = rules::maskUrlCredentials(decision_.upstream);
    }
    fail(std::move(e));
    return;
  }
  record_.resolved = formatAddress(reinterpret_cast<const sockaddr*>(&result.peer));
  upstream_.tcp = result.tcp;
  upstream_.tcp->data = &upstream_;
  upstream_.reading = result.reading;
  // The client's socket got TCP_NODELAY when the Connection took it.
  uv_tcp_nodelay(upstream_.tcp, 1);
  if (via_parent_) {
    sendParentConnect();
  } else {
    establish(BufferRef(), nullptr, 0);
  }
}

// Our own CONNECT to the parent: same authority, the parent's credentials
// from the rule's URL, and our Via entry so that the parent can see a loop.
void Tunnel::sendParentConnect() {
  phase_ = Phase::kParentHandshake;
  HeaderList headers;
  headers.add("Host", target_.str());
  if (!proxy_authorization_.empty()) {
    headers.add("Proxy-Authorization", proxy_authorization_);
  }
  appendVia(&headers, 1, 1, via_token_);
  std::string bytes = serializeRequestHead("CONNECT", target_.str(), headers);
  if (submitWrite<&Side::onWritten, Side>(asStream(upstream_.tcp), &upstream_,
                                          makeWrite(std::move(bytes))) != 0) {
    ProxyError e;
    e.status = 502;
    e.reason = "Parent proxy failed";
    e.kind = ProxyErrorKind::kConnectionTerminated;
    e.details = "cannot send CONNECT to " + nextHopName();
    fail(std::move(e));
    return;
  }
  parent_reader_ =
      std::make_unique<ResponseReader>(this, config_->config().limits.max_header_bytes);
  startReading(upstream_);
  startTimer<&Tunnel::onTimer, Tunnel>(
      &timer_, static_cast<uint64_t>(config_->config().limits.response_timeout.count()));
}

void Tunnel::onParentData(ssize_t nread, BufferRef block) {
  if (nread == 0) {
    return;
  }
  if (nread < 0) {
    ProxyError e;
    e.status = 502;
    e.reason = "Parent proxy failed";
    e.kind = ProxyErrorKind::kConnectionTerminated;
    e.next_hop = rules::maskUrlCredentials(decision_.upstream);
    e.details = nextHopName() + " closed the connection before answering CONNECT";
    fail(std::move(e));
    return;
  }
  ResponseReader::Result result = parent_reader_->feed(block.data(), static_cast<size_t>(nread));
  switch (result.kind) {
    case ResponseReader::Result::Kind::kNeedMore:
      return;
    case ResponseReader::Result::Kind::kPaused:
      parentAnswered(block.data() + result.consumed, static_cast<size_t>(nread) - result.consumed,
                     std::move(block));
      return;
    case ResponseReader::Result::Kind::kError: {
      ProxyError e;
      e.status = 502;
      e.reason = "Bad answer from parent proxy";
      e.kind = result.head_too_large ? ProxyErrorKind::kHttpResponseHeaderSectionSize
                                     : ProxyErrorKind::kHttpProtocolError;
      e.next_hop = rules::maskUrlCredentials(decision_.upstream);
      e.details = nextHopName() + ": " + result.error;
      fail(std::move(e));
      return;
    }
  }
}

ResponseReader::HeadAction Tunnel::onResponseHead(const ResponseHead& head) {
  if (head.status >= 200) {
    parent_head_ = head;
  }
  // Whatever the status, only the head matters: after a 2xx the bytes are
  // the tunnel's, after a refusal we answer the client ourselves.
  return ResponseReader::HeadAction::kPause;
}

// The parent's head is complete. 2xx: the tunnel is open end to end and any
// bytes after the head already belong to the origin. Anything else is the
// parent's refusal, which the client gets with the parent's status (the
// reason phrase says it came from the parent), except 407.
void Tunnel::parentAnswered(const char* rest, size_t rest_len, BufferRef block) {
  int status = parent_head_.status;
  std::string parent = rules::maskUrlCredentials(decision_.upstream);
  AttemptRecord attempt;
  attempt.url = parent;
  attempt.status = status;
  attempt.next = status >= 200 && status < 300 ? "served" : "stopped";
  record_.attempts.push_back(std::move(attempt));
  if (status >= 200 && status < 300) {
    establish(std::move(block), rest, rest_len);
    return;
  }
  ProxyError e;
  e.received_status = status;
  e.next_hop = parent;
  std::string answered = nextHopName() + " answered " + std::to_string(status) + " " +
                         parent_head_.reason + " to CONNECT " + target_.str();
  if (status == 407) {
    // Never pass a parent's 407 on: the client would send credentials meant
    // for us, and we would forward the wrong ones.
    e.status = 502;
    e.reason = "Parent proxy refused credentials";
    e.kind = ProxyErrorKind::kHttpRequestDenied;
    e.details = answered + "; check the credentials of rule " + decision_.rule + " (" +
                decision_.source.str() + ")";
  } else {
    e.status = status;
    e.reason = "Parent proxy refused: " + std::to_string(status) + " " + parent_head_.reason;
    e.kind = status >= 500 ? ProxyErrorKind::kDestinationUnavailable
                           : ProxyErrorKind::kHttpRequestDenied;
    e.details = answered;
    if (const std::string* ps = parent_head_.headers.find("Proxy-Status")) {
      e.upstream_proxy_status = *ps;
    }
  }
  fail(std::move(e));
}

void Tunnel::establish(BufferRef block, const char* parent_rest, size_t parent_rest_len) {
  uv_timer_stop(&timer_);
  phase_ = Phase::kRelaying;
  record_.status = 200;
  parent_reader_.reset();
  if (writeNowOrQueue<&Side::onWritten, Side>(asStream(client_.tcp), &client_,
                                              makeWrite(std::string(kEstablished))) ==
      WriteOutcome::kFailed) {
    finish("client");
    return;
  }
  // Bytes that came with the parent's answer, and bytes the client sent
  // right after its CONNECT head (a pipelined TLS ClientHello), belong to
  // the tunnel.
  if (parent_rest_len > 0) {
    relay(upstream_, std::move(block), parent_rest, parent_rest_len);
    upstream_.bytes_read += parent_rest_len;
  }
  if (!leftover_.empty()) {
    client_.bytes_read += leftover_.size();
    if (writeNowOrQueue<&Side::onWritten, Side>(asStream(upstream_.tcp), &upstream_,
                                                makeWrite(std::move(leftover_))) ==
        WriteOutcome::kFailed) {
      finish("upstream");
      return;
    }
    leftover_.clear();
  }
  if (phase_ != Phase::kRelaying) {
    return;
  }
  if (early_client_end_ == UV_EOF) {
    onSideRead(client_, UV_EOF, BufferRef());  // a half-close: answer still flows
  } else if (early_client_end_ < 0) {
    finish("client");
    return;
  }
  if (phase_ != Phase::kRelaying) {
    return;
  }
  startReading(client_);
  startReading(upstream_);
  last_activity_ms_ = uv_now(rt_->loop());
  startTimer<&Tunnel::onTimer, Tunnel>(
      &timer_, static_cast<uint64_t>(config_->config().limits.idle_timeout.count()));
}

void Tunnel::Side::allocBlock(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  auto* side = static_cast<Side*>(handle->data);
  if (side == nullptr || side->yield_next_read) {  // nullptr: not ours yet (EarlyRead)
    if (side != nullptr) {
      side->yield_next_read = false;
    }
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  if (side->large_reads && side->tunnel->spliceReady(*side)) {
    BusyPoll::noteActivity();
    side->splice_next = true;
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  if (side->large_reads) {
    allocLargeReadBuffer(handle, suggested, buf);
  } else {
    allocReadBuffer(handle, suggested, buf);
  }
}

void Tunnel::Side::readDone(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  BufferRef block = BufferRef::fromReadBuf(buf);
  if (auto* side = static_cast<Side*>(stream->data)) {
    side->onRead(nread, std::move(block));
  }
}

void Tunnel::Side::onRead(ssize_t nread, BufferRef block) {
  if (nread == UV_ENOBUFS) {
    if (splice_next) {
      splice_next = false;
      tunnel->spliceFrom(*this);
    }
    return;  // else we declined a read (startReading); the data waits in the kernel
  }
  // A read of a standard block's worth or more is a bulk transfer, which
  // goes faster in large blocks; a smaller one goes back to standard blocks.
  // libuv reads again at once after a read that filled its block (up to 32
  // times); with large blocks that ends after a few MiB, but when the pool
  // has no large block to spare the burst would be 32 small reads, which
  // starves the other tunnels (BENCHMARKS.md): then we decline the next read
  // until the next poll.
  bool filled = block && nread == static_cast<ssize_t>(block.size());
  bool capped = large_reads && block && !block.large();
  yield_next_read = filled && capped;
  setBulk(nread >= static_cast<ssize_t>(BufferPool::kBlockSize));
  tunnel->onSideRead(*this, nread, std::move(block));
}

void Tunnel::onSideRead(Side& side, ssize_t nread, BufferRef block) {
  if (phase_ == Phase::kClosing || failing_) {
    return;
  }
  if (phase_ == Phase::kParentHandshake && &side == &upstream_) {
    onParentData(nread, std::move(block));
    return;
  }
  if (phase_ != Phase::kRelaying && &side == &client_) {
    onEarlyClientRead(nread, std::move(block));
    return;
  }
  if (phase_ != Phase::kRelaying || nread == 0) {
    return;
  }
  if (nread == UV_EOF) {
    // Half-close: this direction is over. The peer gets a FIN once the
    // bytes already queued for it are written (at once when none are;
    // otherwise uv_shutdown waits for them);
    // the other direction keeps flowing until it ends too.
    side.eof = true;
    side.setBulk(false);  // no longer one of the bulk directions
    stopReading(side);
    if (first_eof_ == nullptr) {
      first_eof_ = side.name;
    }
    Side& peer = *side.peer;
    if (!peer.shutdown_sent) {
      peer.shutdown_sent = true;
      if (std::optional<int> status = shutdownNow(asStream(peer.tcp))) {
        onSideShutdown(peer, *status);
        return;
      }
      peer.shutdown_req.data = &peer;
      int rc =
          uv_shutdown(&peer.shutdown_req, asStream(peer.tcp), [](uv_shutdown_t* req, int status) {
            auto* s = static_cast<Side*>(req->data);
            s->tunnel->onSideShutdown(*s, status);
          });
      if (rc != 0) {
        finish(side.name);
        return;
      }
    }
    maybeFinishHalfClose();
    return;
  }
  if (nread < 0) {
    finish(side.name);  // a reset: both directions end now
    return;
  }
  side.bytes_read += static_cast<uint64_t>(nread);
  last_activity_ms_ = uv_now(rt_->loop());
  relay(side, std::move(block), nullptr, static_cast<size_t>(nread));
}

// The client sent bytes (a pipelined ClientHello) or ended before the
// tunnel was up: the bytes wait with the leftover, within one head's worth;
// an end is acted on in establish().
void Tunnel::onEarlyClientRead(ssize_t nread, BufferRef block) {
  if (nread == 0) {
    return;
  }
  if (nread < 0) {
    early_client_end_ = nread;
    stopReading(client_);
    return;
  }
  leftover_.append(block.data(), static_cast<size_t>(nread));
  if (leftover_.size() >= config_->config().limits.max_header_bytes) {
    stopReading(client_);  // read again once established
  }
}

// Hands the bytes of one read to the other side, zero-copy (the write holds
// the block), and stops reading `from` when the other side's queue is full:
// the kernel's receive window then pushes back on the sender.
void Tunnel::relay(Side& from, BufferRef block, const char* at, size_t len) {
  Side& to = *from.peer;
  const char* data = at != nullptr ? at : block.data();
  WriteOutcome outcome = writeNowOrQueue<&Side::onWritten, Side>(
      asStream(to.tcp), &to, makeWrite(std::string(), std::move(block), data, len, std::string()));
  if (outcome == WriteOutcome::kFailed) {
    finish(to.name);
    return;
  }
  if (outcome == WriteOutcome::kQueued &&
      uv_stream_get_write_queue_size(asStream(to.tcp)) > kHighWater) {
    from.throttled = true;
    stopReading(from);
  }
}

// Splicing keeps the byte order only while nothing is queued for the peer
// (bytes pipelined after the CONNECT head, a rest of an earlier transfer).
// It pays when several bulk directions share the loop: their 1 MiB copies
// no longer crowd the CPU's caches (8 x 256 MiB: 0.64-0.77x direct copied,
// 0.99-1.09x spliced). A lone bulk direction copies one block that stays
// in cache, and went slightly faster copied (1 GiB: 1.03-1.08x against
// 0.92-0.98x spliced); docs/BENCHMARKS.md.
bool Tunnel::spliceReady(const Side& from) const {
  const Side& to = *from.peer;
  return splice_ && bulk_directions_ >= kMinBulkForSplice && phase_ == Phase::kRelaying &&
         !failing_ && !to.shutdown_sent &&
         uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(to.tcp)) == 0 &&
         SplicePipe::get() != nullptr;
}

// `from` is readable: up to a pipe's worth of its bytes go to the peer
// without a copy. The bytes the peer would not take now leave the pipe
// into pool blocks and are written like read bytes, which also throttles
// `from` (relay) until the peer catches up.
void Tunnel::spliceFrom(Side& from) {
  if (!spliceReady(from)) {
    return;  // the next read copies
  }
  Side& to = *from.peer;
  uv_os_fd_t from_fd = -1;
  uv_os_fd_t to_fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(from.tcp), &from_fd) != 0 ||
      uv_fileno(reinterpret_cast<uv_handle_t*>(to.tcp), &to_fd) != 0) {
    return;
  }
  SplicePipe* pipe = SplicePipe::get();
  SplicePipe::Transfer t = pipe->move(from_fd, to_fd);
  if (t.taken == UV_EAGAIN) {
    return;
  }
  if (t.taken <= 0) {
    onSideRead(from, t.taken == 0 ? UV_EOF : t.taken, BufferRef());
    return;
  }
  from.setBulk(t.taken >= static_cast<ssize_t>(BufferPool::kBlockSize));
  from.bytes_read += static_cast<uint64_t>(t.taken);
  last_activity_ms_ = uv_now(rt_->loop());
  if (t.to_error != 0) {
    finish(to.name);
    return;
  }
  if (rt_->metrics != nullptr) {
    rt_->metrics->addSplicedBytes(static_cast<uint64_t>(t.taken) - t.left);
  }
  // Every byte leaves the pipe, even if the tunnel ends on the way: the
  // next transfer, maybe another tunnel's, needs it empty.
  for (size_t left = t.left; left > 0;) {
    BufferRef block = BufferRef::make(left > BufferPool::kBlockSize);
    size_t n = pipe->readLeft(block.data(), std::min(left, block.size()));
    if (n == 0) {
      break;
    }
    left -= n;
    if (phase_ == Phase::kRelaying) {
      relay(from, std::move(block), nullptr, n);
    }
  }
}

void Tunnel::Side::onWritten(int status, size_t) {
  tunnel->onSideWritten(*this, status);
}

// A write to `side` completed: below kLowWater the side feeding it may read
// again. The gap between the two marks keeps us from toggling reads on and
// off for every block.
void Tunnel::onSideWritten(Side& side, int status) {
  if (phase_ == Phase::kClosing) {
    return;
  }
  if (failing_) {
    if (&side == &client_) {
      finish("proxy");  // our error answer is out
    }
    return;
  }
  if (status < 0) {
    if (phase_ == Phase::kParentHandshake) {
      ProxyError e;
      e.status = 502;
      e.reason = "Parent proxy failed";
      e.kind = ProxyErrorKind::kConnectionTerminated;
      e.next_hop = rules::maskUrlCredentials(decision_.upstream);
      e.details = "cannot send CONNECT to " + nextHopName() + ": " + uv_strerror(status);
      fail(std::move(e));
      return;
    }
    finish(side.name);
    return;
  }
  last_activity_ms_ = uv_now(rt_->loop());
  Side& from = *side.peer;
  if (from.throttled && uv_stream_get_write_queue_size(asStream(side.tcp)) <= kLowWater) {
    from.throttled = false;
    startReading(from);
  }
}

void Tunnel::onSideShutdown(Side& side, int status) {
  if (phase_ == Phase::kClosing) {
    return;
  }
  side.shutdown_done = true;
  if (status < 0) {
    finish(side.name);
    return;
  }
  maybeFinishHalfClose();
}

void Tunnel::maybeFinishHalfClose() {
  if (client_.eof && upstream_.eof && client_.shutdown_done && upstream_.shutdown_done) {
    finish(first_eof_ != nullptr ? first_eof_ : "client");
  }
}

// One timer per tunnel, re-armed lazily: reads only record the time, and
// when the timer fires it either sleeps again for the remainder or ends the
// tunnel. That keeps the per-read cost to one store.
void Tunnel::onTimer() {
  if (phase_ == Phase::kClosing) {
    return;
  }
  const rules::LimitsConfig& limits = config_->config().limits;
  if (failing_) {
    finish("proxy");  // the client did not take our error answer in time
    return;
  }
  if (phase_ == Phase::kParentHandshake) {
    ProxyError e;
    e.status = 504;
    e.reason = "Parent proxy timeout";
    e.kind = ProxyErrorKind::kConnectionReadTimeout;
    e.next_hop = rules::maskUrlCredentials(decision_.upstream);
    e.details = nextHopName() + " did not answer CONNECT within limits.response_timeout (" +
                durationText(limits.response_timeout) + ")";
    fail(std::move(e));
    return;
  }
  if (phase_ == Phase::kRelaying) {
    uint64_t now = uv_now(rt_->loop());
    auto idle = static_cast<uint64_t>(limits.idle_timeout.count());
    if (now - last_activity_ms_ < idle) {
      startTimer<&Tunnel::onTimer, Tunnel>(&timer_, idle - (now - last_activity_ms_));
      return;
    }
    finish("proxy");
  }
}

// ---------------------------------------------------------------------------
// Failure, end and close.

// Before the 200 the client still speaks HTTP: it gets an error answer
// through recordError() (which also fills the record), and the tunnel ends
// once that answer is written or the idle timer gives up on the client.
void Tunnel::fail(ProxyError error) {
  if (phase_ == Phase::kClosing || failing_) {
    return;
  }
  failing_ = true;
  if (resolve_id_ != 0) {
    rt_->resolver->cancel(resolve_id_);
    resolve_id_ = 0;
  }
  if (connect_id_ != 0) {
    rt_->connector->cancel(connect_id_);
    connect_id_ = 0;
  }
  if (upstream_.tcp != nullptr) {
    stopReading(upstream_);
  }
  std::string bytes = recordError(error, /*close=*/true, /*head_only=*/false, &record_);
  record_.bytes_out = bytes.size();
  record_.bytes_in = client_.bytes_read;
  logOnce("proxy");
  if (submitWrite<&Side::onWritten, Side>(asStream(client_.tcp), &client_,
                                          makeWrite(std::move(bytes))) != 0) {
    finish("proxy");
    return;
  }
  startTimer<&Tunnel::onTimer, Tunnel>(
      &timer_, static_cast<uint64_t>(config_->config().limits.idle_timeout.count()));
}

void Tunnel::abort() {
  finish("proxy");
}

void Tunnel::finish(const char* closed_by) {
  if (phase_ == Phase::kClosing) {
    return;
  }
  phase_ = Phase::kClosing;
  if (!failing_) {
    record_.bytes_in = client_.bytes_read;
    record_.bytes_out = upstream_.bytes_read;
  }
  logOnce(closed_by);
  dispose();
}

void Tunnel::logOnce(const char* closed_by) {
  if (logged_) {
    return;
  }
  logged_ = true;
  record_.duration_ms = uv_now(rt_->loop()) - start_ms_;
  record_.closed_by = closed_by;
  rt_->writeDecision(record_);
}

// Closes every handle; the last close callback deletes the tunnel. Pending
// writes are cancelled by uv_close and their callbacks run before the close
// callbacks, so they still find this object alive.
void Tunnel::dispose() {
  if (disposed_) {
    return;
  }
  disposed_ = true;
  if (resolve_id_ != 0) {
    rt_->resolver->cancel(resolve_id_);
    resolve_id_ = 0;
  }
  if (connect_id_ != 0) {
    rt_->connector->cancel(connect_id_);
    connect_id_ = 0;
  }
  for (Side* side : {&client_, &upstream_}) {
    if (side->tcp != nullptr) {
      side->reading = false;
      ++pending_closes_;
      closeHandle<&Side::onClosed, Side>(asHandle(side->tcp));
    }
  }
  ++pending_closes_;
  closeHandle<&Tunnel::onTimerClosed, Tunnel>(asHandle(&timer_));
}

void Tunnel::Side::onClosed(uv_handle_t*) {
  delete tcp;
  tcp = nullptr;
  tunnel->onHandleClosed();
}

void Tunnel::onTimerClosed(uv_handle_t*) {
  onHandleClosed();
}

void Tunnel::onHandleClosed() {
  if (--pending_closes_ > 0) {
    return;
  }
  rt_->removeClientConnection(client_ip_);
  if (rt_->metrics != nullptr) {
    rt_->metrics->tunnelClosed();
  }
  rt_->removeSession(this);
  delete this;
}

// ---------------------------------------------------------------------------
// Helpers.

void Tunnel::startReading(Side& side) {
  if (side.reading || side.throttled || side.tcp == nullptr || side.eof) {
    return;
  }
  // After a read that filled its block, libuv 1.44 reads again at once (up
  // to 32 times). With 64 KiB blocks, draining one socket in such a burst
  // measured 0.8x of a one-read-per-poll relay on parallel downloads
  // (BENCHMARKS.md), so when only standard blocks are to be had we decline
  // the next read (see Side::onRead): an empty buffer from the alloc
  // callback makes libuv stop for this round (the read callback gets
  // UV_ENOBUFS); level-triggered epoll reports the socket again at the next
  // poll, without any epoll_ctl.
  side.yield_next_read = false;
  if (uv_read_start(asStream(side.tcp), &Side::allocBlock, &Side::readDone) == 0) {
    side.reading = true;
  }
}

void Tunnel::stopReading(Side& side) {
  if (side.reading && side.tcp != nullptr) {
    uv_read_stop(asStream(side.tcp));
  }
  side.reading = false;
}

std::string Tunnel::nextHopName() const {
  if (via_parent_ || decision_.action == rules::Action::kUpstream) {
    return "parent proxy " + rules::maskUrlCredentials(decision_.upstream);
  }
  return target_.str();
}

}  // namespace switchyard
