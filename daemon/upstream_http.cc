#include "daemon/upstream_http.h"

#include <cstdio>
#include <memory>

#include <cassert>

namespace switchyard {

namespace {

// More fields than any sane response carries; a bound so that a hostile
// origin cannot make us build an unbounded list (Node uses 2000 as a
// default; ours is lower because heads are also bounded in bytes).
constexpr size_t kMaxResponseFields = 256;

}  // namespace

// ---------------------------------------------------------------------------
// ResponseReader

ResponseReader::ResponseReader(Listener* listener, size_t max_head_bytes)
    : listener_(listener), max_head_bytes_(max_head_bytes) {
  llhttp_init(&parser_, HTTP_RESPONSE, settings());
  parser_.data = this;
}

const llhttp_settings_t* ResponseReader::settings() {
  static const llhttp_settings_t table = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &ResponseReader::onMessageBegin;
    s.on_status = &ResponseReader::onStatus;
    s.on_header_field = &ResponseReader::onHeaderField;
    s.on_header_value = &ResponseReader::onHeaderValue;
    s.on_header_value_complete = &ResponseReader::onHeaderValueComplete;
    s.on_headers_complete = &ResponseReader::onHeadersComplete;
    s.on_body = &ResponseReader::onBody;
    s.on_message_complete = &ResponseReader::onMessageComplete;
    return s;
  }();
  return &table;
}

ResponseReader* ResponseReader::from(llhttp_t* parser) {
  return static_cast<ResponseReader*>(parser->data);
}

void ResponseReader::reset() {
  llhttp_init(&parser_, HTTP_RESPONSE, settings());
  parser_.data = this;
  head_ = ResponseHead();
  field_.clear();
  value_.clear();
  head_bytes_ = 0;
  head_too_large_ = false;
  head_seen_ = false;
  started_ = false;
  in_body_ = false;
  interim_ = false;
  complete_ = false;
  no_body_ = false;
}

bool ResponseReader::keepAlive() const {
  return llhttp_should_keep_alive(&parser_) != 0;
}

bool ResponseReader::chunked() const {
  return (parser_.flags & F_CHUNKED) != 0;
}

bool ResponseReader::hasContentLength() const {
  return (parser_.flags & F_CONTENT_LENGTH) != 0;
}

bool ResponseReader::bodyUntilEof() const {
  return !no_body_ && llhttp_message_needs_eof(&parser_) != 0;
}

ResponseReader::Result ResponseReader::feed(const char* data, size_t len) {
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  return resultOf(err, data, len);
}

ResponseReader::Result ResponseReader::finish() {
  Result result;
  if (complete_) {
    result.kind = Result::Kind::kPaused;
    return result;
  }
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_PAUSED || complete_) {
    result.kind = Result::Kind::kPaused;
    return result;
  }
  if (err == HPE_OK) {
    // Nothing was in progress: the caller tells "closed before responding"
    // apart from a complete response by started().
    result.kind = started_ ? Result::Kind::kError : Result::Kind::kNeedMore;
    if (started_) {
      result.error = "connection closed in the middle of the response";
    }
    return result;
  }
  result.kind = Result::Kind::kError;
  result.error = "connection closed in the middle of the response";
  return result;
}

ResponseReader::Result ResponseReader::resultOf(llhttp_errno_t err, const char* data, size_t len) {
  Result result;
  switch (err) {
    case HPE_OK:
      result.kind = Result::Kind::kNeedMore;
      result.consumed = len;
      return result;
    case HPE_PAUSED:
      result.kind = Result::Kind::kPaused;
      result.consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      return result;
    case HPE_PAUSED_UPGRADE:
      result.kind = Result::Kind::kError;
      result.error = "unexpected protocol switch (status " + std::to_string(head_.status) + ")";
      return result;
    default:
      result.kind = Result::Kind::kError;
      result.head_too_large = head_too_large_;
      result.error = head_too_large_
                         ? "response head larger than " + std::to_string(max_head_bytes_) + " bytes"
                         : std::string("malformed response: ") + llhttp_errno_name(err) + " (" +
                               llhttp_get_error_reason(&parser_) + ")";
      return result;
  }
}

bool ResponseReader::countHeadBytes(size_t len) {
  head_bytes_ += len;
  if (head_bytes_ > max_head_bytes_) {
    head_too_large_ = true;
    return false;
  }
  return true;
}

int ResponseReader::onMessageBegin(llhttp_t* parser) {
  ResponseReader* self = from(parser);
  self->started_ = true;
  self->head_ = ResponseHead();
  self->head_bytes_ = 0;
  self->in_body_ = false;
  self->interim_ = false;
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int ResponseReader::onStatus(llhttp_t* parser, const char* at, size_t len) {
  ResponseReader* self = from(parser);
  if (!self->countHeadBytes(len)) {
    return HPE_USER;
  }
  self->head_.reason.append(at, len);
  return 0;
}

int ResponseReader::onHeaderField(llhttp_t* parser, const char* at, size_t len) {
  ResponseReader* self = from(parser);
  if (self->in_body_) {
    return 0;  // trailer fields: dropped (Trailer is hop-by-hop for us)
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

int ResponseReader::onHeaderValue(llhttp_t* parser, const char* at, size_t len) {
  ResponseReader* self = from(parser);
  if (self->in_body_) {
    return 0;
  }
  if (!self->countHeadBytes(len)) {
    return HPE_USER;
  }
  self->value_.append(at, len);
  return 0;
}

int ResponseReader::onHeaderValueComplete(llhttp_t* parser) {
  ResponseReader* self = from(parser);
  if (self->in_body_) {
    return 0;
  }
  if (self->head_.headers.size() >= kMaxResponseFields || !isToken(self->field_)) {
    self->head_too_large_ = self->head_.headers.size() >= kMaxResponseFields;
    return HPE_USER;
  }
  if (!self->countHeadBytes(4)) {  // ": " and CRLF
    return HPE_USER;
  }
  self->head_.headers.add(std::move(self->field_), std::move(self->value_));
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int ResponseReader::onHeadersComplete(llhttp_t* parser) {
  ResponseReader* self = from(parser);
  self->head_.status = parser->status_code;
  self->head_.http_major = parser->http_major;
  self->head_.http_minor = parser->http_minor;
  if (parser->status_code >= 100 && parser->status_code < 200 && parser->status_code != 101) {
    // An interim response (100 Continue, 103 Early Hints): reported, never
    // has a body, and the final response follows on the same stream.
    self->interim_ = true;
    self->listener_->onResponseHead(self->head_);
    return 1;
  }
  if (parser->status_code == 101) {
    // We never forward Upgrade, so a switch of protocols is a broken or
    // hostile next hop; llhttp would otherwise report it as a complete
    // response followed by opaque bytes.
    return -1;
  }
  self->head_seen_ = true;
  self->in_body_ = true;
  // RFC 9110 6.4.1: 204 and 304 never have a body, whatever Content-Length
  // says (a 304 carries the length of the representation it validates);
  // llhttp 8 would wait for that many bytes.
  bool bodyless = parser->status_code == 204 || parser->status_code == 304;
  switch (self->listener_->onResponseHead(self->head_)) {
    case HeadAction::kBody:
      if (bodyless) {
        self->no_body_ = true;
        return 1;
      }
      return 0;
    case HeadAction::kNoBody:
      self->no_body_ = true;
      return 1;
    case HeadAction::kPause:
      return HPE_PAUSED;
  }
  return 0;
}

int ResponseReader::onBody(llhttp_t* parser, const char* at, size_t len) {
  from(parser)->listener_->onResponseBody(at, len);
  return 0;
}

int ResponseReader::onMessageComplete(llhttp_t* parser) {
  ResponseReader* self = from(parser);
  if (self->interim_) {
    self->interim_ = false;
    self->started_ = false;
    return 0;
  }
  self->complete_ = true;
  self->listener_->onResponseComplete();
  return HPE_PAUSED;
}

// ---------------------------------------------------------------------------
// UpstreamPool

void setUpstreamReader(uv_tcp_t* tcp, UpstreamReader* reader) {
  tcp->data = reader;
}

int startUpstreamRead(uv_tcp_t* tcp) {
  return uv_read_start(
      asStream(tcp), &allocReadBuffer, [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        BufferRef block = BufferRef::fromReadBuf(buf);
        static_cast<UpstreamReader*>(s->data)->onUpstreamRead(nread, std::move(block));
      });
}

UpstreamPool::UpstreamPool(uv_loop_t* loop, std::chrono::milliseconds idle_timeout)
    : loop_(loop), idle_timeout_ms_(static_cast<uint64_t>(idle_timeout.count())) {
  uv_timer_init(loop_, &sweep_);
  sweep_.data = this;
  // The sweep timer alone must not keep the loop running.
  uv_unref(asHandle(&sweep_));
}

UpstreamPool::~UpstreamPool() {
  assert(closed_ && timer_closed_);
}

void UpstreamPool::setLimits(size_t per_key, size_t total) {
  max_per_key_ = per_key;
  max_total_ = total;
}

UpstreamPool::Entry* UpstreamPool::popIdle(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) {
    return nullptr;
  }
  Entry* entry = it->second.front();
  it->second.pop_front();
  if (it->second.empty()) {
    idle_.erase(it);
  }
  --total_;
  return entry;
}

uv_tcp_t* UpstreamPool::take(const std::string& key, UpstreamReader* reader,
                             sockaddr_storage* peer) {
  std::unique_ptr<Entry> entry(popIdle(key));
  if (entry == nullptr) {
    return nullptr;
  }
  uv_tcp_t* tcp = entry->tcp;
  setUpstreamReader(tcp, reader);
  *peer = entry->tcp_peer;
  return tcp;
}

TlsStream* UpstreamPool::takeTls(const std::string& key, std::string* peer) {
  std::unique_ptr<Entry> entry(popIdle(key));
  if (entry == nullptr) {
    return nullptr;
  }
  *peer = std::move(entry->peer);
  return entry->tls;
}

std::string UpstreamPool::tlsKey(const Authority& target, const SSL_CTX* ctx) {
  char ctx_id[32];
  std::snprintf(ctx_id, sizeof ctx_id, "%p", static_cast<const void*>(ctx));
  return "tls|" + target.str() + "|" + ctx_id;
}

// Idle connections are read from while they wait: libuv then tells us at
// once when the other side closes (or misbehaves), and the connection is
// dropped before a request could be lost on it.
void UpstreamPool::put(const std::string& key, uv_tcp_t* tcp, const sockaddr_storage& peer,
                       bool reading) {
  auto* entry = new Entry();
  entry->pool = this;
  entry->key = key;
  entry->tcp = tcp;
  entry->tcp_peer = peer;
  entry->reading = reading;
  keep(entry);
}

void UpstreamPool::putTls(const std::string& key, TlsStream* stream, std::string peer) {
  auto* entry = new Entry();
  entry->pool = this;
  entry->key = key;
  entry->tls = stream;
  entry->peer = std::move(peer);
  keep(entry);
}

void UpstreamPool::keep(Entry* entry) {
  auto& list = idle_[entry->key];
  bool ok = !closed_ && total_ < max_total_ && list.size() < max_per_key_;
  if (ok && entry->tcp != nullptr) {
    setUpstreamReader(entry->tcp, entry);
    ok = entry->reading || startUpstreamRead(entry->tcp) == 0;
    if (!ok) {
      entry->tcp->data = nullptr;
    }
  } else if (ok) {
    entry->tls->setHandler(entry);
    entry->tls->resumeReading();
  }
  if (!ok) {
    if (list.empty()) {
      idle_.erase(entry->key);
    }
    if (entry->tcp != nullptr) {
      closeAndDelete(asHandle(entry->tcp));
    } else {
      entry->tls->close();
    }
    delete entry;
    return;
  }
  entry->since_ms = uv_now(loop_);
  list.push_front(entry);
  ++total_;
  if (!uv_is_active(asHandle(&sweep_))) {
    uint64_t period = std::max<uint64_t>(idle_timeout_ms_ / 4, 100);
    uv_timer_start(
        &sweep_, [](uv_timer_t* t) { static_cast<UpstreamPool*>(t->data)->onSweep(); }, period,
        period);
  }
}

void UpstreamPool::Entry::onUpstreamRead(ssize_t nread, BufferRef) {
  if (nread == 0) {
    return;  // EAGAIN
  }
  // EOF, an error, or bytes nobody asked for: the connection is unusable.
  pool->remove(this);
}

void UpstreamPool::remove(Entry* entry) {
  auto it = idle_.find(entry->key);
  if (it != idle_.end()) {
    std::erase(it->second, entry);
    if (it->second.empty()) {
      idle_.erase(it);
    }
  }
  --total_;
  if (entry->tcp != nullptr) {
    entry->tcp->data = nullptr;
    closeAndDelete(asHandle(entry->tcp));
  } else {
    // After close() the stream calls nothing of ours again and frees itself.
    entry->tls->close();
  }
  delete entry;
}

// Runs every idle_timeout / 4 while anything is idle: one timer for the
// whole pool instead of one per connection.
void UpstreamPool::onSweep() {
  uint64_t now = uv_now(loop_);
  std::vector<Entry*> expired;
  for (auto& [key, list] : idle_) {
    for (Entry* entry : list) {
      if (now - entry->since_ms >= idle_timeout_ms_) {
        expired.push_back(entry);
      }
    }
  }
  for (Entry* entry : expired) {
    remove(entry);
  }
  if (total_ == 0) {
    uv_timer_stop(&sweep_);
  }
}

void UpstreamPool::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  std::vector<Entry*> all;
  for (auto& [key, list] : idle_) {
    all.insert(all.end(), list.begin(), list.end());
  }
  for (Entry* entry : all) {
    remove(entry);
  }
  closeHandle<&UpstreamPool::onTimerClosed, UpstreamPool>(asHandle(&sweep_));
}

void UpstreamPool::onTimerClosed(uv_handle_t*) {
  timer_closed_ = true;
}

}  // namespace switchyard
