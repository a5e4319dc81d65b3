// The admin listener, in callback order. One request per connection: the
// answer always carries `Connection: close`, which keeps the client state
// to a single head and spares us pipelining on a port that serves a scrape
// every few seconds.
#include "daemon/admin_listener.h"

#include <llhttp.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <vector>

#include "daemon/http_message.h"
#include "daemon/net_address.h"

namespace switchyard {

namespace {

// Refusals of clients outside admin_allow_clients are logged at most this
// often; the next line says how many were left out.
constexpr uint64_t kRefusalWarnIntervalMs = 1000;

AdminResponse plainAnswer(int status, std::string text) {
  AdminResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(text);
  r.body += '\n';
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

AdminResponse versionNotSupported() {
  return plainAnswer(505, "only HTTP/1.0 and HTTP/1.1 are spoken here");
}

}  // namespace

// One admin client: reads a head, answers, closes.
class AdminListener::Client {
 public:
  Client(AdminListener* listener, uv_tcp_t* tcp);

  void start();
  // Writes `bytes` (our only answer), then FIN, then closes.
  void respondWith(std::string bytes);
  void close();

 private:
  void onRead(ssize_t nread, BufferRef block);
  void respond();
  void onWritten(int status, size_t bytes);
  void onShutdown(int status);
  void onTimer();
  void onClosed(uv_handle_t* handle);

  static const llhttp_settings_t* settings();
  static Client* from(llhttp_t* parser) { return static_cast<Client*>(parser->data); }
  static int onUrl(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderField(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);
  bool countHeadBytes(size_t len);

  AdminListener* listener_;
  uv_tcp_t* tcp_;  // heap; deleted in its close callback
  uv_timer_t timer_;
  uv_shutdown_t shutdown_req_{};
  llhttp_t parser_;
  std::string method_;
  std::string target_;
  std::string host_;   // the Host field, for the PAC of a wildcard listener
  std::string field_;  // header name being read
  std::string value_;  // header value being read
  size_t head_bytes_ = 0;
  int pending_closes_ = 0;
  // Flags, each true once:
  bool answered_ = false;  // our answer is queued: further input is discarded
  bool closing_ = false;   // handles are closing
  bool head_too_large_ = false;
  bool target_too_large_ = false;  // the request-target alone passed the bound
  bool host_twice_ = false;        // more than one Host field (RFC 9112 3.2: 400)
};

AdminListener::Client::Client(AdminListener* listener, uv_tcp_t* tcp)
    : listener_(listener), tcp_(tcp) {
  tcp_->data = this;
  uv_timer_init(listener_->rt_->loop(), &timer_);
  timer_.data = this;
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
}

void AdminListener::Client::start() {
  if (startRead<&Client::onRead, Client>(asStream(tcp_)) != 0) {
    close();
    return;
  }
  // The head must arrive within the proxy's own header_timeout; a silent
  // client is closed without an answer.
  auto ms = static_cast<uint64_t>(listener_->rt_->config->config().limits.header_timeout.count());
  startTimer<&Client::onTimer, Client>(&timer_, ms);
}

void AdminListener::Client::onRead(ssize_t nread, BufferRef block) {
  if (closing_ || nread == 0) {
    return;
  }
  if (nread < 0) {
    close();  // EOF or reset: before our answer nothing is owed, after it we are done
    return;
  }
  if (answered_) {
    return;  // lingering: discard
  }
  llhttp_errno_t err = llhttp_execute(&parser_, block.data(), static_cast<size_t>(nread));
  if (err == HPE_OK) {
    return;  // more of the head to come
  }
  if (err == HPE_PAUSED) {
    respond();
    return;
  }
  // The same statuses as the proxy door gives for these (RFC 9112 3, RFC
  // 9110 15.5.15 and 15.6.6).
  if (head_too_large_ && target_too_large_) {
    respondWith(serializeAdminResponse(
        plainAnswer(414, "request target longer than " + std::to_string(kMaxHeadBytes) + " bytes"),
        false, false));
    return;
  }
  if (head_too_large_) {
    respondWith(serializeAdminResponse(
        plainAnswer(431, "request head larger than " + std::to_string(kMaxHeadBytes) + " bytes"),
        false, false));
    return;
  }
  if (err == HPE_INVALID_VERSION) {
    respondWith(serializeAdminResponse(versionNotSupported(), false, false));
    return;
  }
  respondWith(serializeAdminResponse(
      plainAnswer(400, std::string("malformed request: ") + llhttp_errno_name(err)), false, false));
}

// ---- llhttp hooks: one static table, each recovers the Client.

const llhttp_settings_t* AdminListener::Client::settings() {
  static const llhttp_settings_t table = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_url = &Client::onUrl;
    s.on_header_field = &Client::onHeaderField;
    s.on_header_value = &Client::onHeaderValue;
    s.on_header_value_complete = &Client::onHeaderValueComplete;
    s.on_headers_complete = &Client::onHeadersComplete;
    return s;
  }();
  return &table;
}

bool AdminListener::Client::countHeadBytes(size_t len) {
  head_bytes_ += len;
  if (head_bytes_ > kMaxHeadBytes) {
    head_too_large_ = true;
    return false;
  }
  return true;
}

int AdminListener::Client::onUrl(llhttp_t* parser, const char* at, size_t len) {
  Client* self = from(parser);
  if (!self->countHeadBytes(len)) {
    self->target_too_large_ = true;
    return HPE_USER;
  }
  self->target_.append(at, len);
  return 0;
}

int AdminListener::Client::onHeaderField(llhttp_t* parser, const char* at, size_t len) {
  Client* self = from(parser);
  // ": " and CRLF are counted once the field is complete, so that the
  // count does not depend on how many reads the name spans.
  if (!self->countHeadBytes(len)) {
    return HPE_USER;
  }
  self->field_.append(at, len);
  return 0;
}

int AdminListener::Client::onHeaderValue(llhttp_t* parser, const char* at, size_t len) {
  Client* self = from(parser);
  if (!self->countHeadBytes(len)) {
    return HPE_USER;
  }
  self->value_.append(at, len);
  return 0;
}

int AdminListener::Client::onHeaderValueComplete(llhttp_t* parser) {
  Client* self = from(parser);
  if (!self->countHeadBytes(4)) {  // ": " and CRLF
    return HPE_USER;
  }
  // Only Host matters here; the other fields are counted and dropped.
  if (equalsIgnoreCase(self->field_, "Host")) {
    if (!self->host_.empty()) {
      self->host_twice_ = true;
    }
    self->host_ = self->value_;
  }
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int AdminListener::Client::onHeadersComplete(llhttp_t* parser) {
  Client* self = from(parser);
  self->method_ = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
  // Whatever follows (a body, a pipelined request) is not read: the one
  // answer closes the connection.
  return HPE_PAUSED;
}

// ---- The answer.

void AdminListener::Client::respond() {
  // llhttp parses HTTP/0.x and 2.x to 9.x request lines too.
  if (parser_.http_major != 1) {
    respondWith(serializeAdminResponse(versionNotSupported(), false, false));
    return;
  }
  if (host_twice_) {
    respondWith(serializeAdminResponse(plainAnswer(400, "more than one Host field"), false, false));
    return;
  }
  AdminContext ctx = listener_->context_();
  ctx.host_header = host_;
  AdminResponse response = handleAdminRequest(method_, target_, ctx);
  respondWith(serializeAdminResponse(response, method_ == "HEAD", /*keep_alive=*/false));
}

void AdminListener::Client::respondWith(std::string bytes) {
  if (answered_ || closing_) {
    return;
  }
  answered_ = true;
  if (submitWrite<&Client::onWritten, Client>(asStream(tcp_), this, makeWrite(std::move(bytes))) !=
      0) {
    close();
    return;
  }
  // A client that does not take its answer is not waited for long.
  startTimer<&Client::onTimer, Client>(&timer_, kLingerMs * 5);
}

void AdminListener::Client::onWritten(int status, size_t) {
  if (closing_) {
    return;
  }
  if (status < 0) {
    close();
    return;
  }
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, asStream(tcp_), [](uv_shutdown_t* req, int st) {
        static_cast<Client*>(req->data)->onShutdown(st);
      }) != 0) {
    close();
  }
}

// Our FIN is out. Unread bytes in the kernel would turn our close into a
// reset that can destroy the answer on the client's side, so we keep
// reading (and discarding) until the client closes or kLingerMs passes.
void AdminListener::Client::onShutdown(int status) {
  if (closing_) {
    return;
  }
  if (status < 0) {
    close();
    return;
  }
  startTimer<&Client::onTimer, Client>(&timer_, kLingerMs);
}

void AdminListener::Client::onTimer() {
  close();
}

void AdminListener::Client::close() {
  if (closing_) {
    return;
  }
  closing_ = true;
  pending_closes_ = 2;
  closeHandle<&Client::onClosed, Client>(asHandle(tcp_));
  closeHandle<&Client::onClosed, Client>(asHandle(&timer_));
}

void AdminListener::Client::onClosed(uv_handle_t* handle) {
  if (handle == asHandle(tcp_)) {
    delete tcp_;
    tcp_ = nullptr;
  }
  if (--pending_closes_ > 0) {
    return;
  }
  listener_->clientClosed(this);
  delete this;
}

// ---------------------------------------------------------------------------
// The listener.

AdminListener::AdminListener(Runtime* rt, ContextFn context)
    : rt_(rt), context_(std::move(context)) {}

AdminListener::~AdminListener() = default;

bool AdminListener::listen(const std::string& address, std::string* error) {
  sockaddr_storage addr;
  if (!parseListenAddress(address, &addr, error)) {
    return false;
  }
  uv_tcp_init(rt_->loop(), &tcp_);
  tcp_.data = this;
  bound_ = true;
  // As for the proxy listeners: "[::]:P" does not take IPv4 too.
  unsigned flags = addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  int rc = uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&addr), flags);
  if (rc == 0) {
    rc = uv_listen(asStream(&tcp_), 64, [](uv_stream_t* server, int status) {
      static_cast<AdminListener*>(server->data)->onConnection(status);
    });
  }
  if (rc != 0) {
    *error = uv_strerror(rc);
    return false;
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&bound), &len);
  name_ = formatAddress(reinterpret_cast<const sockaddr*>(&bound));
  spdlog::info("admin listening on {}", name_);
  return true;
}

void AdminListener::onConnection(int status) {
  if (status < 0 || closed_) {
    return;
  }
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(rt_->loop(), tcp);
  if (uv_accept(asStream(&tcp_), asStream(tcp)) != 0) {
    closeAndDelete(asHandle(tcp));
    return;
  }
  if (clients_.size() >= kMaxClients) {
    closeAndDelete(asHandle(tcp));
    return;
  }
  sockaddr_storage peer{};
  int len = sizeof(peer);
  bool known = uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&peer), &len) == 0;
  const auto* peer_addr = reinterpret_cast<const sockaddr*>(&peer);
  auto* client = new Client(this, tcp);
  clients_.insert(client);
  if (!known || !rt_->config->admin_allow_clients.allows(peer_addr)) {
    warnRefused(known ? formatAddress(peer_addr) : "?");
    // Reading (and discarding) what the client sends lets our close be a
    // FIN rather than a reset that could destroy the refusal on its way.
    client->start();
    client->respondWith(serializeAdminResponse(adminClientRefused(), false, false));
    return;
  }
  client->start();
}

void AdminListener::warnRefused(const std::string& peer) {
  uint64_t now = uv_now(rt_->loop());
  if (last_refusal_warning_ms_ != 0 && now - last_refusal_warning_ms_ < kRefusalWarnIntervalMs) {
    ++refusals_suppressed_;
    return;
  }
  if (refusals_suppressed_ > 0) {
    spdlog::warn("admin: refused {}: not in access.admin_allow_clients ({} similar suppressed)",
                 peer, refusals_suppressed_);
  } else {
    spdlog::warn("admin: refused {}: not in access.admin_allow_clients", peer);
  }
  last_refusal_warning_ms_ = now == 0 ? 1 : now;
  refusals_suppressed_ = 0;
}

void AdminListener::clientClosed(Client* client) {
  clients_.erase(client);
}

void AdminListener::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (bound_ && !uv_is_closing(asHandle(&tcp_))) {
    uv_close(asHandle(&tcp_), nullptr);
  }
  // Copied: a client leaves the set only in its close callback, but the
  // copy keeps this loop independent of that.
  std::vector<Client*> open(clients_.begin(), clients_.end());
  for (Client* client : open) {
    client->close();
  }
}

}  // namespace switchyard
