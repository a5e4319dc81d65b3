// InterceptSession: see intercept.h.
#include "daemon/intercept.h"

#include "daemon/module_cache.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <map>
#include <utility>

#include "daemon/mirror_exchange.h"
#include "daemon/proxy_status.h"
#include "rules/decision.h"

namespace switchyard {

namespace {

std::string hexLength(size_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

// The CA per Runtime. A Runtime belongs to one loop thread, so the map is
// per thread and needs no lock.
std::shared_ptr<InterceptCa> interceptCa(Runtime* rt, const std::string& dir, std::string* error) {
  thread_local std::map<Runtime*, std::shared_ptr<InterceptCa>> cas;
  std::shared_ptr<InterceptCa>& slot = cas[rt];
  if (slot != nullptr && slot->dir == dir) {
    return slot;
  }
  auto state = std::make_shared<InterceptCa>();
  state->dir = dir;
  state->ca = certs::CertificateAuthority::load(dir, error);
  if (state->ca == nullptr) {
    return nullptr;
  }
  state->server_ctx = certs::serverContext(error);
  if (state->server_ctx == nullptr) {
    return nullptr;
  }
  slot = state;
  return slot;
}

// One mint on the thread pool. Holds the CA state so a reload cannot free it
// underneath the worker.
struct MintJob {
  uv_work_t req;
  InterceptSession* session;
  std::shared_ptr<InterceptCa> ca;
  std::string host;
  std::shared_ptr<const certs::CertificateAuthority::Leaf> leaf;
  std::string error;
};

// Owns nothing but itself: the completion of the `200 Connection
// established` write, which may run after the session is gone (the TLS
// stream owns the socket by then).
struct EstablishedWrite {
  void onDone(int, size_t) { delete this; }
};

// A refusal of an inner request the client got wrong (kind
// http_request_error), with the standard reason phrase.
ProxyError innerRequestError(int status, std::string details) {
  ProxyError e;
  e.status = status;
  e.reason = reasonPhrase(status);
  e.kind = ProxyErrorKind::kHttpRequestError;
  e.details = std::move(details);
  return e;
}

}  // namespace

bool checkInterceptCa(const rules::Config& config, std::string* error) {
  if (config.tls.ca_dir.empty()) {
    return true;
  }
  bool intercepts = false;
  for (const rules::RuleConfig& rule : config.rules) {
    intercepts = intercepts || rule.intercept;
  }
  if (!intercepts) {
    return true;
  }
  std::string why;
  if (certs::CertificateAuthority::load(config.tls.ca_dir, &why) == nullptr) {
    *error = "tls.ca_dir " + config.tls.ca_dir + ": cannot load the CA for interception: " + why;
    return false;
  }
  return true;
}

void InterceptSession::start(Params&& params) {
  auto* session = new InterceptSession(std::move(params));
  session->begin();
}

InterceptSession::InterceptSession(Params&& p)
    : rt_(p.rt),
      config_(std::move(p.config)),
      client_(p.client),
      client_ip_(std::move(p.client_ip)),
      leftover_(std::move(p.leftover)),
      target_(std::move(p.target)),
      connect_record_(std::move(p.record)),
      start_ms_(p.start_ms),
      via_token_(std::move(p.via_token)),
      reader_(config_->config().limits.max_header_bytes) {}

void InterceptSession::begin() {
  rt_->addSession(this);
  std::string error;
  ca_ = interceptCa(rt_, config_->config().tls.ca_dir, &error);
  if (ca_ == nullptr) {
    ProxyError e;
    e.status = 502;
    e.reason = "Interception unavailable";
    e.kind = ProxyErrorKind::kProxyConfigurationError;
    e.details = "tls.ca_dir " + config_->config().tls.ca_dir + ": " + error;
    std::string bytes = recordError(e, /*close=*/true, false, &connect_record_);
    connect_record_.bytes_out += bytes.size();
    uv_read_stop(asStream(client_));
    submitWrite<&InterceptSession::onEstablishedWritten, InterceptSession>(
        asStream(client_), this, makeWrite(std::move(bytes)));
    done_ = true;  // onEstablishedWritten ends the session
    return;
  }
  connect_record_.status = 200;
  connect_record_.bytes_out += 39;
  // The 200 is queued on the socket before the TLS stream takes it over, so
  // it precedes every TLS record.
  uv_read_stop(asStream(client_));
  auto* done = new EstablishedWrite();
  if (submitWrite<&EstablishedWrite::onDone, EstablishedWrite>(
          asStream(client_), done, makeWrite("HTTP/1.1 200 Connection established\r\n\r\n")) != 0) {
    delete done;
  }
  TlsStream::Options options;
  options.role = TlsStream::Role::kServer;
  options.ctx = ca_->server_ctx.get();
  std::string canonical;
  bool is_ip = false;
  if (certs::canonicalLeafHost(target_.host, &canonical, &is_ip, &error)) {
    options.leaf = ca_->leaves.get(canonical);
  }
  uv_timer_init(rt_->loop(), &timer_);
  timer_.data = this;
  timer_open_ = true;
  armTimer(TimerMode::kFirstHead);
  uv_tcp_t* tcp = client_;
  client_ = nullptr;
  tls_ = TlsStream::create(tcp, std::move(options), this);
  if (!tls_->start(std::move(leftover_), &error)) {
    spdlog::warn("intercept {}: {}", target_.str(), error);
    finish(/*reset=*/true);
  }
}

void InterceptSession::onEstablishedWritten(int status, size_t) {
  if (done_ && tls_ == nullptr && client_ != nullptr) {
    // The error answer instead of the 200 went out: close the plain socket.
    (void)status;
    uv_tcp_t* tcp = client_;
    client_ = nullptr;
    closeAndDelete(asHandle(tcp));
    rt_->writeDecision(connect_record_);
    rt_->removeClientConnection(client_ip_);
    rt_->removeSession(this);
    delete this;
  }
}

bool InterceptSession::onTlsServerName(TlsStream*, const std::string&) {
  // The leaf names the CONNECT host, whatever the SNI says: the host is what
  // the rule matched.
  if (minting_) {
    return true;
  }
  auto* job = new MintJob();
  job->req.data = job;
  job->session = this;
  job->ca = ca_;
  job->host = target_.host;
  minting_ = true;
  int rc = uv_queue_work(
      rt_->loop(), &job->req,
      [](uv_work_t* req) {
        auto* j = static_cast<MintJob*>(req->data);
        j->leaf = j->ca->ca->mint(j->host, &j->error);
      },
      [](uv_work_t* req, int) {
        std::unique_ptr<MintJob> j(static_cast<MintJob*>(req->data));
        j->session->onMinted(j->leaf, j->error);
      });
  if (rc != 0) {
    delete job;
    minting_ = false;
    return false;
  }
  return true;
}

void InterceptSession::onMinted(std::shared_ptr<const certs::CertificateAuthority::Leaf> leaf,
                                const std::string& error) {
  minting_ = false;
  if (done_) {
    maybeDelete();  // finish() ran meanwhile and left the deletion to us
    return;
  }
  std::string why = error;
  if (leaf != nullptr) {
    std::string canonical;
    bool is_ip = false;
    if (certs::canonicalLeafHost(target_.host, &canonical, &is_ip, &why)) {
      ca_->leaves.put(canonical, leaf);
    }
    if (tls_->provideLeaf(leaf, &why)) {
      return;
    }
  }
  spdlog::warn("intercept {}: cannot present a certificate: {}", target_.str(), why);
  finish(/*reset=*/true);
}

void InterceptSession::onTlsHandshake(TlsStream*) {}

void InterceptSession::onTlsData(TlsStream*, const BufferRef&, const char* data, size_t len) {
  connect_record_.bytes_in += len;
  input_.append(data, len);
  if (fetch_ != nullptr) {
    // A request pipelined behind the one in flight waits here, but not
    // without bound: past one head's worth, the client is not read.
    if (!input_paused_ && input_.size() > config_->config().limits.max_header_bytes) {
      input_paused_ = true;
      tls_->pauseReading();
    }
    return;
  }
  processInput();
}

void InterceptSession::onTlsEnd(TlsStream*, bool) {
  connect_record_.closed_by = "client";
  finish(/*reset=*/false);
}

void InterceptSession::onTlsError(TlsStream*, const TlsError& error) {
  connect_record_.closed_by = "client";
  spdlog::debug("intercept {}: {}", target_.str(), error.message);
  finish(/*reset=*/true);
}

void InterceptSession::drain() {
  draining_ = true;
  if (fetch_ == nullptr) {
    connect_record_.closed_by = "proxy";
    finish(/*reset=*/false);
  }
}

void InterceptSession::abort() {
  connect_record_.closed_by = "proxy";
  finish(/*reset=*/true);
}

// Parses the next complete inner head, if any, with llhttp. One request at
// a time: a pipelined one waits in input_ until the current one is answered.
void InterceptSession::processInput() {
  if (done_ || fetch_ != nullptr) {
    return;
  }
  if (input_paused_) {
    input_paused_ = false;
    tls_->resumeReading();
  }
  if (input_.empty()) {
    return;
  }
  RequestHeadReader::Result result = reader_.feed(input_.data(), input_.size());
  switch (result.kind) {
    case RequestHeadReader::Result::Kind::kNeedMore:
      input_.clear();  // the reader keeps what it needs of a partial head
      if (reader_.started() && timer_mode_ == TimerMode::kIdle) {
        armTimer(TimerMode::kHead);
      }
      return;
    case RequestHeadReader::Result::Kind::kError: {
      beginInnerRecord();
      inner_record_.bytes_in = reader_.headBytes();
      answerError(innerRequestError(result.status, "intercepted request: " + result.error), false);
      return;
    }
    case RequestHeadReader::Result::Kind::kHead:
      break;
  }
  input_.erase(0, result.consumed);
  beginInnerRecord();
  inner_record_.bytes_in = reader_.headBytes();
  RequestHead head = reader_.takeHead();
  bool keep = reader_.keepAlive();
  reader_.reset();
  armTimer(TimerMode::kNone);  // the fetch has timeouts of its own
  if (head.http_major != 1) {
    answerError(
        innerRequestError(505, "intercepted request: HTTP/" + std::to_string(head.http_major) +
                                   "." + std::to_string(head.http_minor) + " is not HTTP/1.x"),
        false);
    return;
  }
  dispatchInner(std::move(head), keep);
}

void InterceptSession::beginInnerRecord() {
  inner_start_ms_ = uv_now(rt_->loop());
  inner_record_ = DecisionRecord();
  inner_record_.conn = connect_record_.conn;
  inner_record_.client = connect_record_.client;
  inner_record_.user = connect_record_.user;
  inner_record_.config_gen = connect_record_.config_gen;
  inner_record_.host = target_.host;
  inner_record_.port = target_.port;
  inner_head_request_ = false;
  inner_http11_ = true;
}

void InterceptSession::dispatchInner(RequestHead head, bool keep_alive) {
  inner_record_.method = head.method;
  inner_record_.target = "https://" + target_.str() + head.target;
  inner_head_request_ = head.method == "HEAD";
  inner_http11_ = head.http_minor >= 1;
  inner_keep_ = keep_alive && !draining_;
  const std::string* te = head.headers.find("Transfer-Encoding");
  const std::string* cl = head.headers.find("Content-Length");
  if (te != nullptr || (cl != nullptr && *cl != "0") ||
      (head.method != "GET" && head.method != "HEAD")) {
    ProxyError e;
    e.status = 501;
    e.reason = "Not Implemented";
    e.kind = ProxyErrorKind::kProxyInternalResponse;
    e.details = "intercepted tunnels carry GET and HEAD requests without a body";
    answerError(e, false);
    return;
  }
  if (head.target.empty() || head.target.front() != '/') {
    answerError(innerRequestError(400, "an intercepted request needs an origin-form target"),
                false);
    return;
  }
  const std::string* host = head.headers.find("Host");
  bool host_ok = host != nullptr && head.headers.count("Host") == 1 &&
                 (equalsIgnoreCase(*host, target_.str()) ||
                  (target_.port == 443 && equalsIgnoreCase(*host, target_.host)));
  if (!host_ok) {
    ProxyError e;
    e.status = 421;
    e.reason = "Misdirected Request";
    e.kind = ProxyErrorKind::kHttpRequestDenied;
    e.details = "Host " + (host ? *host : std::string("(none)")) +
                " does not match the tunnel's CONNECT " + target_.str();
    answerError(e, inner_keep_);
    return;
  }
  rules::RequestFacts facts;
  facts.kind = rules::RequestKind::kIntercepted;
  facts.scheme = "https";
  facts.host = target_.host;
  facts.port = target_.port;
  facts.path = head.target;
  // Each inner request is decided under the config current at that moment.
  LiveConfigPtr live = rt_->config;
  rules::addModuleFacts(&facts, *live->snapshot);
  inner_record_.module = facts.module.value_or("");
  rules::Decision decision = rt_->decide(facts, *live->snapshot);
  applyDecision(decision, &inner_record_);
  if (decision.leak_guard) {
    answerError(leakGuarded(decision, inner_record_.target), inner_keep_);
    return;
  }
  if (decision.action == rules::Action::kDeny) {
    answerError(deniedByRule(decision, inner_record_.target), inner_keep_);
    return;
  }
  MirrorFetch::Params p;
  if (auto failure = prepareMirrorFetch(rt_, *live, decision, &p)) {
    answerError(*failure, inner_keep_);
    return;
  }
  p.rt = rt_;
  p.method = head.method;
  p.url.scheme = "https";
  p.url.authority = target_;
  p.url.path = head.target;
  p.headers = std::move(head.headers);
  p.http_major = head.http_major;
  p.http_minor = head.http_minor;
  p.via_token = via_token_;
  chunk_to_client_ = false;
  fetch_paused_ = false;
  std::string path = p.url.path;  // `p` is moved into the call
  fetch_ = startMirrorSource(rt_, *live, decision, target_.host, path, std::move(p), this);
}

void InterceptSession::answerError(const ProxyError& error, bool keep) {
  std::string bytes = recordError(error, /*close=*/!keep, inner_head_request_, &inner_record_);
  inner_record_.bytes_out += bytes.size();
  if (tls_ != nullptr) {
    tls_->write(std::move(bytes));
  }
  inner_record_.closed_by = "proxy";
  finishInner(keep);
}

void InterceptSession::onMirrorHead(const ResponseHead& head, const MirrorResponseInfo& info) {
  HeaderList headers = head.headers;
  appendVia(&headers, head.http_major, head.http_minor, via_token_);
  bool close_delimited = false;
  if (info.has_body && !info.content_length) {
    if (inner_http11_) {
      headers.add("Transfer-Encoding", "chunked");
      chunk_to_client_ = true;
    } else {
      close_delimited = true;
    }
  }
  inner_keep_ = inner_keep_ && !close_delimited && !draining_;
  if (!inner_keep_) {
    headers.add("Connection", "close");
  } else if (!inner_http11_) {
    headers.add("Connection", "keep-alive");
  }
  inner_record_.status = head.status;
  inner_record_.next_hop = info.next_hop;
  inner_record_.cache = info.cache;
  inner_record_.resolved = info.resolved;
  std::string bytes = serializeResponseHead(
      head.status, head.reason.empty() ? reasonPhrase(head.status) : head.reason, headers);
  inner_record_.bytes_out += bytes.size();
  tls_->write(std::move(bytes));
}

void InterceptSession::onMirrorBody(const BufferRef&, const char* data, size_t len) {
  if (len == 0) {
    return;
  }
  std::string piece;
  if (chunk_to_client_) {
    piece = hexLength(len) + "\r\n";
    piece.append(data, len);
    piece += "\r\n";
  } else {
    piece.assign(data, len);
  }
  inner_record_.bytes_out += piece.size();
  tls_->write(std::move(piece), [this](int status) { onTlsWritten(status); });
  if (!fetch_paused_ && tls_->writeQueueSize() > kHighWater) {
    fetch_paused_ = true;
    fetch_->pause();
    armTimer(TimerMode::kStalled);
  }
}

void InterceptSession::onTlsWritten(int) {
  if (fetch_paused_ && fetch_ != nullptr && tls_ != nullptr &&
      tls_->writeQueueSize() <= kLowWater) {
    fetch_paused_ = false;
    fetch_->resume();
    armTimer(TimerMode::kNone);
  }
}

void InterceptSession::onMirrorComplete() {
  inner_record_.attempts = fetch_->attempts();
  fetch_ = nullptr;
  if (chunk_to_client_) {
    inner_record_.bytes_out += 5;
    tls_->write(std::string("0\r\n\r\n"));
  }
  inner_record_.closed_by = "upstream";
  finishInner(inner_keep_);
}

void InterceptSession::onMirrorFailed(const MirrorFailure& failure) {
  inner_record_.attempts = fetch_->attempts();
  inner_record_.cache = failure.cache;
  fetch_ = nullptr;
  ProxyError e = proxyErrorFromMirrorFailure(failure);
  answerError(e, inner_keep_ && e.status == 404);
}

void InterceptSession::onMirrorAborted(const std::string&) {
  inner_record_.attempts = fetch_->attempts();
  inner_record_.closed_by = fetch_->abortedByProxy() ? "proxy" : "upstream";
  fetch_ = nullptr;
  inner_record_.duration_ms = uv_now(rt_->loop()) - inner_start_ms_;
  rt_->writeDecision(inner_record_);
  finish(/*reset=*/true);
}

void InterceptSession::finishInner(bool keep) {
  inner_record_.duration_ms = uv_now(rt_->loop()) - inner_start_ms_;
  rt_->writeDecision(inner_record_);
  if (!keep || draining_) {
    finish(/*reset=*/false);
    return;
  }
  fetch_paused_ = false;
  armTimer(TimerMode::kIdle);
  processInput();
}

void InterceptSession::finish(bool reset) {
  if (done_) {
    return;
  }
  done_ = true;
  if (fetch_ != nullptr) {
    inner_record_.attempts = fetch_->attempts();
    fetch_->cancel();
    fetch_ = nullptr;
    inner_record_.closed_by =
        connect_record_.closed_by.empty() ? "proxy" : connect_record_.closed_by;
    inner_record_.duration_ms = uv_now(rt_->loop()) - inner_start_ms_;
    rt_->writeDecision(inner_record_);
  }
  if (tls_ != nullptr) {
    if (reset) {
      tls_->abort();
    } else {
      tls_->close();
    }
    tls_ = nullptr;
  }
  if (connect_record_.closed_by.empty()) {
    connect_record_.closed_by = "proxy";
  }
  connect_record_.duration_ms = uv_now(rt_->loop()) - start_ms_;
  rt_->writeDecision(connect_record_);
  rt_->removeClientConnection(client_ip_);
  rt_->removeSession(this);
  if (timer_open_) {
    uv_close(asHandle(&timer_), [](uv_handle_t* handle) {
      auto* self = static_cast<InterceptSession*>(handle->data);
      self->timer_open_ = false;
      self->maybeDelete();
    });
    return;
  }
  maybeDelete();
}

void InterceptSession::maybeDelete() {
  if (done_ && !minting_ && !timer_open_) {
    delete this;
  }
}

void InterceptSession::armTimer(TimerMode mode) {
  timer_mode_ = mode;
  const rules::LimitsConfig& limits = config_->config().limits;
  std::chrono::milliseconds ms{0};
  switch (mode) {
    case TimerMode::kNone:
      uv_timer_stop(&timer_);
      return;
    case TimerMode::kFirstHead:
    case TimerMode::kHead:
      ms = limits.header_timeout;
      break;
    case TimerMode::kIdle:
    case TimerMode::kStalled:
      ms = limits.idle_timeout;
      break;
  }
  startTimer<&InterceptSession::onTimer, InterceptSession>(&timer_,
                                                           static_cast<uint64_t>(ms.count()));
}

// The client side's deadlines (SECURITY.md): a client that never finishes
// its TLS handshake or its head, idles between requests, or stops reading
// our answer does not hold the session (and its descriptors) for good.
void InterceptSession::onTimer() {
  if (done_) {
    return;
  }
  TimerMode mode = timer_mode_;
  timer_mode_ = TimerMode::kNone;
  connect_record_.closed_by = "proxy";
  if ((mode == TimerMode::kFirstHead || mode == TimerMode::kHead) && reader_.started() &&
      fetch_ == nullptr) {
    beginInnerRecord();
    inner_record_.bytes_in = reader_.headBytes();
    answerError(
        innerRequestError(
            408, "the intercepted request head did not arrive within limits.header_timeout"),
        false);
    return;
  }
  finish(/*reset=*/mode != TimerMode::kIdle);
}

}  // namespace switchyard
