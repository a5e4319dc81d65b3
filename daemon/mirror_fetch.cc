#include "daemon/mirror_fetch.h"

#include <charconv>
#include <utility>

#include "daemon/connector.h"
#include "daemon/net_address.h"
#include "daemon/resolver.h"
#include "rules/ascii.h"

namespace switchyard {

namespace {

using rules::AttemptOutcome;
using rules::GoproxyEntry;

// Userinfo is percent-encoded in URLs ("p%40ss" for "p@ss"); Basic
// credentials carry the decoded text. A broken escape is kept literally.
std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = rules::hexDigitValue(s[i + 1]);
      int lo = rules::hexDigitValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

uint16_t defaultPort(const std::string& scheme) {
  return scheme == "https" ? 443 : 80;
}

// The label of an attempt's result in an error body: "404 Not Found",
// "connection refused".
std::string resultText(const AttemptRecord& record) {
  if (record.status) {
    std::string out = std::to_string(*record.status) + " " + reasonPhrase(*record.status);
    if (record.error) {
      out += " (" + *record.error + ")";
    }
    return out;
  }
  return record.error ? *record.error : std::string("no result");
}

// A GOPROXY-syntax list with the credentials of every entry masked.
std::string maskList(std::string_view list) {
  std::string out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t sep = list.find_first_of(",|", start);
    size_t end = sep == std::string_view::npos ? list.size() : sep;
    out += rules::maskUrlCredentials(std::string(list.substr(start, end - start)));
    if (sep == std::string_view::npos) {
      break;
    }
    out.push_back(list[sep]);
    start = sep + 1;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// URL helpers.

namespace detail {

bool parseMirrorBase(std::string_view url, MirrorBase* out, std::string* error) {
  *out = MirrorBase();
  size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    *error = "mirror URL " + rules::maskUrlCredentials(std::string(url)) + " has no scheme";
    return false;
  }
  out->scheme = toLower(url.substr(0, sep));
  if (out->scheme != "http" && out->scheme != "https") {
    *error = out->scheme + ":// mirrors are not supported (only http and https): " +
             rules::maskUrlCredentials(std::string(url));
    return false;
  }
  std::string_view rest = url.substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    out->userinfo = std::string(userinfo);
    size_t colon = userinfo.find(':');
    out->user = percentDecode(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) {
      out->password = percentDecode(userinfo.substr(colon + 1));
    }
    out->has_credentials = true;
  }
  AbsoluteUrl parsed;
  std::string why;
  if (!parseAbsoluteUrl(url, &parsed, &why)) {
    *error = "mirror URL " + rules::maskUrlCredentials(std::string(url)) + ": " + why;
    return false;
  }
  out->authority = parsed.authority;
  // The base's own query (rare, and meaningless to the go command) is not
  // carried: the original request's query is.
  out->path = parsed.path.substr(0, parsed.path.find('?'));
  if (out->path == "/") {
    out->path.clear();
  }
  return true;
}

std::string joinMirrorPath(std::string_view base_path, std::string_view original) {
  while (!base_path.empty() && base_path.back() == '/') {
    base_path.remove_suffix(1);
  }
  std::string out(base_path);
  if (original.empty() || original.front() != '/') {
    out.push_back('/');
  }
  out.append(original);
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Setup.

bool configureMirrorParams(const rules::Config& config, const rules::Decision& decision,
                           MirrorFetch::Params* params, std::string* error) {
  std::string list_text;
  switch (decision.action) {
    case rules::Action::kMirror:
      list_text = decision.mirrors;
      break;
    case rules::Action::kDirect:
      list_text = "direct";
      break;
    default:
      *error = std::string("action ") + rules::actionName(decision.action) +
               " is not carried out by a mirror fetch";
      return false;
  }
  rules::GoproxyList list;
  std::string why;
  if (!rules::parseGoproxyList(list_text, /*insert_noproxy=*/false, &list, &why)) {
    *error = "rule " + decision.rule + ": mirrors: " + why;
    return false;
  }
  params->list = std::move(list);
  const rules::LimitsConfig& limits = config.limits;
  params->connect_timeout = limits.connect_timeout;
  params->response_timeout = limits.response_timeout;
  params->idle_timeout = limits.idle_timeout;
  params->max_header_bytes = limits.max_header_bytes;
  params->deny_private_direct = config.access.deny_private_destinations && !decision.allow_private;
  return true;
}

MirrorFetch* MirrorFetch::start(Params params, Sink* sink) {
  auto* fetch = new MirrorFetch(std::move(params), sink);
  fetch->armTimer(TimerMode::kKick);
  return fetch;
}

MirrorFetch::MirrorFetch(Params&& params, Sink* sink)
    : rt_(params.rt),
      sink_(sink),
      params_(std::move(params)),
      walk_(params_.list, params_.module_private),
      reader_(this, params_.max_header_bytes) {
  uv_timer_init(rt_->loop(), &timer_);
  timer_.data = this;
  if (params_.tls_ctx != nullptr) {
    SSL_CTX_up_ref(params_.tls_ctx);
  }
}

MirrorFetch::~MirrorFetch() {
  if (params_.tls_ctx != nullptr) {
    SSL_CTX_free(params_.tls_ctx);
  }
}

// ---------------------------------------------------------------------------
// The callback chain.

void MirrorFetch::step() {
  // Entries that fail before any I/O (a bad URL, no TLS context, `direct`
  // where we cannot go direct) are reported here and the loop moves on;
  // `off` and skipped steps never come out of next() at all.
  while (phase_ != Phase::kDone) {
    const GoproxyEntry* entry = walk_.next();
    if (entry == nullptr) {
      finishWalk();
      return;
    }
    current_entry_ = entry;
    AttemptOutcome failure;
    const char* error_type = "";
    if (!prepareTarget(*entry, &failure, &error_type)) {
      report(failure, error_type);
      continue;
    }
    reused_tls_ = false;
    retried_fresh_ = false;
    upstream_ended_ = false;
    surplus_ = false;
    if (!takePooledTls()) {
      resolveTarget();
    }
    return;
  }
}

void MirrorFetch::resolveTarget() {
  phase_ = Phase::kResolving;
  resolve_id_ = rt_->resolver->resolve(target_.authority.host, target_.authority.port,
                                       [this](const ResolveResult& result) {
                                         resolve_id_ = 0;
                                         onResolved(result);
                                       });
}

// An idle TLS connection to the same host under the same client context
// saves the handshake, which is most of an intercepted request's cost. The
// `direct` entry under deny_private_destinations always resolves afresh, so
// its addresses are checked again.
bool MirrorFetch::takePooledTls() {
  if (target_.scheme != "https" || rt_->pool == nullptr ||
      (target_.direct && params_.deny_private_direct)) {
    return false;
  }
  std::string peer;
  TlsStream* stream =
      rt_->pool->takeTls(UpstreamPool::tlsKey(target_.authority, params_.tls_ctx), &peer);
  if (stream == nullptr) {
    return false;
  }
  tls_ = stream;
  tls_->setHandler(this);
  resolved_ = std::move(peer);
  reused_tls_ = true;
  sendRequest();
  return true;
}

bool MirrorFetch::prepareTarget(const GoproxyEntry& entry, AttemptOutcome* failure,
                                const char** error_type) {
  failure->kind = AttemptOutcome::Kind::kTransport;
  std::string* error = &failure->error;
  target_ = Target();
  resolved_.clear();
  if (entry.kind == GoproxyEntry::Kind::kDirect || entry.kind == GoproxyEntry::Kind::kNoproxy) {
    const AbsoluteUrl& url = params_.direct_url ? *params_.direct_url : params_.url;
    target_.direct = true;
    target_.scheme = url.scheme;
    target_.authority = url.authority;
    target_.path = url.path.empty() ? "/" : url.path;
    target_.url = rules::maskUrlCredentials(url.str());
    target_.entry = "direct";
    if (!params_.direct_allowed) {
      target_.url = "direct";
      failure->kind = AttemptOutcome::Kind::kDirectUnavailable;
      *error = "switchyard cannot fetch directly in this mode";
      *error_type = "destination_not_found";
      return false;
    }
  } else {
    detail::MirrorBase base;
    if (!detail::parseMirrorBase(entry.url, &base, error)) {
      target_.url = rules::maskUrlCredentials(entry.url);
      *error_type = "proxy_configuration_error";
      return false;
    }
    target_.scheme = base.scheme;
    target_.authority = base.authority;
    target_.path = detail::joinMirrorPath(base.path, params_.url.path);
    if (base.has_credentials) {
      target_.credentials = base.user + ":" + base.password;
    }
    target_.entry = rules::maskUrlCredentials(entry.url);
    target_.url = rules::maskUrlCredentials(
        target_.scheme + "://" + (base.has_credentials ? base.userinfo + "@" : std::string()) +
        target_.authority.hostHeader(defaultPort(target_.scheme)) + target_.path);
  }
  if (target_.scheme == "https" && params_.tls_ctx == nullptr) {
    *error = "no TLS client context for https";
    *error_type = "proxy_configuration_error";
    return false;
  }
  return true;
}

void MirrorFetch::onResolved(const ResolveResult& result) {
  if (phase_ != Phase::kResolving) {
    return;
  }
  const std::string where = target_.authority.str();
  if (result.status != 0) {
    AttemptOutcome o{AttemptOutcome::Kind::kTransport, 0,
                     "cannot resolve " + target_.authority.host + ": " + result.error};
    attemptFailed(std::move(o), "dns_error");
    return;
  }
  std::vector<sockaddr_storage> usable;
  bool loop = false;
  bool prohibited = false;
  for (const sockaddr_storage& addr : result.addresses) {
    const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
    if (rt_->isOwnListener(sa)) {
      loop = true;
      continue;
    }
    // The destination policy guards hosts the client chose: the original
    // origin. Mirrors are named by the configuration.
    if (target_.direct && params_.deny_private_direct && isPrivateDestination(sa)) {
      prohibited = true;
      continue;
    }
    usable.push_back(addr);
  }
  if (usable.empty()) {
    AttemptOutcome o{AttemptOutcome::Kind::kTransport, 0, ""};
    const char* type = "dns_error";
    if (loop) {
      o.error = where + " is this proxy itself (loop)";
      type = "proxy_loop_detected";
    } else if (prohibited) {
      o.error = target_.authority.host +
                " resolves only to private addresses (access.deny_private_destinations)";
      type = "destination_ip_prohibited";
    } else {
      o.error = "no address for " + target_.authority.host;
    }
    attemptFailed(std::move(o), type);
    return;
  }
  phase_ = Phase::kConnecting;
  connect_id_ = rt_->connector->connect(std::move(usable), params_.connect_timeout,
                                        [this](ConnectResult&& result) {
                                          connect_id_ = 0;
                                          onConnected(std::move(result));
                                        });
}

void MirrorFetch::onConnected(ConnectResult&& result) {
  if (phase_ != Phase::kConnecting) {
    if (result.tcp != nullptr) {
      closeAndDelete(asHandle(result.tcp));
    }
    return;
  }
  if (result.status != 0 || result.tcp == nullptr) {
    if (result.tcp != nullptr) {
      closeAndDelete(asHandle(result.tcp));
    }
    const std::string where = target_.authority.str();
    if (result.timed_out) {
      attemptFailed({AttemptOutcome::Kind::kTimeout, 0,
                     "no connection to " + where + " within limits.connect_timeout (" +
                         durationText(params_.connect_timeout) + ")"},
                    "connection_timeout");
    } else if (result.status == UV_ECONNREFUSED) {
      attemptFailed({AttemptOutcome::Kind::kTransport, 0, where + " refused the connection"},
                    "connection_refused");
    } else {
      attemptFailed(
          {AttemptOutcome::Kind::kTransport, 0, "cannot connect to " + where + ": " + result.error},
          "destination_unavailable");
    }
    return;
  }
  resolved_ = formatAddress(reinterpret_cast<const sockaddr*>(&result.peer));
  if (target_.scheme == "https") {
    TlsStream::Options options;
    options.role = TlsStream::Role::kClient;
    options.ctx = params_.tls_ctx;
    options.host = target_.authority.host;
    tls_ = TlsStream::create(result.tcp, std::move(options), this);
    std::string error;
    if (!tls_->start(std::string(), &error)) {
      attemptFailed({AttemptOutcome::Kind::kTransport, 0,
                     "TLS setup for " + target_.authority.host + " failed: " + error},
                    "tls_protocol_error");
      return;
    }
    phase_ = Phase::kHandshaking;
    armTimer(TimerMode::kHandshake);
    return;
  }
  plain_ = result.tcp;
  plain_->data = this;
  ++handles_open_;
  uv_tcp_nodelay(plain_, 1);
  if (startRead<&MirrorFetch::onPlainRead, MirrorFetch>(asStream(plain_)) != 0) {
    attemptFailed({AttemptOutcome::Kind::kTransport, 0, "cannot read from " + resolved_},
                  "connection_terminated");
    return;
  }
  sendRequest();
}

void MirrorFetch::onTlsHandshake(TlsStream*) {
  if (phase_ != Phase::kHandshaking) {
    return;
  }
  sendRequest();
}

void MirrorFetch::sendRequest() {
  phase_ = Phase::kWaitingHead;
  std::string head = buildRequestHead();
  armTimer(TimerMode::kResponse);
  if (tls_ != nullptr) {
    if (int rc = tls_->write(std::move(head)); rc != 0) {
      attemptFailed({AttemptOutcome::Kind::kTransport, 0,
                     "sending the request failed: " + std::string(uv_strerror(rc))},
                    "connection_terminated");
    }
    return;
  }
  int rc = submitWrite<&MirrorFetch::onPlainWritten, MirrorFetch>(asStream(plain_), this,
                                                                  makeWrite(std::move(head)));
  if (rc != 0) {
    attemptFailed({AttemptOutcome::Kind::kTransport, 0,
                   "sending the request failed: " + std::string(uv_strerror(rc))},
                  "connection_terminated");
  }
}

std::string MirrorFetch::buildRequestHead() const {
  HeaderList headers;
  headers.add("Host", target_.authority.hostHeader(defaultPort(target_.scheme)));
  HeaderList rest = params_.headers;
  stripHopByHop(&rest);
  for (const HeaderField& f : rest.fields()) {
    if (equalsIgnoreCase(f.name, "Host") || equalsIgnoreCase(f.name, "Content-Length") ||
        equalsIgnoreCase(f.name, "Expect")) {
      continue;  // no body travels, so neither do its framing fields
    }
    // The client's credentials and cookies were meant for the origin; a
    // mirror is a different party and must not see them.
    if (!target_.direct &&
        (equalsIgnoreCase(f.name, "Authorization") || equalsIgnoreCase(f.name, "Cookie"))) {
      continue;
    }
    headers.add(f.name, f.value);
  }
  if (!target_.credentials.empty()) {
    headers.add("Authorization", "Basic " + base64Encode(target_.credentials));
  }
  if (!params_.via_token.empty()) {
    appendVia(&headers, params_.http_major, params_.http_minor, params_.via_token);
  }
  // https connections may go back to the pool (complete()); plain ones
  // carry one request, and saying so lets the server end the body cleanly.
  if (target_.scheme != "https" || rt_->pool == nullptr) {
    headers.add("Connection", "close");
  }
  return serializeRequestHead(params_.method, target_.path, headers);
}

void MirrorFetch::onPlainWritten(int, size_t) {
  // A failed request write shows up on the read side as well (reset or
  // EOF), which has the better message; nothing to do here.
}

void MirrorFetch::onPlainRead(ssize_t nread, BufferRef block) {
  if (nread == 0 || phase_ == Phase::kDone) {
    return;
  }
  if (nread < 0) {
    onUpstreamEnd(nread == UV_EOF, /*clean_tls=*/true,
                  std::string("reading failed: ") + uv_strerror(static_cast<int>(nread)));
    return;
  }
  onUpstreamBytes(block, block.data(), static_cast<size_t>(nread));
}

void MirrorFetch::onTlsData(TlsStream*, const BufferRef& block, const char* data, size_t len) {
  if (phase_ == Phase::kDone) {
    return;
  }
  onUpstreamBytes(block, data, len);
}

void MirrorFetch::onTlsEnd(TlsStream*, bool clean) {
  if (phase_ == Phase::kDone) {
    return;
  }
  onUpstreamEnd(/*eof=*/true, clean, "");
}

void MirrorFetch::onTlsError(TlsStream*, const TlsError& error) {
  if (phase_ == Phase::kDone) {
    return;
  }
  if (head_delivered_) {
    abortBody(error.message);
    return;
  }
  attemptFailed({AttemptOutcome::Kind::kTransport, 0, error.message}, error.proxyStatusError());
}

void MirrorFetch::onUpstreamBytes(const BufferRef& block, const char* data, size_t len) {
  if (phase_ != Phase::kWaitingHead && phase_ != Phase::kBody) {
    return;  // bytes before the request went out: ignored, the head decides
  }
  last_activity_ms_ = uv_now(rt_->loop());
  current_block_ = block;
  ResponseReader::Result result = reader_.feed(data, len);
  current_block_ = BufferRef();
  if (phase_ == Phase::kDone) {
    return;  // the sink cancelled, or a terminal call was made
  }
  if (pending_outcome_) {
    AttemptOutcome outcome = std::move(*pending_outcome_);
    pending_outcome_.reset();
    attemptFailed(std::move(outcome), pending_error_type_);
    return;
  }
  switch (result.kind) {
    case ResponseReader::Result::Kind::kNeedMore:
      return;
    case ResponseReader::Result::Kind::kPaused:
      if (response_complete_) {
        surplus_ = result.consumed < len;
        complete();
      }
      return;
    case ResponseReader::Result::Kind::kError:
      if (head_delivered_) {
        abortBody("malformed response body from " + target_.url + ": " + result.error);
        return;
      }
      attemptFailed(
          {AttemptOutcome::Kind::kTransport, 0, result.error},
          result.head_too_large ? "http_response_header_section_size" : "http_protocol_error");
      return;
  }
}

void MirrorFetch::onUpstreamEnd(bool eof, bool clean_tls, const std::string& why) {
  if (phase_ != Phase::kWaitingHead && phase_ != Phase::kBody) {
    return;
  }
  upstream_ended_ = true;
  if (head_delivered_) {
    if (!response_complete_ && eof) {
      ResponseReader::Result result = reader_.finish();
      if (phase_ == Phase::kDone) {
        return;
      }
      if (result.kind == ResponseReader::Result::Kind::kPaused && response_complete_) {
        if (body_until_eof_ && !clean_tls) {
          // Without close_notify an attacker (or a crash) could have cut the
          // body short, and nothing else marks its end.
          abortBody("the TLS connection to " + target_.authority.host +
                    " ended without close_notify; the body may be truncated");
          return;
        }
        complete();
        return;
      }
    }
    if (response_complete_) {
      complete();
      return;
    }
    abortBody(eof ? "the connection to " + target_.url + " closed in the middle of the body"
                  : target_.url + ": " + why);
    return;
  }
  std::string what;
  if (!eof) {
    what = why;
  } else if (reader_.started()) {
    what = "the connection closed in the middle of the response head";
  } else {
    what = "the connection closed without a response";
  }
  attemptFailed({AttemptOutcome::Kind::kTransport, 0, what}, "connection_terminated");
}

ResponseReader::HeadAction MirrorFetch::onResponseHead(const ResponseHead& head) {
  if (phase_ != Phase::kWaitingHead) {
    return ResponseReader::HeadAction::kPause;
  }
  if (head.status < 200) {
    return ResponseReader::HeadAction::kBody;  // interim: not passed on
  }
  if (head.status >= 400) {
    pending_outcome_ = rules::outcomeFromHttpStatus(head.status);
    pending_error_type_ = rules::isNotFoundClass(*pending_outcome_) ? "destination_not_found"
                                                                    : "destination_unavailable";
    return ResponseReader::HeadAction::kPause;
  }
  if (const std::string* te = head.headers.find("Transfer-Encoding");
      te != nullptr && !equalsIgnoreCase(*te, "chunked")) {
    // llhttp removes only the chunked framing; other codings would reach
    // the client undeclared.
    pending_outcome_ = AttemptOutcome{AttemptOutcome::Kind::kTransport, 0,
                                      "unsupported Transfer-Encoding \"" + *te + "\""};
    pending_error_type_ = "http_protocol_error";
    return ResponseReader::HeadAction::kPause;
  }
  // 2xx, and 3xx which the client follows itself: served.
  report(AttemptOutcome{AttemptOutcome::Kind::kSuccess, head.status, ""}, "");
  MirrorResponseInfo info;
  info.served_by = target_.url;
  info.next_hop = target_.entry;
  info.resolved = resolved_;
  info.direct = target_.direct;
  info.has_body = !(params_.method == "HEAD" || head.status == 204 || head.status == 304);
  if (reader_.hasContentLength() && !reader_.chunked()) {
    if (const std::string* cl = head.headers.find("Content-Length")) {
      uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
      if (ec == std::errc() && ptr == cl->data() + cl->size()) {
        info.content_length = n;
      }
    }
  }
  body_until_eof_ = info.has_body && reader_.bodyUntilEof();
  ResponseHead out = head;
  stripHopByHop(&out.headers);
  if (!info.content_length) {
    out.headers.remove("Content-Length");
  }
  head_delivered_ = true;
  phase_ = Phase::kBody;
  armTimer(TimerMode::kIdle);
  sink_->onMirrorHead(out, info);
  if (phase_ == Phase::kDone) {
    return ResponseReader::HeadAction::kPause;
  }
  return info.has_body ? ResponseReader::HeadAction::kBody : ResponseReader::HeadAction::kNoBody;
}

void MirrorFetch::onResponseBody(const char* at, size_t len) {
  if (phase_ != Phase::kBody || len == 0) {
    return;
  }
  body_bytes_ += len;
  sink_->onMirrorBody(current_block_, at, len);
}

void MirrorFetch::onResponseComplete() {
  response_complete_ = true;
}

void MirrorFetch::onTimer() {
  switch (timer_mode_) {
    case TimerMode::kNone:
      return;
    case TimerMode::kKick:
      timer_mode_ = TimerMode::kNone;
      step();
      return;
    case TimerMode::kHandshake:
      attemptFailed({AttemptOutcome::Kind::kTimeout, 0,
                     "TLS handshake with " + target_.authority.host +
                         " not finished within limits.connect_timeout (" +
                         durationText(params_.connect_timeout) + ")"},
                    "connection_timeout");
      return;
    case TimerMode::kResponse:
      attemptFailed({AttemptOutcome::Kind::kTimeout, 0,
                     "no response within limits.response_timeout (" +
                         durationText(params_.response_timeout) + ")"},
                    "connection_read_timeout");
      return;
    case TimerMode::kIdle: {
      uint64_t now = uv_now(rt_->loop());
      uint64_t limit = static_cast<uint64_t>(params_.idle_timeout.count());
      if (paused_) {
        // The client is slow, not the upstream; the owner's client-side
        // timers judge that.
        last_activity_ms_ = now;
      }
      if (now - last_activity_ms_ < limit) {
        startTimer<&MirrorFetch::onTimer, MirrorFetch>(&timer_, limit - (now - last_activity_ms_));
        return;
      }
      aborted_by_proxy_ = true;
      abortBody("no body data from " + target_.url + " within limits.idle_timeout (" +
                durationText(params_.idle_timeout) + ")");
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Endings.

void MirrorFetch::complete() {
  phase_ = Phase::kDone;
  // A cleanly ended keep-alive response leaves a connection worth keeping.
  if (tls_ != nullptr && rt_->pool != nullptr && response_complete_ && reader_.keepAlive() &&
      !body_until_eof_ && !surplus_ && !upstream_ended_) {
    rt_->pool->putTls(UpstreamPool::tlsKey(target_.authority, params_.tls_ctx), tls_, resolved_);
    tls_ = nullptr;
  }
  dropUpstream(/*graceful=*/true);
  Sink* sink = sink_;
  sink_ = nullptr;
  sink->onMirrorComplete();
  dispose();
}

void MirrorFetch::attemptFailed(AttemptOutcome outcome, const char* proxy_status_error) {
  if (reused_tls_ && !retried_fresh_ && outcome.kind == AttemptOutcome::Kind::kTransport &&
      !reader_.started() && !head_delivered_) {
    // The pooled connection died before answering (the server closed it
    // while it was idle): the same entry once more, on a fresh connection.
    retried_fresh_ = true;
    reused_tls_ = false;
    upstream_ended_ = false;
    dropUpstream(/*graceful=*/false);
    reader_.reset();
    armTimer(TimerMode::kNone);
    resolveTarget();
    return;
  }
  reused_tls_ = false;
  dropUpstream(/*graceful=*/outcome.status != 0);
  reader_.reset();
  pending_outcome_.reset();
  response_complete_ = false;
  body_until_eof_ = false;
  phase_ = Phase::kIdle;
  armTimer(TimerMode::kNone);
  report(outcome, proxy_status_error);
  step();
}

void MirrorFetch::finishWalk() {
  phase_ = Phase::kDone;
  // Steps the walk decided alone (`off` at the end) are in its attempts now.
  rebuildRecords();
  MirrorFailure failure = buildFailure();
  Sink* sink = sink_;
  sink_ = nullptr;
  sink->onMirrorFailed(failure);
  dispose();
}

void MirrorFetch::abortBody(const std::string& why) {
  phase_ = Phase::kDone;
  dropUpstream(/*graceful=*/false);
  // The served attempt keeps its status and gains the reason it broke.
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    if (it->next == "served") {
      it->error = "aborted after " + std::to_string(body_bytes_) + " body bytes: " + why;
      break;
    }
  }
  Sink* sink = sink_;
  sink_ = nullptr;
  sink->onMirrorAborted(why);
  dispose();
}

void MirrorFetch::cancel() {
  if (phase_ == Phase::kDone) {
    return;
  }
  phase_ = Phase::kDone;
  sink_ = nullptr;
  dropUpstream(/*graceful=*/false);
  dispose();
}

void MirrorFetch::dispose() {
  if (disposed_) {
    return;
  }
  disposed_ = true;
  phase_ = Phase::kDone;
  if (resolve_id_ != 0) {
    rt_->resolver->cancel(resolve_id_);
    resolve_id_ = 0;
  }
  if (connect_id_ != 0) {
    rt_->connector->cancel(connect_id_);
    connect_id_ = 0;
  }
  dropUpstream(/*graceful=*/false);
  uv_timer_stop(&timer_);
  timer_mode_ = TimerMode::kNone;
  closeHandle<&MirrorFetch::onHandleClosed, MirrorFetch>(asHandle(&timer_));
}

void MirrorFetch::onHandleClosed(uv_handle_t* handle) {
  if (handle != asHandle(&timer_)) {
    delete reinterpret_cast<uv_tcp_t*>(handle);
  }
  if (--handles_open_ == 0) {
    delete this;
  }
}

// ---------------------------------------------------------------------------
// Helpers.

void MirrorFetch::dropUpstream(bool graceful) {
  if (tls_ != nullptr) {
    // After close()/abort() the stream calls nothing of ours again and
    // frees itself.
    if (graceful) {
      tls_->close();
    } else {
      tls_->abort();
    }
    tls_ = nullptr;
  }
  if (plain_ != nullptr) {
    uv_read_stop(asStream(plain_));
    // The close callback comes here (data is still this) and deletes the
    // handle; pending write callbacks run before it, while we still exist.
    closeHandle<&MirrorFetch::onHandleClosed, MirrorFetch>(asHandle(plain_));
    plain_ = nullptr;
  }
  paused_ = false;
}

void MirrorFetch::pause() {
  if (phase_ == Phase::kDone || paused_) {
    return;
  }
  paused_ = true;
  if (tls_ != nullptr) {
    tls_->pauseReading();
  } else if (plain_ != nullptr) {
    uv_read_stop(asStream(plain_));
  }
}

void MirrorFetch::resume() {
  if (phase_ == Phase::kDone || !paused_) {
    return;
  }
  paused_ = false;
  last_activity_ms_ = uv_now(rt_->loop());
  if (tls_ != nullptr) {
    tls_->resumeReading();
  } else if (plain_ != nullptr) {
    startRead<&MirrorFetch::onPlainRead, MirrorFetch>(asStream(plain_));
  }
}

void MirrorFetch::armTimer(TimerMode mode) {
  timer_mode_ = mode;
  uint64_t ms = 0;
  switch (mode) {
    case TimerMode::kNone:
      uv_timer_stop(&timer_);
      return;
    case TimerMode::kKick:
      ms = 0;
      break;
    case TimerMode::kHandshake:
      ms = static_cast<uint64_t>(params_.connect_timeout.count());
      break;
    case TimerMode::kResponse:
      ms = static_cast<uint64_t>(params_.response_timeout.count());
      break;
    case TimerMode::kIdle:
      ms = static_cast<uint64_t>(params_.idle_timeout.count());
      last_activity_ms_ = uv_now(rt_->loop());
      break;
  }
  startTimer<&MirrorFetch::onTimer, MirrorFetch>(&timer_, ms);
}

void MirrorFetch::report(const AttemptOutcome& outcome, const char* proxy_status_error) {
  notes_.push_back({current_entry_, target_.url, proxy_status_error});
  walk_.report(outcome);
  rebuildRecords();
}

void MirrorFetch::rebuildRecords() {
  // The walk's attempts include steps decided without I/O (`off`, skipped
  // entries); the notes cover the ones we performed, in the same order.
  records_.clear();
  record_errors_.clear();
  size_t note = 0;
  for (const rules::GoproxyWalk::Attempt& attempt : walk_.attempts()) {
    AttemptRecord record;
    std::string type;
    if (note < notes_.size() && notes_[note].entry == attempt.entry) {
      record.url = notes_[note].url;
      type = notes_[note].proxy_status_error;
      ++note;
    } else {
      record.url = attempt.entry->kind == GoproxyEntry::Kind::kUrl
                       ? rules::maskUrlCredentials(attempt.entry->url)
                       : attempt.entry->url;
      type = rules::isNotFoundClass(attempt.outcome) ? "destination_not_found"
                                                     : "proxy_configuration_error";
    }
    if (attempt.outcome.status != 0) {
      record.status = attempt.outcome.status;
    } else if (!attempt.outcome.error.empty()) {
      record.error = attempt.outcome.error;
    }
    record.next = attempt.next;
    records_.push_back(std::move(record));
    record_errors_.push_back(std::move(type));
  }
}

MirrorFailure MirrorFetch::buildFailure() const {
  MirrorFailure failure;
  AttemptOutcome final_outcome = walk_.finalOutcome();
  failure.status = rules::moduleProxyStatus(final_outcome);
  if (records_.empty()) {
    // parseGoproxyList never yields an empty list; a hand-built one might.
    failure.status = 502;
    failure.reason = "Mirror failed";
    failure.proxy_status_error = "proxy_configuration_error";
    failure.details = "the mirror list has no entries";
    failure.body = "502 Mirror failed\n" + failure.details + "\n";
    return failure;
  }
  // The attempt the walk's ranking chose: the latest with that outcome.
  const auto& attempts = walk_.attempts();
  size_t decided = attempts.size() - 1;
  for (size_t i = attempts.size(); i-- > 0;) {
    const AttemptOutcome& o = attempts[i].outcome;
    if (o.kind == final_outcome.kind && o.status == final_outcome.status &&
        o.error == final_outcome.error) {
      decided = i;
      break;
    }
  }
  const AttemptRecord& record = records_[decided];
  failure.proxy_status_error = record_errors_[decided];
  failure.received_status = record.status;
  failure.next_hop = record.url;
  switch (failure.status) {
    case 404:
      failure.reason = "Not found on any mirror";
      break;
    case 504:
      failure.reason = "Mirror timeout";
      break;
    default:
      failure.reason = "Mirror failed";
      break;
  }
  failure.details = record.url + ": " + resultText(record);
  // No blank line: the go command shows an error body only up to the first
  // one, and the attempts are what its user needs to see.
  std::string body = std::to_string(failure.status) + " " + failure.reason + "\n";
  body += params_.method + " " + rules::maskUrlCredentials(params_.url.str()) + " was tried on " +
          std::to_string(records_.size()) + (records_.size() == 1 ? " entry" : " entries") +
          " of the mirror list \"" + maskList(params_.list.text) + "\":\n";
  for (size_t i = 0; i < records_.size(); ++i) {
    body += "  " + std::to_string(i + 1) + ". " + records_[i].url + ": " + resultText(records_[i]) +
            "; " + records_[i].next + "\n";
  }
  failure.body = std::move(body);
  return failure;
}

}  // namespace switchyard
