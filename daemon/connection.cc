// A client connection, in callback order.
//
// The parser is paused at two points of every request: after the head, so
// that the decision (and the connection to the next hop) exists before any
// body byte is consumed, and after the whole request, so that a pipelined
// next request waits until this one is answered. Bytes read past a pause
// wait in pending_input_. Client reads go on meanwhile (a soft pause:
// stopping and restarting them would cost two epoll_ctl calls per request)
// up to kMaxPendingInput, after which they really stop; that is our
// backpressure on clients that pipeline.
//
// Every answer of our own goes through respondError() and thus through
// recordError(); after it the connection closes (we do not try to skip an
// unread request body to keep it).
#include "daemon/connection.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <string_view>

#include "daemon/forward.h"
#include "daemon/goproxy_door.h"
#include "daemon/intercept.h"
#include "daemon/mirror_exchange.h"
#include "daemon/net_address.h"
#include "daemon/tunnel.h"
#include "rules/decision.h"

namespace switchyard {

namespace {

// After our final answer we stop sending (FIN) but keep reading for this
// long, discarding, before closing: closing with unread request bytes in
// the kernel buffer would send RST, and the client could lose the answer.
constexpr uint64_t kLingerMs = 2000;

std::string socketAddress(uv_tcp_t* tcp, bool peer) {
  sockaddr_storage addr{};
  int len = sizeof(addr);
  int rc = peer ? uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len)
                : uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) {
    return "?";
  }
  return formatAddress(reinterpret_cast<const sockaddr*>(&addr));
}

std::string ipOf(const std::string& address) {
  size_t colon = address.rfind(':');
  std::string ip = colon == std::string::npos ? address : address.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[') {
    ip = ip.substr(1, ip.size() - 2);
  }
  return ip;
}

ProxyError badRequest(std::string reason, std::string details) {
  ProxyError e;
  e.status = 400;
  e.reason = std::move(reason);
  e.kind = ProxyErrorKind::kHttpRequestError;
  e.details = std::move(details);
  return e;
}

}  // namespace

// ---------------------------------------------------------------------------
// Start and the read path.

void Connection::start(Runtime* rt, uv_tcp_t* client, bool allowed, const Accepted& accepted) {
  auto* conn = new Connection(rt, client, allowed, accepted);
  conn->startReading();
  conn->armHeaderTimer();
}

Connection::Connection(Runtime* rt, uv_tcp_t* client, bool allowed, const Accepted& accepted)
    : rt_(rt),
      config_(rt->config),
      client_(client),
      id_(rt->nextConnectionId()),
      client_allowed_(allowed) {
  client_->data = this;
  uv_timer_init(rt_->loop(), &timer_);
  timer_.data = this;
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
  client_addr_ = accepted.peer != nullptr ? formatAddress(accepted.peer)
                                          : socketAddress(client_, /*peer=*/true);
  client_ip_ = ipOf(client_addr_);
  via_token_ = !accepted.via_token.empty() ? accepted.via_token
                                           : viaToken(socketAddress(client_, /*peer=*/false));
  if (!accepted.nodelay) {
    uv_tcp_nodelay(client_, 1);
  }
  rt_->addSession(this);
  rt_->addClientConnection(client_ip_);
}

void Connection::onClientRead(ssize_t nread, BufferRef block) {
  if (nread == 0) {
    return;  // EAGAIN: nothing this time
  }
  if (soft_paused_) {
    holdInput(nread, block);
    return;
  }
  if (nread < 0) {
    // EOF or a reset. A half-sent request cannot be answered usefully, and
    // an exchange whose body was cut short must not be completed.
    if (exchange_ != nullptr) {
      Exchange* ex = exchange_;
      exchange_ = nullptr;
      ex->detach("client");
    }
    close();
    return;
  }
  if (phase_ == Phase::kResponding || phase_ == Phase::kClosing) {
    return;  // lingering after our answer: discard
  }
  feed(block.data(), static_cast<size_t>(nread));
}

void Connection::feed(const char* data, size_t len) {
  if (refused_ != Refused::kNone) {
    // llhttp stopped in the request line; only the bytes that tell how to
    // answer matter now.
    keepRefusedBytes(data, len);
    judgeRefusedLine();
    return;
  }
  keepLineStart(data, len);
  parsing_ = true;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  parsing_ = false;
  if (phase_ == Phase::kResponding || phase_ == Phase::kClosing) {
    return;  // a hook ended the request (e.g. the exchange failed)
  }
  const char* end = data + len;
  switch (err) {
    case HPE_OK:
      return;  // everything consumed; more is needed
    case HPE_PAUSED: {
      // Paused after a head or after a whole request: what follows is body
      // or the next (pipelined) request, kept until we get to it.
      const char* pos = llhttp_get_error_pos(&parser_);
      pending_input_.assign(pos, end);
      softPauseReading();
      if (next_request_deferred_) {
        next_request_deferred_ = false;
        nextRequest();
      } else if (!request_complete_ && head_complete_ && exchange_ == nullptr) {
        dispatchRequest();
      }
      return;
    }
    case HPE_PAUSED_UPGRADE: {
      const char* pos = llhttp_get_error_pos(&parser_);
      std::string leftover(pos, end);
      // Soft: a tunnel that takes the socket over keeps it reading, which
      // saves libuv's stop/restart (two epoll_ctl) on every CONNECT.
      softPauseReading();
      dispatchConnect(std::move(leftover));
      return;
    }
    case HPE_INVALID_METHOD:
    case HPE_INVALID_VERSION:
      refused_ = err == HPE_INVALID_METHOD ? Refused::kMethod : Refused::kVersion;
      if (refused_ == Refused::kVersion) {
        after_version_.assign(llhttp_get_error_pos(&parser_), end);
      }
      judgeRefusedLine();
      return;
    default:
      respondParseError(err);
      return;
  }
}

// ---------------------------------------------------------------------------
// A request line llhttp refused. llhttp knows a fixed list of methods and
// the versions 0.9, 1.0, 1.1 and 2.0; RFC 9110 wants 501 for a method that
// is a token we do not implement, 505 for a major version other than 1, and
// a higher 1.x read as 1.1. llhttp stops at the first byte it does not
// like, so what follows is judged from the bytes themselves, waiting for
// as many as the answer needs (the header timer still runs).

// The first bytes of the request, for a method llhttp refuses before
// handing it over. llhttp skips CR and LF before a request; so does this.
void Connection::keepLineStart(const char* data, size_t len) {
  size_t room = kMaxMethodBytes + 1 - std::min(line_start_.size(), kMaxMethodBytes + 1);
  if (head_complete_ || room == 0) {
    return;
  }
  std::string_view bytes(data, len);
  if (line_start_.empty()) {
    size_t first = bytes.find_first_not_of("\r\n");
    bytes.remove_prefix(first == std::string_view::npos ? bytes.size() : first);
  }
  line_start_.append(bytes.substr(0, room));
}

void Connection::keepRefusedBytes(const char* data, size_t len) {
  if (refused_ == Refused::kMethod) {
    keepLineStart(data, len);
  } else if (after_version_.size() < 2) {
    // All of it: if the version is read as 1.1, parsing goes on from here.
    after_version_.append(data, len);
  }
}

void Connection::judgeRefusedLine() {
  if (refused_ == Refused::kMethod) {
    judgeRefusedMethod();
  } else {
    judgeRefusedVersion();
  }
}

// RFC 9110 9.1: a method is a token; one we do not implement gets 501,
// anything else (a control byte, "G@T", a tab after the method) is 400.
void Connection::judgeRefusedMethod() {
  std::string_view line = line_start_;
  size_t run = 0;
  while (run < line.size() && isTchar(line[run])) {
    ++run;
  }
  bool ended = run < line.size();
  if (!ended && run <= kMaxMethodBytes) {
    return;  // the method goes on: wait
  }
  if (run == 0 || (ended && line[run] != ' ')) {
    respondParseError(HPE_INVALID_METHOD);
    return;
  }
  request_.method = std::string(line.substr(0, std::min(run, kMaxMethodBytes)));
  ProxyError e;
  e.status = 501;
  e.reason = "Not Implemented";
  e.kind = ProxyErrorKind::kHttpRequestError;
  e.details = "the method " + request_.method + (run > kMaxMethodBytes ? "..." : "") +
              " is not implemented";
  respondError(std::move(e), newRecord());
}

// RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF. When
// llhttp refuses the digits as a pair it has read "HTTP/" and them
// (version_), and stops right after them; it refuses a malformed version,
// or what follows an accepted one, at the offending byte.
void Connection::judgeRefusedVersion() {
  constexpr std::string_view kCrlf = "\r\n";
  bool digits = !version_accepted_ && version_.size() == 3 && version_[0] >= '0' &&
                version_[0] <= '9' && version_[1] == '.' && version_[2] >= '0' &&
                version_[2] <= '9';
  std::string_view after = after_version_;
  if (digits && after.size() < kCrlf.size() && kCrlf.starts_with(after)) {
    return;  // the line may still end right here: wait
  }
  if (!digits || !after.starts_with(kCrlf)) {
    respondParseError(HPE_INVALID_VERSION);
    return;
  }
  if (version_[0] == '1') {
    replayAsHttp11();  // RFC 9110 2.5: a higher minor version is read as 1.1
    return;
  }
  ProxyError e;
  e.status = 505;
  e.reason = "HTTP Version Not Supported";
  e.kind = ProxyErrorKind::kHttpRequestError;
  e.details = "HTTP/" + version_ + " is not supported in an HTTP/1 request line; send HTTP/1.1";
  request_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  respondError(std::move(e), newRecord());
}

// Parses the request again from the start with "HTTP/1.1" in place of the
// version llhttp refused: the method and target it read, then the bytes
// after the version.
void Connection::replayAsHttp11() {
  std::string input =
      std::string(llhttp_method_name(static_cast<llhttp_method_t>(parser_.method))) + " " +
      request_.target + " HTTP/1.1" + after_version_;
  request_ = RequestHead();
  field_.clear();
  value_.clear();
  version_.clear();
  version_accepted_ = false;
  line_start_.clear();
  after_version_.clear();
  head_bytes_ = 0;
  target_bytes_ = 0;
  refused_ = Refused::kNone;
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
  feed(input.data(), input.size());
}

// ---------------------------------------------------------------------------
// llhttp hooks.

const llhttp_settings_t* Connection::settings() {
  static const llhttp_settings_t table = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &Connection::onMessageBegin;
    s.on_url = &Connection::onUrl;
    s.on_version = &Connection::onVersion;
    s.on_version_complete = &Connection::onVersionComplete;
    s.on_header_field = &Connection::onHeaderField;
    s.on_header_value = &Connection::onHeaderValue;
    s.on_header_value_complete = &Connection::onHeaderValueComplete;
    s.on_headers_complete = &Connection::onHeadersComplete;
    s.on_body = &Connection::onBody;
    s.on_message_complete = &Connection::onMessageComplete;
    return s;
  }();
  return &table;
}

Connection* Connection::from(llhttp_t* parser) {
  return static_cast<Connection*>(parser->data);
}

int Connection::onMessageBegin(llhttp_t* parser) {
  Connection* self = from(parser);
  self->request_started_ = true;
  self->request_start_ms_ = uv_now(self->rt_->loop());
  // Between keep-alive requests the idle timer ran; from the first byte on,
  // the head must arrive within header_timeout.
  if (self->timer_mode_ == TimerMode::kIdle) {
    self->armHeaderTimer();
  }
  return 0;
}

bool Connection::countHeadBytes(size_t len) {
  head_bytes_ += len;
  if (head_bytes_ > config_->config().limits.max_header_bytes) {
    head_too_large_ = true;
    return false;
  }
  return true;
}

// The target counts on its own (414) and as part of the head (431); it
// comes first, so the head can only pass the limit during the target when
// the target alone does.
int Connection::onUrl(llhttp_t* parser, const char* at, size_t len) {
  Connection* self = from(parser);
  self->target_bytes_ += len;
  if (self->target_bytes_ > self->config_->config().limits.max_header_bytes) {
    self->target_too_long_ = true;
    return HPE_USER;
  }
  if (!self->countHeadBytes(len)) {
    return HPE_USER;
  }
  self->request_.target.append(at, len);
  return 0;
}

int Connection::onVersion(llhttp_t* parser, const char* at, size_t len) {
  Connection* self = from(parser);
  // "1.1": three bytes; a longer span is malformed anyway, and bounded here.
  if (self->version_.size() + len <= 8) {
    self->version_.append(at, len);
  }
  return 0;
}

int Connection::onVersionComplete(llhttp_t* parser) {
  from(parser)->version_accepted_ = true;
  return 0;
}

int Connection::onHeaderField(llhttp_t* parser, const char* at, size_t len) {
  Connection* self = from(parser);
  if (self->head_complete_) {
    return 0;  // trailer fields of a chunked body: dropped
  }
  // ": " and CRLF are counted once the field is complete: llhttp calls
  // this once per read a name spans, and the count must not depend on how
  // the head is cut into reads.
  if (!self->countHeadBytes(len)) {
    return HPE_USER;
  }
  self->field_.append(at, len);
  return 0;
}

int Connection::onHeaderValue(llhttp_t* parser, const char* at, size_t len) {
  Connection* self = from(parser);
  if (self->head_complete_) {
    return 0;
  }
  if (!self->countHeadBytes(len)) {
    return HPE_USER;
  }
  self->value_.append(at, len);
  return 0;
}

int Connection::onHeaderValueComplete(llhttp_t* parser) {
  Connection* self = from(parser);
  if (self->head_complete_) {
    return 0;
  }
  if (self->request_.headers.size() >= kMaxRequestFields) {
    self->too_many_fields_ = true;
    return HPE_USER;
  }
  if (!self->countHeadBytes(4)) {  // ": " and CRLF
    return HPE_USER;
  }
  // llhttp accepts "Name :" (whitespace before the colon), which RFC 9112
  // 5.1 says a server must reject: a field name is a token, nothing else.
  if (!isToken(self->field_)) {
    self->field_error_ = "invalid header field name";
    return HPE_USER;
  }
  self->request_.headers.add(std::move(self->field_), std::move(self->value_));
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int Connection::onHeadersComplete(llhttp_t* parser) {
  Connection* self = from(parser);
  self->head_complete_ = true;
  self->request_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
  self->request_.http_major = parser->http_major;
  self->request_.http_minor = parser->http_minor;
  if (parser->method == HTTP_CONNECT) {
    return 0;  // llhttp stops with HPE_PAUSED_UPGRADE right after the head
  }
  // Pause: the decision (and the next hop) must be ready before any body
  // byte is consumed.
  return HPE_PAUSED;
}

int Connection::onBody(llhttp_t* parser, const char* at, size_t len) {
  Connection* self = from(parser);
  if (self->exchange_ != nullptr) {
    self->exchange_->onRequestBody(at, len);
  }
  return 0;
}

int Connection::onMessageComplete(llhttp_t* parser) {
  Connection* self = from(parser);
  if (parser->method == HTTP_CONNECT) {
    return 0;
  }
  self->request_complete_ = true;
  if (self->exchange_ != nullptr) {
    self->exchange_->onRequestComplete();
  }
  // Pause: a pipelined next request waits until this one is answered.
  return HPE_PAUSED;
}

// ---------------------------------------------------------------------------
// Dispatch.

DecisionRecord Connection::newRecord() const {
  DecisionRecord record;
  record.conn = id_;
  record.client = client_addr_;
  record.method = request_.method;
  record.target = rules::maskUrlCredentials(request_.target);
  record.config_gen = config_->generation();
  record.bytes_in = head_bytes_;
  return record;
}

// An absolute-form (or other non-CONNECT) request head is complete. Checks
// run from the cheapest and least specific (who is asking, is it a loop, is
// it a request we forward at all) to the decision, whose answer is carried
// out by a ForwardExchange.
void Connection::dispatchRequest() {
  uv_timer_stop(&timer_);
  timer_mode_ = TimerMode::kNone;
  DecisionRecord record = newRecord();
  if (!client_allowed_) {
    ProxyError e;
    e.status = 403;
    e.reason = "Client not allowed";
    e.kind = ProxyErrorKind::kHttpRequestDenied;
    e.details = "client " + client_ip_ + " is not in access.allow_clients";
    record.rule = "access.allow_clients";
    respondError(std::move(e), std::move(record));
    return;
  }
  if (refusedMalformedHead(&record)) {
    return;
  }
  // An origin-form request is one for us as a GOPROXY server: the go
  // command sends its .netrc credentials as Authorization, not
  // Proxy-Authorization.
  bool origin_form =
      !request_.target.empty() && (request_.target.front() == '/' || request_.target == "*");
  if (!authenticated(origin_form ? AuthKind::kOrigin : AuthKind::kProxy, &record, nullptr)) {
    return;
  }
  if (viaHasToken(request_.headers, via_token_)) {
    ProxyError e;
    e.status = 508;
    e.reason = "Loop Detected";
    e.kind = ProxyErrorKind::kProxyLoopDetected;
    e.details = "the request already passed through this proxy (Via: " + via_token_ + ")";
    respondError(std::move(e), std::move(record));
    return;
  }
  const std::string& target = request_.target;
  if (origin_form) {
    dispatchGoproxy(std::move(record));
    return;
  }
  AbsoluteUrl url;
  std::string error;
  if (!parseAbsoluteUrl(target, &url, &error)) {
    respondError(badRequest("Bad request target", "request target: " + error), std::move(record));
    return;
  }
  if (url.had_userinfo) {
    // RFC 9110 4.2.4: credentials in a target are an error, not something
    // to drop and go on with.
    respondError(badRequest("Bad request target",
                            "request target: userinfo (\"user@\") is not allowed in an http URL"),
                 std::move(record));
    return;
  }
  record.host = url.authority.host;
  record.port = url.authority.port;
  if (url.scheme == "https") {
    respondError(badRequest("Use CONNECT for https",
                            "a request for an https:// URL arrived without CONNECT; clients "
                            "send https through a CONNECT tunnel (HTTPS_PROXY), switchyard "
                            "does not open TLS for them"),
                 std::move(record));
    return;
  }
  if (parser_.upgrade != 0) {
    ProxyError e;
    e.status = 501;
    e.reason = "Upgrade not supported";
    e.kind = ProxyErrorKind::kProxyInternalResponse;
    e.details =
        "protocol upgrades (Upgrade: " +
        std::string(request_.headers.find("Upgrade") ? *request_.headers.find("Upgrade") : "") +
        ") are not forwarded for plain http; use CONNECT";
    respondError(std::move(e), std::move(record));
    return;
  }

  rules::RequestFacts facts;
  facts.kind = rules::RequestKind::kAbsolute;
  facts.scheme = "http";
  facts.host = url.authority.host;
  facts.port = url.authority.port;
  facts.path = url.path;
  rules::addModuleFacts(&facts, *config_->snapshot);
  record.module = facts.module.value_or("");
  rules::Decision decision = rt_->decide(facts, *config_->snapshot);
  applyDecision(decision, &record);
  if (decision.leak_guard) {
    respondError(leakGuarded(decision, url.str()), std::move(record));
    return;
  }
  switch (decision.action) {
    case rules::Action::kDeny:
      respondError(deniedByRule(decision, url.str()), std::move(record));
      return;
    case rules::Action::kMirror: {
      bool has_body = (parser_.flags & F_CHUNKED) != 0 ||
                      ((parser_.flags & F_CONTENT_LENGTH) && parser_.content_length > 0);
      if (has_body || (request_.method != "GET" && request_.method != "HEAD")) {
        ProxyError e;
        e.status = 501;
        e.reason = "Mirror serves GET and HEAD only";
        e.kind = ProxyErrorKind::kProxyInternalResponse;
        e.details = "rule " + decision.rule + " (" + decision.source.str() +
                    ") sends this request to a mirror, which serves only GET and HEAD "
                    "requests without a body";
        respondError(std::move(e), std::move(record));
        return;
      }
      MirrorExchange::Params mp;
      mp.rt = rt_;
      mp.conn = this;
      mp.config = config_;
      mp.head = request_;
      mp.url = std::move(url);
      mp.decision = std::move(decision);
      mp.record = std::move(record);
      mp.start_ms = request_start_ms_;
      mp.client_keep_alive = llhttp_should_keep_alive(&parser_) != 0;
      mp.via_token = via_token_;
      phase_ = Phase::kForwarding;
      MirrorExchange* mirror = MirrorExchange::create(std::move(mp));
      exchange_ = mirror;
      mirror->begin();
      return;
    }
    case rules::Action::kDirect:
    case rules::Action::kUpstream:
      break;
  }
  ForwardExchange::Params params;
  params.rt = rt_;
  params.conn = this;
  params.config = config_;
  params.head = request_;
  params.url = std::move(url);
  params.decision = std::move(decision);
  params.record = std::move(record);
  params.start_ms = request_start_ms_;
  params.request_chunked = (parser_.flags & F_CHUNKED) != 0;
  params.request_has_body =
      params.request_chunked || ((parser_.flags & F_CONTENT_LENGTH) && parser_.content_length > 0);
  params.client_keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  params.via_token = via_token_;
  phase_ = Phase::kForwarding;
  ForwardExchange* forward = ForwardExchange::create(std::move(params));
  exchange_ = forward;
  forward->begin();
}

// An origin-form request: switchyard as a GOPROXY server (goproxy_door.h).
// The answer is carried by a MirrorExchange over the door's source.
void Connection::dispatchGoproxy(DecisionRecord record) {
  bool has_body = (parser_.flags & F_CHUNKED) != 0 ||
                  ((parser_.flags & F_CONTENT_LENGTH) && parser_.content_length > 0);
  if (has_body) {
    respondError(badRequest("Bad Request", "a GOPROXY request has no body"), std::move(record));
    return;
  }
  GoproxyDoor door = openGoproxyDoor(rt_, config_, request_, via_token_, &record);
  if (door.answer) {
    respondError(std::move(*door.answer), std::move(record));
    return;
  }
  MirrorExchange::Params mp;
  mp.rt = rt_;
  mp.conn = this;
  mp.config = config_;
  mp.head = request_;
  mp.record = std::move(record);
  mp.start_ms = request_start_ms_;
  mp.client_keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  mp.via_token = via_token_;
  mp.source = std::move(door.source);
  phase_ = Phase::kForwarding;
  MirrorExchange* exchange = MirrorExchange::create(std::move(mp));
  exchange_ = exchange;
  exchange->begin();
}

// A CONNECT head is complete; `leftover` is what the client sent after it
// (a pipelined TLS ClientHello), which belongs to the tunnel.
void Connection::dispatchConnect(std::string leftover) {
  uv_timer_stop(&timer_);
  timer_mode_ = TimerMode::kNone;
  DecisionRecord record = newRecord();
  if (!client_allowed_) {
    ProxyError e;
    e.status = 403;
    e.reason = "Client not allowed";
    e.kind = ProxyErrorKind::kHttpRequestDenied;
    e.details = "client " + client_ip_ + " is not in access.allow_clients";
    record.rule = "access.allow_clients";
    respondError(std::move(e), std::move(record));
    return;
  }
  if (refusedMalformedHead(&record)) {
    return;
  }
  if (!authenticated(AuthKind::kProxy, &record, &leftover)) {
    return;
  }
  if (viaHasToken(request_.headers, via_token_)) {
    ProxyError e;
    e.status = 508;
    e.reason = "Loop Detected";
    e.kind = ProxyErrorKind::kProxyLoopDetected;
    e.details = "the request already passed through this proxy (Via: " + via_token_ + ")";
    respondError(std::move(e), std::move(record));
    return;
  }
  Authority target;
  std::string error;
  if (!parseAuthorityForm(request_.target, &target, &error)) {
    respondError(badRequest("Bad CONNECT target", "CONNECT " + request_.target + ": " + error),
                 std::move(record));
    return;
  }
  record.host = target.host;
  record.port = target.port;

  rules::RequestFacts facts;
  facts.kind = rules::RequestKind::kConnect;
  facts.scheme = "https";
  facts.host = target.host;
  facts.port = target.port;
  rules::Decision decision = rt_->decide(facts, *config_->snapshot);
  applyDecision(decision, &record);
  if (decision.action == rules::Action::kDeny) {
    respondError(deniedByRule(decision, "CONNECT " + target.str()), std::move(record));
    return;
  }
  const std::vector<uint16_t>& ports = config_->config().access.connect_ports;
  if (std::find(ports.begin(), ports.end(), target.port) == ports.end()) {
    ProxyError e;
    e.status = 403;
    e.reason = "Port " + std::to_string(target.port) + " not allowed";
    e.kind = ProxyErrorKind::kHttpRequestDenied;
    std::string allowed;
    for (uint16_t p : ports) {
      allowed += (allowed.empty() ? "" : ", ") + std::to_string(p);
    }
    e.details = "CONNECT to port " + std::to_string(target.port) +
                " refused: access.connect_ports allows " + (allowed.empty() ? "none" : allowed);
    record.rule = "access.connect_ports";
    respondError(std::move(e), std::move(record));
    return;
  }
  if (decision.intercept) {
    InterceptSession::Params ip;
    ip.rt = rt_;
    ip.config = config_;
    ip.client = client_;
    ip.client_ip = client_ip_;
    ip.leftover = std::move(leftover) + takePendingInput();
    ip.target = std::move(target);
    ip.record = std::move(record);
    ip.start_ms = request_start_ms_;
    ip.via_token = via_token_;
    // From here the client socket belongs to the session; this object only
    // closes its timer and goes away.
    client_ = nullptr;
    phase_ = Phase::kHandedOff;
    InterceptSession::start(std::move(ip));
    close();
    return;
  }
  if (decision.action == rules::Action::kMirror) {
    ProxyError e;
    e.status = 501;
    e.reason = "Interception not implemented";
    e.kind = ProxyErrorKind::kProxyConfigurationError;
    e.details = "rule " + decision.rule + " (" + decision.source.str() +
                ") intercepts this tunnel, which is not implemented yet";
    respondError(std::move(e), std::move(record));
    return;
  }

  Tunnel::Params params;
  params.rt = rt_;
  params.config = config_;
  params.client = client_;
  params.client_ip = client_ip_;
  params.leftover = std::move(leftover) + takePendingInput();
  // Still reading (soft-paused): the tunnel takes the reads over as they are.
  params.client_reading = reading_ && soft_paused_;
  params.target = std::move(target);
  params.decision = std::move(decision);
  params.record = std::move(record);
  params.start_ms = request_start_ms_;
  params.via_token = via_token_;
  // From here the client socket belongs to the tunnel; this object only
  // closes its timer and goes away.
  client_ = nullptr;
  phase_ = Phase::kHandedOff;
  Tunnel::start(std::move(params));
  close();
}

bool Connection::refusedMalformedHead(DecisionRecord* record) {
  std::optional<HeadProblem> problem = checkRequestHead(request_, version_accepted_);
  if (!problem && parser_.method != HTTP_CONNECT &&
      request_.headers.count("Transfer-Encoding") > 0 && (parser_.flags & F_CHUNKED) == 0) {
    // checkRequestHead found chunked final, llhttp did not: never forward
    // a body two parsers frame differently.
    problem = HeadProblem{400, "Bad Request", "Transfer-Encoding not read as chunked"};
  }
  if (!problem) {
    return false;
  }
  ProxyError e;
  e.status = problem->status;
  e.reason = std::move(problem->reason);
  e.kind = ProxyErrorKind::kHttpRequestError;
  e.details = std::move(problem->details);
  respondError(std::move(e), std::move(*record));
  return true;
}

// Runs before anything about the request is looked at beyond who sent it,
// so that an unauthenticated client learns nothing of the rules. A
// verification costs a scrypt (tens of milliseconds), so unless the
// database remembers this pair it runs on libuv's thread pool; reading is
// already stopped (the parser paused after the head), and the dispatch
// starts over from the top when the answer comes.
bool Connection::authenticated(AuthKind kind, DecisionRecord* record, std::string* leftover) {
  // Unlike the rules, the users come from the current config, not the one
  // this connection started with: a user removed by a reload is refused
  // from their next request on, also on a keep-alive connection.
  UserDbPtr users = rt_->config->users;
  if (users == nullptr) {
    return true;
  }
  if (auth_verified_) {
    record->user = auth_user_;
    return true;
  }
  std::string user;
  std::string password;
  AuthFailure failure = AuthFailure::kMissing;
  if (!extractCredentials(request_.headers, kind, &user, &password, &failure)) {
    record->rule = "access.users_file";
    respondError(authenticationError(kind, failure), std::move(*record));
    return false;
  }
  if (users->verifyCached(user, password)) {
    OPENSSL_cleanse(password.data(), password.size());
    auth_verified_ = true;
    auth_user_ = std::move(user);
    record->user = auth_user_;
    return true;
  }
  bool connect = leftover != nullptr;
  if (connect) {
    auth_leftover_ = std::move(*leftover);
  }
  // The job takes the password and wipes its copy when it ends.
  auth_job_ = AuthJob::start(rt_->loop(), users, user, std::move(password),
                             [this, kind, user, connect](bool ok) {
                               auth_job_ = nullptr;
                               onAuthVerified(ok, kind, user, connect);
                             });
  if (auth_job_ == nullptr) {
    ProxyError e;
    e.status = 503;
    e.reason = "Cannot verify credentials";
    e.kind = ProxyErrorKind::kProxyInternalResponse;
    e.details = "the credential check could not be started; try again";
    record->rule = "access.users_file";
    respondError(std::move(e), std::move(*record));
  }
  return false;
}

void Connection::onAuthVerified(bool ok, AuthKind kind, std::string user, bool connect) {
  if (phase_ == Phase::kClosing) {
    return;  // not expected: close() cancels the job
  }
  if (!ok) {
    DecisionRecord record = newRecord();
    record.rule = "access.users_file";
    respondError(authenticationError(kind, AuthFailure::kRejected), std::move(record));
    return;
  }
  auth_verified_ = true;
  auth_user_ = std::move(user);
  if (connect) {
    dispatchConnect(std::move(auth_leftover_));
  } else {
    dispatchRequest();
  }
}

// ---------------------------------------------------------------------------
// Answers and the exchange's interface.

void Connection::respondError(ProxyError error, DecisionRecord record) {
  bool head_only = request_.method == "HEAD";
  std::string bytes = recordError(error, /*close=*/true, head_only, &record);
  record.bytes_out = bytes.size();
  record.duration_ms = uv_now(rt_->loop()) - request_start_ms_;
  record.closed_by = "proxy";
  rt_->writeDecision(record);
  phase_ = Phase::kResponding;
  stopReading();
  writeToClient(makeWrite(std::move(bytes)));
  closeAfterWrites();
}

void Connection::respondParseError(llhttp_errno_t err) {
  DecisionRecord record = newRecord();
  const rules::LimitsConfig& limits = config_->config().limits;
  if (target_too_long_) {
    ProxyError e;
    e.status = 414;
    e.reason = "URI Too Long";
    e.kind = ProxyErrorKind::kHttpRequestError;
    e.details = "the request-target exceeds limits.max_header_bytes (" +
                std::to_string(limits.max_header_bytes) + " bytes)";
    respondError(std::move(e), std::move(record));
    return;
  }
  if (head_too_large_ || too_many_fields_) {
    ProxyError e;
    e.status = 431;
    e.reason = "Request Header Fields Too Large";
    e.kind = ProxyErrorKind::kHttpRequestError;
    e.details = head_too_large_ ? "the request head exceeds limits.max_header_bytes (" +
                                      std::to_string(limits.max_header_bytes) + " bytes)"
                                : "the request has more than " + std::to_string(kMaxRequestFields) +
                                      " header fields";
    respondError(std::move(e), std::move(record));
    return;
  }
  std::string why = !field_error_.empty() ? field_error_
                                          : std::string(llhttp_errno_name(err)) + ": " +
                                                llhttp_get_error_reason(&parser_);
  if (exchange_ != nullptr) {
    // The body was malformed midway (e.g. a bad chunk size): the exchange
    // answers (or aborts) and logs; we close afterwards.
    Exchange* ex = exchange_;
    ex->onRequestBodyError("malformed request body: " + why);
    return;
  }
  respondError(badRequest("Bad Request", "malformed request: " + why), std::move(record));
}

void Connection::writeToClient(WriteRequest* w) {
  if (client_ == nullptr || phase_ == Phase::kClosing) {
    delete w;
    return;
  }
  ++writes_pending_;
  if (submitWrite<&Connection::onClientWritten, Connection>(asStream(client_), this, w) != 0) {
    --writes_pending_;
    // The socket is already broken. Close from the timer, not here: the
    // caller is in the middle of its own work.
    timer_mode_ = TimerMode::kBroken;
    startTimer<&Connection::onTimer, Connection>(&timer_, 0);
  }
}

size_t Connection::clientWriteQueueSize() const {
  return client_ == nullptr ? 0 : uv_stream_get_write_queue_size(asStream(client_));
}

void Connection::onClientWritten(int status, size_t) {
  --writes_pending_;
  if (phase_ == Phase::kClosing) {
    return;
  }
  if (status < 0) {
    if (exchange_ != nullptr) {
      Exchange* ex = exchange_;
      exchange_ = nullptr;
      ex->detach("client");
    }
    close();
    return;
  }
  if (exchange_ != nullptr) {
    exchange_->onClientWritten();
  }
  if (close_after_writes_ && writes_pending_ == 0) {
    lingerClose();
  }
}

void Connection::resumeRequestBody() {
  body_flowing_ = true;
  llhttp_resume(&parser_);
  std::string input = std::move(pending_input_);
  pending_input_.clear();
  // Fed even when empty: a request without a body completes right here.
  feed(input.data(), input.size());
  if (phase_ == Phase::kForwarding && !request_complete_ && !throttled_) {
    startReading();
  }
}

void Connection::pauseClientReads() {
  throttled_ = true;
  stopReading();
}

void Connection::resumeClientReads() {
  throttled_ = false;
  if (phase_ == Phase::kForwarding && body_flowing_ && !request_complete_) {
    startReading();
  }
}

void Connection::exchangeFinished(bool keep_client) {
  exchange_ = nullptr;
  if (phase_ == Phase::kClosing) {
    return;
  }
  if (!keep_client || draining_ || !request_complete_) {
    phase_ = Phase::kResponding;
    stopReading();
    closeAfterWrites();
    return;
  }
  if (parsing_) {
    // The exchange ended inside one of our llhttp hooks (the response was
    // complete before the request body was): the parser must not be
    // re-entered, so the next request starts once llhttp_execute returns.
    next_request_deferred_ = true;
    return;
  }
  nextRequest();
}

void Connection::abortClient() {
  exchange_ = nullptr;
  close();
}

// Back to reading a head after a keep-alive exchange; a pipelined request
// that already arrived is parsed right away.
void Connection::nextRequest() {
  phase_ = Phase::kReadingHead;
  request_ = RequestHead();
  // Each request brings its own credentials (a cached pair costs an HMAC).
  auth_verified_ = false;
  auth_user_.clear();
  field_.clear();
  value_.clear();
  field_error_.clear();
  head_bytes_ = 0;
  target_bytes_ = 0;
  version_.clear();
  version_accepted_ = false;
  refused_ = Refused::kNone;
  line_start_.clear();
  after_version_.clear();
  request_started_ = false;
  head_complete_ = false;
  request_complete_ = false;
  body_flowing_ = false;
  throttled_ = false;
  head_too_large_ = false;
  target_too_long_ = false;
  too_many_fields_ = false;
  llhttp_resume(&parser_);
  armIdleTimer();
  if (!pending_input_.empty()) {
    std::string input = std::move(pending_input_);
    pending_input_.clear();
    feed(input.data(), input.size());
  }
  if (phase_ == Phase::kReadingHead) {
    startReading();
  }
}

// ---------------------------------------------------------------------------
// Timers, drain and close.

void Connection::armHeaderTimer() {
  timer_mode_ = TimerMode::kHeader;
  auto ms = static_cast<uint64_t>(config_->config().limits.header_timeout.count());
  startTimer<&Connection::onTimer, Connection>(&timer_, ms);
}

void Connection::armIdleTimer() {
  timer_mode_ = TimerMode::kIdle;
  auto ms = static_cast<uint64_t>(config_->config().limits.idle_timeout.count());
  startTimer<&Connection::onTimer, Connection>(&timer_, ms);
}

void Connection::onTimer() {
  TimerMode mode = timer_mode_;
  timer_mode_ = TimerMode::kNone;
  switch (mode) {
    case TimerMode::kHeader:
      if (phase_ != Phase::kReadingHead) {
        return;
      }
      if (!request_started_) {
        close();  // sent nothing at all: no answer, no log line
        return;
      }
      {
        ProxyError e;
        e.status = 408;
        e.reason = "Request Timeout";
        e.kind = ProxyErrorKind::kHttpRequestError;
        e.details = "the request head did not arrive within limits.header_timeout (" +
                    durationText(config_->config().limits.header_timeout) + ")";
        respondError(std::move(e), newRecord());
      }
      return;
    case TimerMode::kIdle:
      if (phase_ == Phase::kReadingHead && !request_started_) {
        close();
      }
      return;
    case TimerMode::kWrite:
    case TimerMode::kLinger:
    case TimerMode::kBroken:
      if (exchange_ != nullptr) {
        Exchange* ex = exchange_;
        exchange_ = nullptr;
        ex->detach("client");
      }
      close();
      return;
    case TimerMode::kNone:
      return;
  }
}

void Connection::closeAfterWrites() {
  close_after_writes_ = true;
  if (writes_pending_ == 0) {
    lingerClose();
    return;
  }
  // A client that does not read its answer is not waited for forever.
  timer_mode_ = TimerMode::kWrite;
  auto ms = static_cast<uint64_t>(config_->config().limits.idle_timeout.count());
  startTimer<&Connection::onTimer, Connection>(&timer_, ms);
}

void Connection::lingerClose() {
  if (lingering_ || phase_ == Phase::kClosing || client_ == nullptr) {
    return;
  }
  lingering_ = true;
  shutdown_req_.data = this;
  int rc = uv_shutdown(&shutdown_req_, asStream(client_), [](uv_shutdown_t* req, int status) {
    static_cast<Connection*>(req->data)->onShutdown(status);
  });
  if (rc != 0) {
    close();
    return;
  }
  timer_mode_ = TimerMode::kLinger;
  startTimer<&Connection::onTimer, Connection>(&timer_, kLingerMs);
}

void Connection::onShutdown(int status) {
  if (phase_ == Phase::kClosing) {
    return;
  }
  if (status < 0) {
    close();
    return;
  }
  // Read (and discard) until the client closes its side or the linger
  // timer fires.
  startReading();
}

void Connection::drain() {
  draining_ = true;
  if (phase_ == Phase::kReadingHead && !request_started_) {
    close();
  }
}

void Connection::abort() {
  if (exchange_ != nullptr) {
    Exchange* ex = exchange_;
    exchange_ = nullptr;
    ex->detach("proxy");
  }
  close();
}

// Where the old stop/start pair restarted reading. An end the soft pause
// held back is acted on here, where reading again would have found it.
void Connection::startReading() {
  soft_paused_ = false;
  if (client_ == nullptr || phase_ == Phase::kClosing) {
    return;
  }
  if (deferred_end_ != 0) {
    ssize_t end = deferred_end_;
    deferred_end_ = 0;
    onClientRead(end, BufferRef());
    return;
  }
  if (reading_) {
    return;
  }
  if (startRead<&Connection::onClientRead, Connection>(asStream(client_)) == 0) {
    reading_ = true;
  }
}

void Connection::stopReading() {
  soft_paused_ = false;
  if (reading_ && client_ != nullptr) {
    uv_read_stop(asStream(client_));
  }
  reading_ = false;
}

// Bytes that arrived after a CONNECT head while it was being dispatched
// (soft pause, or an authentication on the thread pool) go with the socket.
std::string Connection::takePendingInput() {
  std::string bytes = std::move(pending_input_);
  pending_input_.clear();
  return bytes;
}

void Connection::softPauseReading() {
  soft_paused_ = reading_;
}

void Connection::writeToClientNow(WriteRequest* w) {
  if (client_ != nullptr && phase_ != Phase::kClosing && writeNow(asStream(client_), w)) {
    delete w;
    return;
  }
  writeToClient(w);
}

// A read while soft-paused: kept for the parser, up to a bound.
void Connection::holdInput(ssize_t nread, const BufferRef& block) {
  if (nread < 0) {
    // libuv has stopped reading by itself.
    reading_ = false;
    soft_paused_ = false;
    deferred_end_ = nread;
    return;
  }
  pending_input_.append(block.data(), static_cast<size_t>(nread));
  if (pending_input_.size() >= kMaxPendingInput) {
    stopReading();
  }
}

void Connection::close() {
  if (phase_ == Phase::kClosing) {
    return;
  }
  handed_off_ = phase_ == Phase::kHandedOff;
  phase_ = Phase::kClosing;
  if (exchange_ != nullptr) {
    Exchange* ex = exchange_;
    exchange_ = nullptr;
    ex->detach("client");
  }
  if (auth_job_ != nullptr) {
    auth_job_->cancel();  // frees itself once its worker is done, without calling us
    auth_job_ = nullptr;
  }
  reading_ = false;
  if (client_ != nullptr) {
    ++pending_closes_;
    closeHandle<&Connection::onHandleClosed, Connection>(asHandle(client_));
  }
  ++pending_closes_;
  closeHandle<&Connection::onHandleClosed, Connection>(asHandle(&timer_));
}

void Connection::onHandleClosed(uv_handle_t* handle) {
  if (client_ != nullptr && handle == asHandle(client_)) {
    delete client_;
    client_ = nullptr;
  }
  if (--pending_closes_ > 0) {
    return;
  }
  if (!handed_off_) {
    rt_->removeClientConnection(client_ip_);
  }
  // Unregister first: the last session leaving may finish a drain, which
  // must not find this object half-destroyed.
  rt_->removeSession(this);
  delete this;
}

}  // namespace switchyard
