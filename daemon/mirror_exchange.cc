// MirrorExchange: see mirror_exchange.h. The MirrorFetch does the walking;
// this file re-frames the served response for the client and logs the
// request exactly once, whichever way it ends.
#include "daemon/mirror_exchange.h"

#include <cstdio>
#include <memory>
#include <utility>

#include "daemon/connection.h"
#include "daemon/module_cache.h"
#include "daemon/tls_stream.h"

namespace switchyard {

namespace {

std::string hexLength(size_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

}  // namespace

ProxyErrorKind proxyErrorKindFromToken(const std::string& token) {
  static const std::pair<const char*, ProxyErrorKind> kKinds[] = {
      {"destination_not_found", ProxyErrorKind::kDestinationNotFound},
      {"destination_unavailable", ProxyErrorKind::kDestinationUnavailable},
      {"dns_error", ProxyErrorKind::kDnsError},
      {"connection_refused", ProxyErrorKind::kConnectionRefused},
      {"connection_timeout", ProxyErrorKind::kConnectionTimeout},
      {"connection_read_timeout", ProxyErrorKind::kConnectionReadTimeout},
      {"connection_terminated", ProxyErrorKind::kConnectionTerminated},
      {"tls_certificate_error", ProxyErrorKind::kTlsCertificateError},
      {"tls_protocol_error", ProxyErrorKind::kTlsProtocolError},
      {"http_protocol_error", ProxyErrorKind::kHttpProtocolError},
      {"http_response_header_section_size", ProxyErrorKind::kHttpResponseHeaderSectionSize},
      {"destination_ip_prohibited", ProxyErrorKind::kDestinationIpProhibited},
      {"proxy_loop_detected", ProxyErrorKind::kProxyLoopDetected},
      {"proxy_configuration_error", ProxyErrorKind::kProxyConfigurationError},
  };
  for (const auto& [name, kind] : kKinds) {
    if (token == name) {
      return kind;
    }
  }
  return ProxyErrorKind::kDestinationUnavailable;
}

ProxyError proxyErrorFromMirrorFailure(const MirrorFailure& failure) {
  ProxyError e;
  e.status = failure.status;
  e.reason = failure.reason;
  e.kind = proxyErrorKindFromToken(failure.proxy_status_error);
  e.details = failure.details;
  e.received_status = failure.received_status;
  e.next_hop = failure.next_hop;
  e.body = failure.body;
  return e;
}

SSL_CTX* upstreamTlsContext(Runtime* rt, const LiveConfig& live, std::string* error) {
  // A reload may have changed tls.upstream_ca_file or the file behind it:
  // contexts of an older generation are not reused.
  if (rt->tls_contexts == nullptr || rt->tls_contexts_generation != live.generation()) {
    if (rt->tls_contexts == nullptr) {
      rt->tls_contexts = std::make_shared<UpstreamTlsContexts>();
    } else {
      rt->tls_contexts->clear();
    }
    rt->tls_contexts_generation = live.generation();
  }
  return rt->tls_contexts->get(live.config().tls.upstream_ca_file, error);
}

std::optional<ProxyError> prepareMirrorFetch(Runtime* rt, const LiveConfig& live,
                                             const rules::Decision& decision,
                                             MirrorFetch::Params* params) {
  std::string error;
  bool ok = configureMirrorParams(live.config(), decision, params, &error);
  if (ok) {
    params->tls_ctx = upstreamTlsContext(rt, live, &error);
    ok = params->tls_ctx != nullptr;
    error = ok ? "" : "tls.upstream_ca_file: " + error;
  }
  if (ok) {
    return std::nullopt;
  }
  ProxyError e;
  e.status = 502;
  e.reason = "Mirror misconfigured";
  e.kind = ProxyErrorKind::kProxyConfigurationError;
  e.details = "rule " + decision.rule + " (" + decision.source.str() + "): " + error;
  return e;
}

MirrorExchange* MirrorExchange::create(Params&& params) {
  return new MirrorExchange(std::move(params));
}

MirrorExchange::MirrorExchange(Params&& p)
    : rt_(p.rt),
      conn_(p.conn),
      config_(std::move(p.config)),
      head_(std::move(p.head)),
      url_(std::move(p.url)),
      decision_(std::move(p.decision)),
      record_(std::move(p.record)),
      start_ms_(p.start_ms),
      via_token_(std::move(p.via_token)),
      source_factory_(std::move(p.source)),
      client_keep_alive_(p.client_keep_alive),
      head_request_(head_.method == "HEAD") {}

void MirrorExchange::begin() {
  if (source_factory_) {
    fetch_ = source_factory_(this);
    if (conn_ != nullptr) {
      conn_->resumeRequestBody();
    }
    return;
  }
  MirrorFetch::Params p;
  if (auto failure = prepareMirrorFetch(rt_, *config_, decision_, &p)) {
    fail(*failure);
    return;
  }
  p.rt = rt_;
  p.method = head_.method;
  p.url = url_;
  p.headers = head_.headers;
  p.http_major = head_.http_major;
  p.http_minor = head_.http_minor;
  p.via_token = via_token_;
  fetch_ = startMirrorSource(rt_, *config_, decision_, url_.authority.host, url_.path, std::move(p),
                             this);
  // No body follows (the Connection checked); this lets the parser see the
  // end of the request, so the connection can be kept for the next one.
  if (conn_ != nullptr) {
    conn_->resumeRequestBody();
  }
}

void MirrorExchange::onRequestBody(const char*, size_t) {
  // Only bodiless requests reach a mirror; nothing to carry.
}

void MirrorExchange::onRequestComplete() {}

void MirrorExchange::onRequestBodyError(const std::string& why) {
  if (fetch_ != nullptr) {
    record_.attempts = fetch_->attempts();
    fetch_->cancel();
    fetch_ = nullptr;
  }
  if (record_.status == 0) {
    record_.status = 400;
  }
  (void)why;  // only bodiless requests get here, so this cannot really happen
  logOnce("proxy");
  Connection* conn = conn_;
  conn_ = nullptr;
  if (conn != nullptr) {
    conn->abortClient();
  }
  delete this;
}

void MirrorExchange::onClientWritten() {
  if (paused_ && fetch_ != nullptr && conn_ != nullptr &&
      conn_->clientWriteQueueSize() <= kLowWater) {
    paused_ = false;
    fetch_->resume();
  }
}

void MirrorExchange::detach(const char* closed_by) {
  conn_ = nullptr;
  if (fetch_ != nullptr) {
    record_.attempts = fetch_->attempts();
    fetch_->cancel();
    fetch_ = nullptr;
  }
  logOnce(closed_by);
  delete this;
}

void MirrorExchange::onMirrorHead(const ResponseHead& head, const MirrorResponseInfo& info) {
  HeaderList headers = head.headers;
  appendVia(&headers, head.http_major, head.http_minor, via_token_);
  bool client11 = head_.http_major > 1 || (head_.http_major == 1 && head_.http_minor >= 1);
  bool close_delimited = false;
  if (info.has_body && !info.content_length) {
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
  record_.cache = info.cache;
  record_.next_hop = info.next_hop;
  record_.resolved = info.resolved;
  std::string bytes = serializeResponseHead(
      head.status, head.reason.empty() ? reasonPhrase(head.status) : head.reason, headers);
  record_.bytes_out += bytes.size();
  if (conn_ != nullptr) {
    conn_->writeToClient(makeWrite(std::move(bytes)));
  }
}

void MirrorExchange::onMirrorBody(const BufferRef& block, const char* data, size_t len) {
  if (conn_ == nullptr || len == 0) {
    return;
  }
  WriteRequest* w = chunk_to_client_ ? makeWrite(hexLength(len) + "\r\n", block, data, len, "\r\n")
                                     : makeWrite(std::string(), block, data, len, std::string());
  record_.bytes_out += w->bytes();
  conn_->writeToClient(w);
  if (!paused_ && conn_ != nullptr && fetch_ != nullptr &&
      conn_->clientWriteQueueSize() > kHighWater) {
    paused_ = true;
    fetch_->pause();
  }
}

void MirrorExchange::onMirrorComplete() {
  record_.attempts = fetch_->attempts();
  fetch_ = nullptr;
  if (chunk_to_client_ && conn_ != nullptr) {
    record_.bytes_out += 5;
    conn_->writeToClient(makeWrite("0\r\n\r\n"));
  }
  logOnce("upstream");
  Connection* conn = conn_;
  conn_ = nullptr;
  if (conn != nullptr) {
    conn->exchangeFinished(client_keep_alive_);
  }
  delete this;
}

void MirrorExchange::onMirrorFailed(const MirrorFailure& failure) {
  record_.attempts = fetch_->attempts();
  record_.cache = failure.cache;
  fetch_ = nullptr;
  fail(proxyErrorFromMirrorFailure(failure));
}

void MirrorExchange::onMirrorAborted(const std::string& why) {
  record_.attempts = fetch_->attempts();
  const char* closed_by = fetch_->abortedByProxy() ? "proxy" : "upstream";
  fetch_ = nullptr;
  (void)why;  // the attempts carry the error of the attempt that broke off
  logOnce(closed_by);
  Connection* conn = conn_;
  conn_ = nullptr;
  if (conn != nullptr) {
    conn->abortClient();
  }
  delete this;
}

void MirrorExchange::fail(const ProxyError& error) {
  // A not-found answer is an ordinary response: the connection may go on.
  bool keep = client_keep_alive_ && error.status == 404 && conn_ != nullptr && !conn_->draining();
  std::string bytes = recordError(error, /*close=*/!keep, head_request_, &record_);
  record_.bytes_out += bytes.size();
  logOnce("proxy");
  Connection* conn = conn_;
  conn_ = nullptr;
  if (conn != nullptr) {
    conn->writeToClient(makeWrite(std::move(bytes)));
    conn->exchangeFinished(keep);
  }
  delete this;
}

void MirrorExchange::logOnce(const char* closed_by) {
  if (logged_) {
    return;
  }
  logged_ = true;
  record_.duration_ms = uv_now(rt_->loop()) - start_ms_;
  record_.closed_by = closed_by;
  rt_->writeDecision(record_);
}

}  // namespace switchyard
