// One forwarded request, in callback order.
//
// Framing is redone on each side rather than copied, because the two sides
// may disagree on what they can do: a chunked body goes to the next hop
// re-chunked from llhttp's body callbacks (so trailers and chunk extensions
// are dropped), a Content-Length body keeps its length, and a response whose
// end is the connection's close reaches an HTTP/1.1 client chunked, so that
// the client connection survives it. HTTP/1.0 clients get close-delimited
// bodies instead.
//
// Response bodies are not copied: each piece llhttp reports points into the
// read block, and the write to the client holds a reference to that block.
// Request bodies are copied into their write (uploads are rarer and the
// chunk framing has to be built anyway).
#include "daemon/forward.h"

#include <spdlog/spdlog.h>

#include "daemon/connection.h"
#include "daemon/destination.h"
#include "daemon/net_address.h"
#include "rules/config_loader.h"

namespace switchyard {

namespace {

std::string hexSize(size_t n) {
  char buf[20];
  int len = std::snprintf(buf, sizeof(buf), "%zx", n);
  return std::string(buf, static_cast<size_t>(len));
}

bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

// True if a Transfer-Encoding value names only "chunked": other codings
// (gzip, deflate) would be lost when we re-frame the body.
bool onlyChunked(const std::string& value) {
  std::string v = toLower(value);
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    std::string item =
        v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty() && item != "chunked") {
      return false;
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  return true;
}

}  // namespace

ForwardExchange* ForwardExchange::create(Params&& params) {
  return new ForwardExchange(std::move(params));
}

ForwardExchange::ForwardExchange(Params&& p)
    : rt_(p.rt),
      conn_(p.conn),
      config_(std::move(p.config)),
      head_(std::move(p.head)),
      url_(std::move(p.url)),
      decision_(std::move(p.decision)),
      record_(std::move(p.record)),
      start_ms_(p.start_ms),
      via_token_(std::move(p.via_token)),
      reader_(this, config_->config().limits.max_header_bytes),
      request_chunked_(p.request_chunked),
      request_has_body_(p.request_has_body),
      client_keep_alive_(p.client_keep_alive) {
  uv_timer_init(rt_->loop(), &timer_);
  timer_.data = this;
  head_request_ = head_.method == "HEAD";
  last_activity_ms_ = uv_now(rt_->loop());
}

// ---------------------------------------------------------------------------
// The callback chain.

// Works out the next hop (the origin, or the parent from the rule's URL),
// then takes an idle connection to it from the pool or opens a new one.
void ForwardExchange::begin() {
  if (decision_.action == rules::Action::kUpstream) {
    ProxyError error;
    if (!parentHop(decision_, &next_hop_, &proxy_authorization_, &error)) {
      fail(std::move(error));
      return;
    }
    via_parent_ = true;
    pool_key_ = UpstreamPool::parentKey(next_hop_);
  } else {
    next_hop_ = url_.authority;
    pool_key_ = UpstreamPool::directKey(next_hop_);
  }
  if (rt_->pool != nullptr) {
    if (uv_tcp_t* tcp = rt_->pool->take(pool_key_, this, &upstream_peer_)) {
      // Still reading: the pool hands its reads over to us.
      upstream_reading_ = true;
      bool known = upstream_peer_.ss_family != AF_UNSPEC;
      const auto* peer_addr = reinterpret_cast<const sockaddr*>(&upstream_peer_);
      // The pooled connection was opened for an earlier request, perhaps
      // under a rule with allow_private or an older config: this request's
      // destination policy is applied to its address again. A refused one
      // is dropped, and the fresh resolution below answers the 403.
      if (known && !via_parent_ && config_->config().access.deny_private_destinations &&
          !decision_.allow_private && isPrivateDestination(peer_addr)) {
        upstream_reading_ = false;
        closeAndDelete(asHandle(tcp));
        connectNextHop();
        return;
      }
      reused_ = true;
      attempted_ = true;
      attachUpstream(tcp);
      if (known) {
        record_.resolved = formatAddress(peer_addr);
      }
      sendHead();
      return;
    }
  }
  connectNextHop();
}

void ForwardExchange::connectNextHop() {
  phase_ = Phase::kResolving;
  attempted_ = true;
  resolve_id_ =
      rt_->resolver->resolve(next_hop_.host, next_hop_.port, [this](const ResolveResult& result) {
        resolve_id_ = 0;
        onResolved(result);
      });
}

void ForwardExchange::onResolved(const ResolveResult& result) {
  if (phase_ == Phase::kDone) {
    return;
  }
  const rules::Config& config = config_->config();
  // The destination policy applies to the origin only, not to a parent.
  bool deny_private =
      !via_parent_ && config.access.deny_private_destinations && !decision_.allow_private;
  std::vector<sockaddr_storage> usable;
  ProxyError error;
  if (!usableDestinations(*rt_, result, deny_private, next_hop_.host, nextHopName(), &usable,
                          &error)) {
    // A destination our own policy refuses was never asked anything.
    attempted_ = error.kind != ProxyErrorKind::kDestinationIpProhibited;
    fail(std::move(error));
    return;
  }
  phase_ = Phase::kConnecting;
  connect_id_ = rt_->connector->connect(std::move(usable), config.limits.connect_timeout,
                                        [this](ConnectResult&& result) {
                                          connect_id_ = 0;
                                          onConnected(std::move(result));
                                        });
}

void ForwardExchange::onConnected(ConnectResult&& result) {
  if (phase_ == Phase::kDone) {
    if (result.tcp != nullptr) {
      closeAndDelete(asHandle(result.tcp));
    }
    return;
  }
  if (result.status != 0 || result.tcp == nullptr) {
    ProxyError e = connectFailure(result, nextHopName(), config_->config().limits.connect_timeout);
    e.next_hop = via_parent_ ? rules::maskUrlCredentials(decision_.upstream) : next_hop_.str();
    fail(std::move(e));
    return;
  }
  upstream_peer_ = result.peer;
  record_.resolved = formatAddress(reinterpret_cast<const sockaddr*>(&result.peer));
  // Once per connection: a pooled one keeps it for every later request.
  uv_tcp_nodelay(result.tcp, 1);
  attachUpstream(result.tcp);
  sendHead();
}

void ForwardExchange::attachUpstream(uv_tcp_t* tcp) {
  upstream_ = tcp;
  setUpstreamReader(upstream_, this);
  phase_ = Phase::kExchanging;
}

// The request head as the next hop must see it: origin-form for an origin,
// absolute-form plus Proxy-Authorization for a parent; the client's
// hop-by-hop fields gone, our Via added. The body follows as the Connection
// feeds it (resumeRequestBody), never before the head.
void ForwardExchange::sendHead() {
  HeaderList headers;
  // Host first, from the absolute URL (RFC 9112 3.2.2: a proxy replaces the
  // Host field with the target URI's authority).
  headers.add("Host", url_.authority.hostHeader(80));
  HeaderList rest = head_.headers;
  stripHopByHop(&rest);
  for (const HeaderField& f : rest.fields()) {
    if (!equalsIgnoreCase(f.name, "Host")) {
      headers.add(f.name, f.value);
    }
  }
  appendVia(&headers, head_.http_major, head_.http_minor, via_token_);
  if (request_chunked_) {
    headers.add("Transfer-Encoding", "chunked");
  }
  if (!proxy_authorization_.empty()) {
    headers.add("Proxy-Authorization", proxy_authorization_);
  }
  std::string target = via_parent_ ? url_.str() : url_.path;
  request_head_bytes_ = serializeRequestHead(head_.method, target, headers);
  head_sent_ = true;
  writeUpstream(request_head_bytes_);
  if (!upstream_reading_) {
    if (startUpstreamRead(upstream_) != 0) {
      deferFailure("cannot read from the connection");
      return;
    }
    upstream_reading_ = true;
  }
  armTimer(request_complete_ ? TimerMode::kResponse : TimerMode::kIdle);
  if (!body_resumed_ && conn_ != nullptr) {
    body_resumed_ = true;
    // May run onRequestBody / onRequestComplete before it returns.
    conn_->resumeRequestBody();
  }
}

void ForwardExchange::onRequestBody(const char* at, size_t len) {
  if (phase_ == Phase::kDone || upstream_ == nullptr) {
    return;
  }
  record_.bytes_in += len;
  request_body_seen_ = true;
  last_activity_ms_ = uv_now(rt_->loop());
  std::string bytes;
  if (request_chunked_) {
    bytes.reserve(len + 16);
    bytes = hexSize(len) + "\r\n";
    bytes.append(at, len);
    bytes += "\r\n";
  } else {
    bytes.assign(at, len);
  }
  writeUpstream(std::move(bytes));
  if (!client_throttled_ && conn_ != nullptr &&
      uv_stream_get_write_queue_size(asStream(upstream_)) > kHighWater) {
    client_throttled_ = true;
    conn_->pauseClientReads();
  }
}

void ForwardExchange::onRequestComplete() {
  if (phase_ == Phase::kDone) {
    return;
  }
  if (request_chunked_) {
    writeUpstream("0\r\n\r\n");
  }
  request_complete_ = true;
  if (response_complete_) {
    finish();
    return;
  }
  if (!reader_.started()) {
    armTimer(TimerMode::kResponse);
  }
}

void ForwardExchange::onRequestBodyError(const std::string& why) {
  if (phase_ == Phase::kDone) {
    return;
  }
  ProxyError e;
  e.status = 400;
  e.reason = "Bad Request";
  e.kind = ProxyErrorKind::kHttpRequestError;
  e.details = why;
  fail(std::move(e));
}

void ForwardExchange::writeUpstream(std::string bytes) {
  if (upstream_ == nullptr) {
    return;
  }
  WriteRequest* w = makeWrite(std::move(bytes));
  if (writeNow(asStream(upstream_), w)) {
    delete w;
    last_activity_ms_ = uv_now(rt_->loop());
    return;
  }
  ++upstream_writes_pending_;
  int rc = submitWrite<&ForwardExchange::onUpstreamWritten, ForwardExchange>(asStream(upstream_),
                                                                             this, w);
  if (rc != 0) {
    --upstream_writes_pending_;
    deferFailure(std::string("write failed: ") + uv_strerror(rc));
  }
}

void ForwardExchange::onUpstreamWritten(int status, size_t) {
  --upstream_writes_pending_;
  if (pool_when_written_) {
    if (upstream_writes_pending_ == 0) {
      pool_when_written_ = false;
      if (status == 0) {
        releaseUpstream();
      }
      dispose();
    }
    return;
  }
  if (phase_ == Phase::kDone) {
    return;
  }
  if (status < 0) {
    upstreamBroke(std::string("write failed: ") + uv_strerror(status));
    return;
  }
  last_activity_ms_ = uv_now(rt_->loop());
  if (client_throttled_ && conn_ != nullptr &&
      uv_stream_get_write_queue_size(asStream(upstream_)) <= kLowWater) {
    client_throttled_ = false;
    conn_->resumeClientReads();
  }
}

void ForwardExchange::onUpstreamRead(ssize_t nread, BufferRef block) {
  if (phase_ == Phase::kDone || nread == 0) {
    return;
  }
  if (nread < 0) {
    if (reader_.started()) {
      ResponseReader::Result result = reader_.finish();
      flushClientOutput();
      if (result.kind == ResponseReader::Result::Kind::kPaused && response_complete_) {
        upstream_eof_ = true;
        finish();
        return;
      }
      upstreamBroke(nread == UV_EOF ? "closed the connection in the middle of the response"
                                    : std::string("read failed: ") + uv_strerror(nread));
      return;
    }
    upstreamBroke(nread == UV_EOF ? "closed the connection without responding"
                                  : std::string("read failed: ") + uv_strerror(nread));
    return;
  }
  last_activity_ms_ = uv_now(rt_->loop());
  if (timer_mode_ == TimerMode::kResponse) {
    armTimer(TimerMode::kIdle);
  }
  current_block_ = std::move(block);
  ResponseReader::Result result = reader_.feed(current_block_.data(), static_cast<size_t>(nread));
  flushClientOutput();
  current_block_ = BufferRef();  // the client writes hold their own references
  if (phase_ == Phase::kDone) {
    return;
  }
  if (pending_failure_) {
    ProxyError e = std::move(*pending_failure_);
    pending_failure_.reset();
    fail(std::move(e));
    return;
  }
  switch (result.kind) {
    case ResponseReader::Result::Kind::kNeedMore:
      return;
    case ResponseReader::Result::Kind::kPaused:
      if (response_complete_) {
        surplus_ = result.consumed < static_cast<size_t>(nread);
        finish();
      }
      return;
    case ResponseReader::Result::Kind::kError:
      if (response_started_) {
        abortMidResponse("upstream", "malformed response body: " + result.error);
        return;
      }
      ProxyError e;
      e.status = 502;
      e.reason = "Bad response";
      e.kind = result.head_too_large ? ProxyErrorKind::kHttpResponseHeaderSectionSize
                                     : ProxyErrorKind::kHttpProtocolError;
      e.details = nextHopName() + ": " + result.error;
      fail(std::move(e));
      return;
  }
}

// The response head, rewritten for the client. Failures found here (a
// parent's 407, a transfer-coding we cannot re-frame) are only noted: we are
// inside llhttp, so the reader is paused and onUpstreamRead acts on them.
ResponseReader::HeadAction ForwardExchange::onResponseHead(const ResponseHead& head) {
  bool client11 = head_.http_major == 1 && head_.http_minor >= 1;
  if (head.status < 200) {
    // Interim responses (100 Continue, 103 Early Hints) are passed to
    // HTTP/1.1 clients; HTTP/1.0 clients do not know them.
    if (++interim_responses_ > kMaxInterimResponses) {
      // Each interim head restarts the idle timer: without a bound an
      // origin could keep a response open forever.
      ProxyError e;
      e.status = 502;
      e.reason = "Too many interim responses";
      e.kind = ProxyErrorKind::kHttpProtocolError;
      e.received_status = head.status;
      e.details = nextHopName() + " sent more than " + std::to_string(kMaxInterimResponses) +
                  " interim (1xx) responses";
      pending_failure_ = std::move(e);
      return ResponseReader::HeadAction::kPause;
    }
    if (client11 && conn_ != nullptr) {
      HeaderList headers = head.headers;
      stripHopByHop(&headers);
      std::string bytes = serializeResponseHead(
          head.status, head.reason.empty() ? reasonPhrase(head.status) : head.reason, headers);
      record_.bytes_out += bytes.size();
      queueClientText(std::move(bytes));
    }
    return ResponseReader::HeadAction::kBody;
  }
  if (via_parent_ && head.status == 407) {
    // Never pass a parent's 407 on: the client would answer with its own
    // credentials for us, not the parent's.
    ProxyError e;
    e.status = 502;
    e.reason = "Parent proxy refused credentials";
    e.kind = ProxyErrorKind::kHttpRequestDenied;
    e.received_status = 407;
    e.next_hop = rules::maskUrlCredentials(decision_.upstream);
    e.details = nextHopName() +
                " answered 407 Proxy Authentication Required; check the "
                "credentials of rule " +
                decision_.rule + " (" + decision_.source.str() + ")";
    pending_failure_ = std::move(e);
    return ResponseReader::HeadAction::kPause;
  }
  if (const std::string* te = head.headers.find("Transfer-Encoding")) {
    if (!onlyChunked(*te)) {
      ProxyError e;
      e.status = 502;
      e.reason = "Bad response";
      e.kind = ProxyErrorKind::kHttpProtocolError;
      e.details = nextHopName() + " used Transfer-Encoding \"" + *te +
                  "\", which switchyard does not re-frame";
      pending_failure_ = std::move(e);
      return ResponseReader::HeadAction::kPause;
    }
  }
  HeaderList headers = head.headers;
  stripHopByHop(&headers);
  appendVia(&headers, head.http_major, head.http_minor, via_token_);
  bool no_body = head_request_ || head.status == 204 || head.status == 304;
  if (head.status == 204) {
    headers.remove("Content-Length");  // RFC 9110 8.6: never in a 204
  }
  bool close_delimited = false;
  if (!no_body && (reader_.chunked() || reader_.bodyUntilEof())) {
    if (client11) {
      headers.add("Transfer-Encoding", "chunked");
      chunk_to_client_ = true;
    } else {
      close_delimited = true;  // an HTTP/1.0 client reads until we close
    }
  }
  bool keep = client_keep_alive_ && !close_delimited && conn_ != nullptr && !conn_->draining();
  if (!keep) {
    headers.add("Connection", "close");
  } else if (!client11) {
    headers.add("Connection", "keep-alive");
  }
  client_keep_alive_ = keep;
  record_.status = head.status;
  response_started_ = true;
  std::string bytes = serializeResponseHead(
      head.status, head.reason.empty() ? reasonPhrase(head.status) : head.reason, headers);
  record_.bytes_out += bytes.size();
  queueClientText(std::move(bytes));
  return no_body ? ResponseReader::HeadAction::kNoBody : ResponseReader::HeadAction::kBody;
}

void ForwardExchange::onResponseBody(const char* at, size_t len) {
  if (conn_ == nullptr || len == 0) {
    return;
  }
  std::string prefix = chunk_to_client_ ? hexSize(len) + "\r\n" : std::string();
  std::string suffix = chunk_to_client_ ? "\r\n" : std::string();
  record_.bytes_out += prefix.size() + len + suffix.size();
  queueClientBody(std::move(prefix), at, len, std::move(suffix));
}

void ForwardExchange::queueClientText(std::string text) {
  if (conn_ == nullptr) {
    return;
  }
  if (client_out_ == nullptr) {
    client_out_ = makeWrite(std::move(text));
  } else if (client_out_->middle.len == 0) {
    client_out_->head += text;
  } else {
    client_out_->tail += text;
  }
}

// A write holds one piece of a read block: a second piece in the same read
// (several chunks) sends what was gathered first.
void ForwardExchange::queueClientBody(std::string prefix, const char* at, size_t len,
                                      std::string suffix) {
  if (client_out_ != nullptr && client_out_->middle.len > 0) {
    flushClientOutput();
  }
  if (conn_ == nullptr) {
    return;
  }
  if (client_out_ == nullptr) {
    client_out_ = makeWrite(std::string());
  }
  client_out_->head += prefix;
  client_out_->block = current_block_;
  client_out_->middle = uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(len));
  client_out_->tail = std::move(suffix);
}

void ForwardExchange::flushClientOutput() {
  WriteRequest* w = client_out_;
  client_out_ = nullptr;
  if (w == nullptr) {
    return;
  }
  if (conn_ == nullptr) {
    delete w;
    return;
  }
  conn_->writeToClientNow(w);
  throttleUpstreamIfBehind();
}

// Backpressure: the client's pending writes passed the high-water mark, so
// stop reading the upstream until onClientWritten() sees them drain.
void ForwardExchange::throttleUpstreamIfBehind() {
  if (!upstream_throttled_ && conn_ != nullptr && upstream_ != nullptr &&
      conn_->clientWriteQueueSize() > kHighWater) {
    upstream_throttled_ = true;
    upstream_reading_ = false;
    uv_read_stop(asStream(upstream_));
  }
}

void ForwardExchange::onResponseComplete() {
  response_complete_ = true;
  if (chunk_to_client_ && conn_ != nullptr) {
    record_.bytes_out += 5;
    queueClientText("0\r\n\r\n");
  }
}

void ForwardExchange::onClientWritten() {
  last_activity_ms_ = uv_now(rt_->loop());
  if (upstream_throttled_ && conn_ != nullptr && upstream_ != nullptr &&
      phase_ == Phase::kExchanging && conn_->clientWriteQueueSize() <= kLowWater) {
    upstream_throttled_ = false;
    upstream_reading_ = startUpstreamRead(upstream_) == 0;
  }
}

// ---------------------------------------------------------------------------
// Timers and failures.

void ForwardExchange::armTimer(TimerMode mode) {
  timer_mode_ = mode;
  const rules::LimitsConfig& limits = config_->config().limits;
  uint64_t ms = 0;
  switch (mode) {
    case TimerMode::kResponse:
      ms = static_cast<uint64_t>(limits.response_timeout.count());
      break;
    case TimerMode::kIdle:
      ms = static_cast<uint64_t>(limits.idle_timeout.count());
      break;
    case TimerMode::kDeferredFailure:
    case TimerMode::kNone:
      ms = 0;
      break;
  }
  startTimer<&ForwardExchange::onTimer, ForwardExchange>(&timer_, ms);
}

void ForwardExchange::deferFailure(std::string why) {
  if (deferred_failure_.empty()) {
    deferred_failure_ = std::move(why);
  }
  armTimer(TimerMode::kDeferredFailure);
}

void ForwardExchange::onTimer() {
  if (phase_ == Phase::kDone) {
    return;
  }
  const rules::LimitsConfig& limits = config_->config().limits;
  switch (timer_mode_) {
    case TimerMode::kResponse: {
      ProxyError e;
      e.status = 504;
      e.reason = "Response timeout";
      e.kind = ProxyErrorKind::kConnectionReadTimeout;
      e.details = nextHopName() + " sent no response within limits.response_timeout (" +
                  durationText(limits.response_timeout) + ")";
      fail(std::move(e));
      return;
    }
    case TimerMode::kIdle: {
      uint64_t now = uv_now(rt_->loop());
      auto idle = static_cast<uint64_t>(limits.idle_timeout.count());
      if (now - last_activity_ms_ < idle) {
        startTimer<&ForwardExchange::onTimer, ForwardExchange>(&timer_,
                                                               idle - (now - last_activity_ms_));
        return;
      }
      if (response_started_) {
        abortMidResponse("proxy", "no data within limits.idle_timeout (" +
                                      durationText(limits.idle_timeout) + ")");
        return;
      }
      if (!request_complete_ && !client_throttled_) {
        // We are waiting for the client's body, not for the next hop: the
        // client is the one that stalled (RFC 9110 15.5.9).
        ProxyError e;
        e.status = 408;
        e.reason = "Request Timeout";
        e.kind = ProxyErrorKind::kProxyInternalResponse;
        e.details =
            "the request body stalled: nothing arrived from the client for "
            "limits.idle_timeout (" +
            durationText(limits.idle_timeout) + ")";
        fail(std::move(e));
        return;
      }
      ProxyError e;
      e.status = 504;
      e.reason = "Idle timeout";
      e.kind = ProxyErrorKind::kConnectionReadTimeout;
      e.details = "nothing moved for limits.idle_timeout (" + durationText(limits.idle_timeout) +
                  ") while talking to " + nextHopName();
      fail(std::move(e));
      return;
    }
    case TimerMode::kDeferredFailure:
      upstreamBroke(deferred_failure_);
      return;
    case TimerMode::kNone:
      return;
  }
}

bool ForwardExchange::retryable() const {
  // Only a request that can be sent again unchanged: no body consumed from
  // the client, an idempotent method, and a pooled connection that died
  // before saying anything (the origin closed it while it was idle).
  return reused_ && !retried_ && !request_has_body_ && !request_body_seen_ &&
         upstream_writes_pending_ == 0 && !reader_.started() && idempotent(head_.method);
}

// The next hop failed. Before any response byte reached the client this is
// an error answer (or, for a stale pooled connection, one silent retry on a
// fresh one); after that the client's response can only be cut short.
void ForwardExchange::upstreamBroke(const std::string& why) {
  if (phase_ == Phase::kDone) {
    return;
  }
  if (!response_started_ && retryable()) {
    // The dead pooled connection is an attempt of its own in the log, so a
    // person reading it sees why the request took a second connection.
    AttemptRecord stale;
    stale.url = attemptUrl();
    stale.error = "reused idle connection " + why;
    stale.next = "fell through: retried on a new connection";
    record_.attempts.push_back(std::move(stale));
    retried_ = true;
    reused_ = false;
    uv_timer_stop(&timer_);
    timer_mode_ = TimerMode::kNone;
    upstream_->data = nullptr;
    closeAndDelete(asHandle(upstream_));
    upstream_ = nullptr;
    upstream_reading_ = false;
    reader_.reset();
    connectNextHop();
    return;
  }
  if (response_started_) {
    abortMidResponse("upstream", why);
    return;
  }
  ProxyError e;
  e.status = 502;
  e.reason = "Upstream connection failed";
  e.kind = ProxyErrorKind::kConnectionTerminated;
  e.details = nextHopName() + " " + why;
  fail(std::move(e));
}

void ForwardExchange::fail(ProxyError error) {
  if (phase_ == Phase::kDone) {
    return;
  }
  if (response_started_) {
    abortMidResponse("proxy", error.details);
    return;
  }
  phase_ = Phase::kDone;
  if (via_parent_ && error.next_hop.empty()) {
    error.next_hop = rules::maskUrlCredentials(decision_.upstream);
  }
  std::string bytes = recordError(error, /*close=*/true, head_request_, &record_);
  record_.bytes_out += bytes.size();
  attempt_error_ = error.details;
  logOnce("proxy");
  Connection* conn = conn_;
  conn_ = nullptr;
  if (conn != nullptr) {
    conn->writeToClient(makeWrite(std::move(bytes)));
    conn->exchangeFinished(/*keep_client=*/false);
  }
  dispose();
}

void ForwardExchange::abortMidResponse(const char* closed_by, const std::string& why) {
  if (phase_ == Phase::kDone) {
    return;
  }
  phase_ = Phase::kDone;
  attempt_error_ = "response cut short after " + std::to_string(record_.bytes_out) +
                   " bytes to the client: " + why;
  logOnce(closed_by);
  Connection* conn = conn_;
  conn_ = nullptr;
  if (conn != nullptr) {
    conn->abortClient();
  }
  dispose();
}

// The response is complete. The upstream connection goes back to the pool
// when both messages ended cleanly and the next hop allows it; the client
// connection continues when its request allowed it and was fully read.
void ForwardExchange::finish() {
  if (phase_ == Phase::kDone) {
    return;
  }
  phase_ = Phase::kDone;
  if (!request_complete_) {
    // The origin answered before the request body ended (e.g. 413). The
    // rest of the body can be neither forwarded nor skipped safely, so both
    // connections end after this answer.
    client_keep_alive_ = false;
  }
  bool reusable = request_complete_ && reader_.keepAlive() && !surplus_ && !upstream_eof_ &&
                  rt_->pool != nullptr && upstream_ != nullptr;
  logOnce("upstream");
  uv_timer_stop(&timer_);
  bool pool_now = reusable && upstream_writes_pending_ == 0;
  if (upstream_ != nullptr && upstream_reading_ && !pool_now) {
    // A connection going straight to the pool stays read: the pool takes
    // over its reads without a restart.
    uv_read_stop(asStream(upstream_));
    upstream_reading_ = false;
  }
  // Pool first: a pipelined next request of this very client may want it.
  bool keep_for_pool = false;
  if (reusable) {
    if (pool_now) {
      releaseUpstream();
    } else {
      keep_for_pool = true;
      pool_when_written_ = true;
    }
  }
  Connection* conn = conn_;
  conn_ = nullptr;
  if (conn != nullptr) {
    conn->exchangeFinished(client_keep_alive_);
  }
  if (!keep_for_pool) {
    dispose();
  }
}

void ForwardExchange::detach(const char* closed_by) {
  conn_ = nullptr;
  if (phase_ == Phase::kDone) {
    return;
  }
  phase_ = Phase::kDone;
  logOnce(closed_by);
  dispose();
}

void ForwardExchange::releaseUpstream() {
  upstream_->data = nullptr;
  rt_->pool->put(pool_key_, upstream_, upstream_peer_, upstream_reading_);
  upstream_reading_ = false;
  upstream_ = nullptr;
}

std::string ForwardExchange::attemptUrl() const {
  return via_parent_ ? rules::maskUrlCredentials(decision_.upstream)
                     : "http://" + url_.authority.hostHeader(80);
}

void ForwardExchange::logOnce(const char* closed_by) {
  if (logged_) {
    return;
  }
  logged_ = true;
  record_.duration_ms = uv_now(rt_->loop()) - start_ms_;
  record_.closed_by = closed_by;
  // One attempt: the parent proxy, or the origin itself (so a failing
  // origin shows in the log and in switchyard_upstream_attempts_total).
  if (attempted_) {
    AttemptRecord attempt;
    attempt.url = attemptUrl();
    if (record_.status != 0 && response_started_) {
      attempt.status = record_.status;
    }
    if (!attempt_error_.empty()) {
      attempt.error = attempt_error_;
    }
    attempt.next = response_started_ ? "served" : "stopped";
    record_.attempts.push_back(std::move(attempt));
  }
  rt_->writeDecision(record_);
}

void ForwardExchange::dispose() {
  if (disposed_) {
    return;
  }
  disposed_ = true;
  delete client_out_;
  client_out_ = nullptr;
  if (resolve_id_ != 0) {
    rt_->resolver->cancel(resolve_id_);
    resolve_id_ = 0;
  }
  if (connect_id_ != 0) {
    rt_->connector->cancel(connect_id_);
    connect_id_ = 0;
  }
  if (upstream_ != nullptr) {
    upstream_->data = this;
    ++pending_closes_;
    closeHandle<&ForwardExchange::onHandleClosed, ForwardExchange>(asHandle(upstream_));
  }
  ++pending_closes_;
  closeHandle<&ForwardExchange::onHandleClosed, ForwardExchange>(asHandle(&timer_));
}

void ForwardExchange::onHandleClosed(uv_handle_t* handle) {
  if (upstream_ != nullptr && handle == asHandle(upstream_)) {
    delete upstream_;
    upstream_ = nullptr;
  }
  if (--pending_closes_ == 0) {
    delete this;
  }
}

std::string ForwardExchange::nextHopName() const {
  if (via_parent_ || decision_.action == rules::Action::kUpstream) {
    return "parent proxy " + rules::maskUrlCredentials(decision_.upstream);
  }
  return next_hop_.str();
}

}  // namespace switchyard
