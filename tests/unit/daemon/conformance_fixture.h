// A client Connection driven in-process, for the parser conformance table.
//
// The client side is one end of a socketpair whose other end is a real
// Connection on a real uv loop (the "fake transport"); no listener, no
// timing. The request bytes are written in pieces, and after each piece the
// loop runs with UV_RUN_NOWAIT until nothing observable has moved for a
// number of turns, so the connection has read and handled the piece before
// the next one arrives: the split points are the ones the parser sees.
//
// The config sends 127.0.0.1 direct and denies everything else:
//  - a request for `http://denied.test/` that the parser accepts gets the
//    deny rule's 403 (that is the "accepted" answer, no network involved);
//  - a request for `http://{origin}/` goes to FakeOrigin, a recorder
//    listening on 127.0.0.1 in the same loop, so bodies, pipelining and
//    keep-alive are exercised end to end. The origin answers each complete
//    request with 200 and checks that what reached it is clean (one Host,
//    the target's authority; no hop-by-hop field; no control bytes; a
//    request-target of visible ASCII): a breach is reported in the outcome.
//
// What a run observes is an Outcome: the statuses the client got, in
// order, whether the proxy then closed, and how many request heads reached
// the origin. Everything is closed after each run and the read blocks are
// checked for leaks.
#pragma once

#include <llhttp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/connection.h"
#include "daemon/connector.h"
#include "daemon/http_message.h"
#include "daemon/resolver.h"
#include "daemon/runtime.h"
#include "rules/config_loader.h"

namespace switchyard::conformance {

// The head size limit of the fixture's config: small, so that the limit
// cases stay short (every byte boundary of each is tried).
inline constexpr size_t kMaxHeaderBytes = 2048;
// A field name the origin must never see: test requests list it in
// `Connection`, which makes it hop-by-hop (RFC 9110 7.6.1).
inline constexpr std::string_view kHopOnlyField = "X-Hop-Only";

struct Outcome {
  std::vector<int> statuses;  // every response the client received, in order
  bool closed = false;        // the proxy ended the connection after them
  int origin_heads = 0;       // request heads that reached the origin
  std::string problem;        // a broken invariant, empty when none

  bool operator==(const Outcome&) const = default;

  // "200,400 close origin=1", "- open origin=0" (no response), plus
  // " problem=..." when an invariant broke. The table is written in this form.
  std::string str() const {
    std::string out;
    for (int status : statuses) {
      out += (out.empty() ? "" : ",") + std::to_string(status);
    }
    out = out.empty() ? "-" : out;
    out += closed ? " close" : " open";
    out += " origin=" + std::to_string(origin_heads);
    if (!problem.empty()) {
      out += " problem=" + problem;
    }
    return out;
  }
};

namespace detail {

inline std::string visible(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Counts everything that happened, so that "nothing moved" can be told.
struct Activity {
  uint64_t events = 0;
};

// One response stream as the client reads it. HEAD requests get heads
// without bodies, which only the client can know.
class ClientReader {
 public:
  explicit ClientReader(bool head_responses) : head_responses_(head_responses) {
    llhttp_init(&parser_, HTTP_RESPONSE, settings());
    parser_.data = this;
  }

  void feed(const char* data, size_t len) {
    if (!problem.empty()) {
      return;
    }
    llhttp_errno_t err = llhttp_execute(&parser_, data, len);
    if (err != HPE_OK) {
      problem = std::string("unparsable response (") + llhttp_errno_name(err) + ")";
    }
  }

  std::vector<int> statuses;
  std::string problem;

 private:
  static const llhttp_settings_t* settings() {
    static const llhttp_settings_t table = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_headers_complete = [](llhttp_t* p) {
        auto* self = static_cast<ClientReader*>(p->data);
        self->statuses.push_back(p->status_code);
        return self->head_responses_ ? 1 : 0;
      };
      return s;
    }();
    return &table;
  }

  llhttp_t parser_;
  bool head_responses_;
};

}  // namespace detail

// An origin on 127.0.0.1 in the fixture's loop. It parses what the proxy
// forwards, answers every complete request with a 200 of two bytes, and
// records request heads and anything unclean about them.
class FakeOrigin {
 public:
  FakeOrigin(uv_loop_t* loop, detail::Activity* activity) : activity_(activity) {
    uv_tcp_init(loop, &listener_);
    listener_.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0) != 0 ||
        uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 64, [](uv_stream_t* s, int status) {
          static_cast<FakeOrigin*>(s->data)->onConnection(status);
        }) != 0) {
      std::abort();
    }
    sockaddr_storage bound{};
    int len = sizeof(bound);
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    authority_ = "127.0.0.1:" + std::to_string(port_);
  }

  const std::string& authority() const { return authority_; }
  int heads() const { return heads_; }
  const std::string& problem() const { return problem_; }
  size_t openConnections() const { return open_; }
  void reset() {
    heads_ = 0;
    problem_.clear();
  }

  void close() { uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr); }

 private:
  struct Conn {
    uv_tcp_t tcp;
    llhttp_t parser;
    FakeOrigin* origin;
    std::string method, url, field, value;
    std::vector<std::pair<std::string, std::string>> fields;
    char buf[65536];
  };

  void onConnection(int status) {
    ++activity_->events;
    if (status != 0) {
      return;
    }
    auto* conn = new Conn();
    conn->origin = this;
    uv_tcp_init(listener_.loop, &conn->tcp);
    conn->tcp.data = conn;
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                  reinterpret_cast<uv_stream_t*>(&conn->tcp)) != 0) {
      closeConn(conn);
      return;
    }
    ++open_;
    llhttp_init(&conn->parser, HTTP_REQUEST, settings());
    conn->parser.data = conn;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&conn->tcp),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* c = static_cast<Conn*>(h->data);
          *buf = uv_buf_init(c->buf, sizeof(c->buf));
        },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
          auto* c = static_cast<Conn*>(s->data);
          c->origin->onRead(c, nread, buf->base);
        });
  }

  void onRead(Conn* conn, ssize_t nread, const char* data) {
    ++activity_->events;
    if (nread == 0) {
      return;
    }
    if (nread < 0) {
      closeConn(conn);
      return;
    }
    llhttp_errno_t err = llhttp_execute(&conn->parser, data, static_cast<size_t>(nread));
    if (err != HPE_OK) {
      note(std::string("origin-cannot-parse(") + llhttp_errno_name(err) + ")");
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&conn->tcp));
      closeConn(conn);
    }
  }

  void closeConn(Conn* conn) {
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&conn->tcp))) {
      return;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->tcp), [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      --c->origin->open_;
      ++c->origin->activity_->events;
      delete c;
    });
  }

  void note(const std::string& what) {
    if (problem_.find(what) == std::string::npos) {
      problem_ += (problem_.empty() ? "" : ";") + what;
    }
  }

  // What reached the origin must be something every origin reads the same
  // way: a clean request-target, token names, field values without control
  // characters, one Host naming the target, unambiguous framing, and none of
  // the client's hop-by-hop fields.
  void checkHead(const Conn& c) {
    if (!isToken(c.method)) {
      note("origin-saw-bad-method");
    }
    if (c.url.empty() || c.url.front() != '/') {
      note("origin-saw-non-origin-form");
    }
    for (char ch : c.url) {
      auto u = static_cast<unsigned char>(ch);
      if (u <= 0x20 || u >= 0x7f) {
        note("origin-saw-target-byte-" + detail::visible(std::string(1, ch)));
      }
    }
    int hosts = 0;
    int lengths = 0;
    bool chunked = false;
    for (const auto& [name, value] : c.fields) {
      if (!isToken(name)) {
        note("origin-saw-bad-field-name");
      }
      for (char ch : value) {
        auto u = static_cast<unsigned char>(ch);
        if ((u < 0x20 && u != '\t') || u == 0x7f) {
          note("origin-saw-control-byte-in-" + name);
        }
      }
      if (equalsIgnoreCase(name, "Host")) {
        ++hosts;
        if (value != authority_) {
          note("origin-saw-host-" + detail::visible(value));
        }
      } else if (equalsIgnoreCase(name, "Content-Length")) {
        ++lengths;
      } else if (equalsIgnoreCase(name, "Transfer-Encoding")) {
        chunked = true;
        if (value != "chunked") {
          note("origin-saw-transfer-encoding-" + detail::visible(value));
        }
      } else if (equalsIgnoreCase(name, kHopOnlyField) || equalsIgnoreCase(name, "Connection") ||
                 equalsIgnoreCase(name, "Keep-Alive") || equalsIgnoreCase(name, "Upgrade") ||
                 equalsIgnoreCase(name, "Proxy-Connection") || equalsIgnoreCase(name, "TE") ||
                 equalsIgnoreCase(name, "Trailer")) {
        note("origin-saw-hop-by-hop-" + name);
      }
    }
    if (hosts != 1) {
      note("origin-saw-" + std::to_string(hosts) + "-hosts");
    }
    if (lengths > 1 || (lengths == 1 && chunked)) {
      note("origin-saw-ambiguous-framing");
    }
  }

  static const llhttp_settings_t* settings() {
    static const llhttp_settings_t table = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = [](llhttp_t* p) {
        auto* c = static_cast<Conn*>(p->data);
        c->url.clear();
        c->field.clear();
        c->value.clear();
        c->fields.clear();
        return 0;
      };
      s.on_url = [](llhttp_t* p, const char* at, size_t len) {
        static_cast<Conn*>(p->data)->url.append(at, len);
        return 0;
      };
      s.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
        static_cast<Conn*>(p->data)->field.append(at, len);
        return 0;
      };
      s.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
        static_cast<Conn*>(p->data)->value.append(at, len);
        return 0;
      };
      s.on_header_value_complete = [](llhttp_t* p) {
        auto* c = static_cast<Conn*>(p->data);
        c->fields.emplace_back(std::move(c->field), std::move(c->value));
        c->field.clear();
        c->value.clear();
        return 0;
      };
      s.on_headers_complete = [](llhttp_t* p) {
        auto* c = static_cast<Conn*>(p->data);
        c->method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
        ++c->origin->heads_;
        c->origin->checkHead(*c);
        return 0;
      };
      s.on_message_complete = [](llhttp_t* p) {
        auto* c = static_cast<Conn*>(p->data);
        static constexpr std::string_view kWithBody =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        std::string_view reply = kWithBody;
        if (c->method == "HEAD") {
          reply.remove_suffix(2);
        }
        auto* req = new uv_write_t;
        uv_buf_t buf = uv_buf_init(const_cast<char*>(reply.data()), reply.size());
        if (uv_write(req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1,
                     [](uv_write_t* r, int) { delete r; }) != 0) {
          delete req;
        }
        return 0;
      };
      return s;
    }();
    return &table;
  }

  detail::Activity* activity_;
  uv_tcp_t listener_;
  uint16_t port_ = 0;
  std::string authority_;
  size_t open_ = 0;
  int heads_ = 0;
  std::string problem_;
};

class ProxyHarness {
 public:
  // Quiet loop turns that count as "the piece was handled" and as "the
  // exchange is over". Each step of the proxy (a read, the resolver's
  // deferred answer, a loopback connect, a write completion) shows within
  // a turn or two; these are generous multiples.
  static constexpr int kQuietTurnsPerPiece = 6;
  static constexpr int kQuietTurnsAtEnd = 24;
  // A run that keeps moving for this many turns is a finding (a loop).
  static constexpr int kMaxTurns = 200000;

  ProxyHarness() {
    uv_loop_init(&loop_);
    rt_ = std::make_unique<Runtime>(&loop_);
    std::string yaml =
        "inherit_env: false\n"
        "limits: { max_header_bytes: " +
        std::to_string(kMaxHeaderBytes) +
        ", header_timeout: 10m, idle_timeout: 10m }\n"
        "rules:\n"
        "  - name: origin\n"
        "    match: { hosts: \"127.0.0.1\" }\n"
        "    action: direct\n"
        "  - name: deny-all\n"
        "    match: { hosts: \"*\" }\n"
        "    action: deny\n";
    rules::LoadResult loaded = rules::loadConfigString(yaml, "conformance.yaml", {});
    if (!loaded.config) {
      std::fprintf(stderr, "conformance config: %s\n", loaded.errors.at(0).c_str());
      std::abort();
    }
    std::vector<std::string> errors;
    auto snapshot = rules::ConfigSnapshot::build(std::move(*loaded.config), 1, &errors);
    std::string error;
    LiveConfigPtr live;
    if (snapshot == nullptr || !buildLiveConfig(snapshot, &live, &error)) {
      std::abort();
    }
    rt_->config = live;
    resolver_ = std::make_unique<Resolver>(&loop_);
    connector_ = std::make_unique<Connector>(&loop_);
    rt_->resolver = resolver_.get();
    rt_->connector = connector_.get();
    origin_ = std::make_unique<FakeOrigin>(&loop_, &activity_);
  }

  // Closes every handle and proves the loop ends with none left.
  ~ProxyHarness() {
    origin_->close();
    resolver_->close();
    connector_->close();
    for (int i = 0; i < 1000 && uv_loop_alive(&loop_) != 0; ++i) {
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
    if (uv_loop_close(&loop_) != 0) {
      std::fprintf(stderr, "conformance fixture: the loop still has handles\n");
      std::abort();
    }
  }

  ProxyHarness(const ProxyHarness&) = delete;
  ProxyHarness& operator=(const ProxyHarness&) = delete;

  const std::string& originAuthority() const { return origin_->authority(); }

  // The raw text of a case with its placeholders replaced: "{origin}" by
  // the origin's host:port, "{pad:N}" by N 'a' bytes, "{fields:N}" by N
  // lines "X: 1\r\n".
  std::string expand(std::string_view raw) const {
    std::string out;
    size_t i = 0;
    while (i < raw.size()) {
      size_t open = raw.find('{', i);
      if (open == std::string_view::npos) {
        out.append(raw.substr(i));
        break;
      }
      out.append(raw.substr(i, open - i));
      size_t close = raw.find('}', open);
      if (close == std::string_view::npos) {
        out.append(raw.substr(open));  // a literal brace
        break;
      }
      std::string_view token = raw.substr(open + 1, close - open - 1);
      if (token == "origin") {
        out += origin_->authority();
      } else if (token.starts_with("pad:")) {
        out.append(std::stoul(std::string(token.substr(4))), 'a');
      } else if (token.starts_with("fields:")) {
        for (unsigned long n = std::stoul(std::string(token.substr(7))); n > 0; --n) {
          out += "X: 1\r\n";
        }
      } else {
        out.append(raw.substr(open, close - open + 1));  // a literal brace
      }
      i = close + 1;
    }
    return out;
  }

  // Writes `request` in pieces ending at each of `cuts` (ascending, inside
  // the request) and then the rest, and reports what the client saw.
  Outcome run(const std::string& request, const std::vector<size_t>& cuts) {
    origin_->reset();
    bool head = request.starts_with("HEAD ");
    detail::ClientReader reader(head);
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      std::abort();
    }
    auto* tcp = new uv_tcp_t;
    uv_tcp_init(&loop_, tcp);
    if (uv_tcp_open(tcp, fds[0]) != 0) {
      std::abort();
    }
    client_fd_ = fds[1];
    eof_ = false;
    std::string problem;
    Connection::start(rt_.get(), tcp, /*allowed=*/true);

    size_t start = 0;
    for (size_t i = 0; i <= cuts.size() && !eof_; ++i) {
      size_t end = i < cuts.size() ? cuts[i] : request.size();
      if (!sendAll(request.data() + start, end - start)) {
        break;  // the proxy is gone
      }
      start = end;
      if (!settle(kQuietTurnsPerPiece, &reader)) {
        problem = "no-quiescence";
      }
    }
    if (!settle(kQuietTurnsAtEnd, &reader)) {
      problem = "no-quiescence";
    }
    Outcome out;
    out.closed = eof_;
    // Whatever state it is in, the connection must go away once the client
    // has gone, and take its upstream connection with it.
    ::shutdown(client_fd_, SHUT_WR);
    bool gone = runUntil([&] {
      drainClient(&reader);
      return rt_->sessionCount() == 0 && origin_->openConnections() == 0;
    });
    ::close(client_fd_);
    client_fd_ = -1;
    if (!gone) {
      problem = "connection-did-not-close-after-eof";
    }
    if (BufferPool::liveBlocks() != 0) {
      problem = "read-blocks-leaked";
    }
    out.statuses = reader.statuses;
    out.origin_heads = origin_->heads();
    for (const std::string& p : {reader.problem, origin_->problem()}) {
      if (!p.empty()) {
        problem += (problem.empty() ? "" : ";") + p;
      }
    }
    out.problem = problem;
    return out;
  }

 private:
  bool sendAll(const char* data, size_t len) {
    while (len > 0) {
      ssize_t n = ::send(client_fd_, data, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return false;  // pieces are far smaller than the socket buffer
      }
      data += n;
      len -= static_cast<size_t>(n);
    }
    return true;
  }

  void drainClient(detail::ClientReader* reader) {
    char buf[16384];
    while (!eof_) {
      ssize_t n = ::recv(client_fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        ++activity_.events;
        reader->feed(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        ++activity_.events;
        eof_ = true;  // FIN (or a reset) from the proxy
      }
      break;
    }
  }

  // Runs the loop until `quiet` consecutive turns moved nothing: no byte to
  // the client, no origin event, no session coming or going.
  bool settle(int quiet, detail::ClientReader* reader) {
    int still = 0;
    for (int turns = 0; turns < kMaxTurns; ++turns) {
      uint64_t before = activity_.events + rt_->sessionCount();
      uv_run(&loop_, UV_RUN_NOWAIT);
      drainClient(reader);
      if (activity_.events + rt_->sessionCount() == before) {
        if (++still >= quiet) {
          return true;
        }
      } else {
        still = 0;
      }
    }
    return false;
  }

  bool runUntil(const std::function<bool()>& done) {
    for (int turns = 0; turns < kMaxTurns; ++turns) {
      if (done()) {
        return true;
      }
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
    return done();
  }

  uv_loop_t loop_;
  detail::Activity activity_;
  std::unique_ptr<Runtime> rt_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<FakeOrigin> origin_;
  int client_fd_ = -1;
  bool eof_ = false;
};

}  // namespace switchyard::conformance
