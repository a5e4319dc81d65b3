// MirrorFetch on a real loop against scripted loopback servers: plain HTTP
// ones that answer 200/404/410/500/302, close at once, hang, or break off
// mid-body, and TLS ones (TlsStream in server mode with leaves minted from a
// CA made in a temporary directory), including one presenting a leaf for the
// wrong name. The walk's fall-back rules are checked attempt by attempt; every
// test ends with the loop closed and every read block returned.
#include "daemon/mirror_fetch.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "certs/ca.h"
#include "certs/tls_context.h"
#include "daemon/connector.h"
#include "daemon/resolver.h"
#include "tests/unit/test_support/ca_fixture.h"
#include "tests/unit/test_support/loop_helpers.h"

namespace switchyard {
namespace {

using namespace std::chrono_literals;
using LeafPtr = TlsStream::LeafPtr;

using test::runUntil;
using test::spin;
using test::TestCa;
using test::TestTimer;

// Recognisable body bytes, built once per size (megabytes are slow to build
// under the sanitizers, and a server must answer well within its timeouts).
const std::string& pattern(size_t n) {
  static std::map<size_t, std::string> cache;
  auto it = cache.find(n);
  if (it == cache.end()) {
    std::string out(n, '\0');
    for (size_t i = 0; i < n; ++i) {
      out[i] = static_cast<char>('a' + (i * 7 + i / 1024) % 26);
    }
    it = cache.emplace(n, std::move(out)).first;
  }
  return it->second;
}

// A port on 127.0.0.1 where nothing listens: bind, learn the port, close.
uint16_t refusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ---------------------------------------------------------------------------
// A loopback server that reads one request head per connection and follows
// its script. With a leaf it speaks TLS through TlsStream (server mode).

struct Script {
  enum class Kind {
    kRespond,         // write `response`, then close
    kClose,           // close without a word
    kHang,            // never answer
    kBody,            // 200 with a Content-Length body of `body_size` pattern bytes
    kRespondAndHang,  // write `response` and keep the connection open
  };
  Kind kind = Kind::kRespond;
  std::string response;
  size_t body_size = 0;
};

Script respond(std::string response) {
  return {Script::Kind::kRespond, std::move(response), 0};
}

const std::string k200 = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const std::string k302 = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n";
const std::string k403 = "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno";
const std::string k404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
const std::string k410 = "HTTP/1.1 410 Gone\r\nContent-Length: 4\r\n\r\ngone";
const std::string k500 = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops";
const std::string kGarbage = "THIS IS NOT HTTP\r\n\r\n";

class ScriptedServer {
 public:
  ScriptedServer(uv_loop_t* loop, Script script, LeafPtr leaf = nullptr,
                 SSL_CTX* server_ctx = nullptr)
      : loop_(loop), script_(std::move(script)), leaf_(std::move(leaf)), ctx_(server_ctx) {
    // On the heap: the server object may go before the close callback runs.
    listener_ = new uv_tcp_t;
    uv_tcp_init(loop_, listener_);
    listener_->data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
    uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 64, [](uv_stream_t* s, int status) {
      if (status == 0) {
        static_cast<ScriptedServer*>(s->data)->onAccept();
      }
    });
    sockaddr_storage bound{};
    int len = sizeof(bound);
    uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  ~ScriptedServer() { stop(); }

  uint16_t port() const { return port_; }
  std::string url(const std::string& host = "127.0.0.1") const {
    return std::string(leaf_ ? "https://" : "http://") + host + ":" + std::to_string(port_);
  }
  const std::vector<std::string>& heads() const { return heads_; }
  size_t hits() const { return heads_.size(); }
  size_t accepted() const { return accepted_; }
  sockaddr_storage address() const {
    sockaddr_storage out{};
    uv_ip4_addr("127.0.0.1", port_, reinterpret_cast<sockaddr_in*>(&out));
    return out;
  }

  void stop() {
    if (stopped_) {
      return;
    }
    stopped_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(listener_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    std::set<Conn*> all = conns_;
    for (Conn* c : all) {
      c->finish(/*graceful=*/false);
    }
  }

 private:
  struct Conn;
  struct Write {
    uv_write_t req;
    std::string data;
    Conn* conn;
    bool close_after;
  };

  struct Conn : public TlsStream::Handler {
    ScriptedServer* server;
    uv_tcp_t* tcp = nullptr;   // plain mode
    TlsStream* tls = nullptr;  // TLS mode
    std::string in;
    bool answered = false;
    bool finished = false;

    void onTlsHandshake(TlsStream*) override {}
    void onTlsData(TlsStream*, const BufferRef&, const char* at, size_t len) override {
      onBytes(at, len);
    }
    void onTlsEnd(TlsStream*, bool) override { finish(true); }
    void onTlsError(TlsStream*, const TlsError&) override { finish(false); }

    void onBytes(const char* at, size_t len) {
      if (answered) {
        return;
      }
      in.append(at, len);
      size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) {
        return;
      }
      answered = true;
      server->heads_.push_back(in.substr(0, end + 4));
      const Script& s = server->script_;
      switch (s.kind) {
        case Script::Kind::kRespond:
          send(s.response, true);
          return;
        case Script::Kind::kClose:
          finish(true);
          return;
        case Script::Kind::kHang:
          return;
        case Script::Kind::kBody:
          send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(s.body_size) + "\r\n\r\n" +
                   pattern(s.body_size),
               true);
          return;
        case Script::Kind::kRespondAndHang:
          send(s.response, false);
          return;
      }
    }

    void send(std::string data, bool close_after) {
      if (tls != nullptr) {
        tls->write(std::move(data));
        if (close_after) {
          finish(true);
        }
        return;
      }
      auto* w = new Write{{}, std::move(data), this, close_after};
      w->req.data = w;
      uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
      uv_write(&w->req, reinterpret_cast<uv_stream_t*>(tcp), &buf, 1,
               [](uv_write_t* req, int status) {
                 std::unique_ptr<Write> done(static_cast<Write*>(req->data));
                 if (status == 0 && done->close_after && !done->conn->finished) {
                   done->conn->finish(true);
                 }
               });
    }

    // Ends the connection; the Conn is deleted once nothing refers to it.
    void finish(bool graceful) {
      if (finished) {
        return;
      }
      finished = true;
      server->conns_.erase(this);
      if (tls != nullptr) {
        if (graceful) {
          tls->close();
        } else {
          tls->abort();
        }
        tls = nullptr;
        delete this;  // the stream calls nothing of ours after close/abort
        return;
      }
      uv_read_stop(reinterpret_cast<uv_stream_t*>(tcp));
      uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) {
        auto* c = static_cast<Conn*>(h->data);
        delete reinterpret_cast<uv_tcp_t*>(h);
        delete c;
      });
    }
  };

  void onAccept() {
    auto* tcp = new uv_tcp_t;
    uv_tcp_init(loop_, tcp);
    if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_), reinterpret_cast<uv_stream_t*>(tcp)) !=
        0) {
      uv_close(reinterpret_cast<uv_handle_t*>(tcp),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
      return;
    }
    ++accepted_;
    auto* conn = new Conn;
    conn->server = this;
    conns_.insert(conn);
    if (leaf_) {
      TlsStream::Options o;
      o.role = TlsStream::Role::kServer;
      o.ctx = ctx_;
      o.leaf = leaf_;
      conn->tls = TlsStream::create(tcp, o, conn);
      std::string error;
      if (!conn->tls->start("", &error)) {
        ADD_FAILURE() << error;
        conn->finish(false);
      }
      return;
    }
    conn->tcp = tcp;
    tcp->data = conn;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(tcp),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char storage[65536];
          *buf = uv_buf_init(storage, sizeof(storage));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* c = static_cast<Conn*>(s->data);
          if (n > 0) {
            c->onBytes(buf->base, static_cast<size_t>(n));
          } else if (n < 0) {
            c->finish(true);
          }
        });
  }

  uv_loop_t* loop_;
  Script script_;
  LeafPtr leaf_;
  SSL_CTX* ctx_;
  uv_tcp_t* listener_;
  uint16_t port_ = 0;
  bool stopped_ = false;
  size_t accepted_ = 0;
  std::vector<std::string> heads_;
  std::set<Conn*> conns_;
};

// ---------------------------------------------------------------------------
// A Sink that records everything, and counts calls after the end.

class SinkRecorder : public MirrorFetch::Sink {
 public:
  MirrorFetch* fetch = nullptr;
  std::optional<ResponseHead> head;
  MirrorResponseInfo info;
  std::string body;
  size_t body_calls = 0;
  bool complete = false;
  std::optional<MirrorFailure> failure;
  std::optional<std::string> aborted;
  std::vector<AttemptRecord> attempts;
  int terminal = 0;
  int after_end = 0;
  bool cancelled = false;
  std::function<void(SinkRecorder&, size_t)> on_body;

  bool done() const { return terminal > 0; }

  void onMirrorHead(const ResponseHead& h, const MirrorResponseInfo& i) override {
    note();
    EXPECT_FALSE(head.has_value()) << "two heads";
    head = h;
    info = i;
  }
  void onMirrorBody(const BufferRef& block, const char* data, size_t len) override {
    note();
    EXPECT_TRUE(head.has_value());
    EXPECT_TRUE(static_cast<bool>(block));
    EXPECT_GE(data, block.data());
    EXPECT_LE(data + len, block.data() + BufferPool::kBlockSize);
    ++body_calls;
    body.append(data, len);
    if (on_body) {
      on_body(*this, len);
    }
  }
  void onMirrorComplete() override {
    end();
    complete = true;
  }
  void onMirrorFailed(const MirrorFailure& f) override {
    EXPECT_FALSE(head.has_value()) << "failure after a head";
    end();
    failure = f;
  }
  void onMirrorAborted(const std::string& why) override {
    EXPECT_TRUE(head.has_value());
    end();
    aborted = why;
  }
  void cancel() {
    cancelled = true;
    attempts = fetch->attempts();
    fetch->cancel();
  }

 private:
  void note() {
    if (terminal > 0 || cancelled) {
      ++after_end;
    }
  }
  void end() {
    note();
    ++terminal;
    attempts = fetch->attempts();
  }
};

// ---------------------------------------------------------------------------
// The fixture: a loop, a resolver with test names, a connector, a CA.

class MirrorFetchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // As in the daemon (cli_run.cc): a write to a socket the peer already
    // closed must be an EPIPE error, not the end of the process.
    ::signal(SIGPIPE, SIG_IGN);
    ca_ = new TestCa("sy-mirror");
  }
  static void TearDownTestSuite() {
    delete ca_;
    ca_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    resolver_ = std::make_unique<Resolver>(&loop_);
    resolver_->setOverrides({{"mirror.test", "127.0.0.1"},
                             {"other.test", "127.0.0.1"},
                             {"origin.test", "127.0.0.1"},
                             {"broken.test", "not-an-address"}});
    connector_ = std::make_unique<Connector>(&loop_);
    rt_ = std::make_unique<Runtime>(&loop_);
    rt_->resolver = resolver_.get();
    rt_->connector = connector_.get();
    client_ctx_ = ca_->trustingClient();
    ASSERT_TRUE(client_ctx_);
    std::string error;
    server_ctx_ = certs::serverContext(&error);
    ASSERT_TRUE(server_ctx_) << error;
    live_blocks_ = BufferPool::liveBlocks();
  }

  void TearDown() override {
    servers_.clear();  // stops them
    spin(&loop_, 5ms);
    resolver_->close();
    connector_->close();
    EXPECT_TRUE(runUntil(&loop_, [this] { return uv_loop_alive(&loop_) == 0; }));
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    rt_.reset();
    connector_.reset();
    resolver_.reset();
    EXPECT_EQ(BufferPool::liveBlocks(), live_blocks_);
  }

  ScriptedServer* server(Script script) {
    servers_.push_back(std::make_unique<ScriptedServer>(&loop_, std::move(script)));
    return servers_.back().get();
  }
  ScriptedServer* tlsServer(Script script, const std::string& leaf_host) {
    LeafPtr leaf = ca_->mint(leaf_host);
    servers_.push_back(
        std::make_unique<ScriptedServer>(&loop_, std::move(script), leaf, server_ctx_.get()));
    return servers_.back().get();
  }

  MirrorFetch::Params params(const std::string& list,
                             const std::string& origin = "http://origin.test/x/@v/list") {
    MirrorFetch::Params p;
    p.rt = rt_.get();
    std::string error;
    EXPECT_TRUE(rules::parseGoproxyList(list, false, &p.list, &error)) << list << ": " << error;
    EXPECT_TRUE(parseAbsoluteUrl(origin, &p.url, &error)) << origin << ": " << error;
    p.tls_ctx = client_ctx_.get();
    p.connect_timeout = 2000ms;
    // Roomy for a loaded machine; the timeout cases shorten it.
    p.response_timeout = 1500ms;
    p.idle_timeout = 2000ms;
    p.via_token = "switchyard (test)";
    return p;
  }

  // Runs a fetch to its end and checks that the end was the only one.
  std::unique_ptr<SinkRecorder> run(MirrorFetch::Params p,
                                    std::function<void(SinkRecorder&)> setup = nullptr) {
    auto sink = std::make_unique<SinkRecorder>();
    if (setup) {
      setup(*sink);
    }
    sink->fetch = MirrorFetch::start(std::move(p), sink.get());
    EXPECT_EQ(sink->terminal, 0) << "a sink call ran inside start()";
    EXPECT_TRUE(runUntil(
        &loop_, [&] { return sink->done() || sink->cancelled; }, 10000ms));
    spin(&loop_, 5ms);
    EXPECT_LE(sink->terminal, 1);
    EXPECT_EQ(sink->after_end, 0);
    return sink;
  }

  static TestCa* ca_;
  uv_loop_t loop_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<Runtime> rt_;
  certs::SslCtxPtr client_ctx_;
  certs::SslCtxPtr server_ctx_;
  std::vector<std::unique_ptr<ScriptedServer>> servers_;
  size_t live_blocks_ = 0;
};

TestCa* MirrorFetchTest::ca_ = nullptr;

// ---------------------------------------------------------------------------
// The walk, case by case.

struct ExpectAttempt {
  std::optional<int> status;
  std::string error_part;  // expected inside the error; empty: no error
  std::string next;
};

struct WalkCase {
  std::string name;
  std::vector<Script> servers;  // "{0}", "{1}"… in `list` and `origin`
  std::string list;             // "{R}" is a port where nothing listens
  int status;                   // 200/302: served; otherwise the failure's status
  std::vector<ExpectAttempt> attempts;
  std::vector<size_t> hits;        // requests each server saw
  std::string proxy_status_error;  // for failures
  std::string origin = "http://origin.test/x/@v/list";
};

std::vector<WalkCase> walkCases() {
  const Script hang{Script::Kind::kHang, "", 0};
  const Script close_now{Script::Kind::kClose, "", 0};
  const std::string ft404 = "fell through: 404 after ','";
  return {
      {"comma: 404 falls through",
       {respond(k404), respond(k200)},
       "{0},{1}",
       200,
       {{404, "", ft404}, {200, "", "served"}},
       {1, 1},
       ""},
      {"comma: 410 falls through",
       {respond(k410), respond(k200)},
       "{0},{1}",
       200,
       {{410, "", "fell through: 410 after ','"}, {200, "", "served"}},
       {1, 1},
       ""},
      {"pipe: refused falls through",
       {respond(k200)},
       "{R}|{0}",
       200,
       {{std::nullopt, "refused the connection", "fell through: transport error after '|'"},
        {200, "", "served"}},
       {1},
       ""},
      {"comma: refused stops with 502",
       {respond(k200)},
       "{R},{0}",
       502,
       {{std::nullopt, "refused the connection", "stopped"}},
       {0},
       "connection_refused"},
      {"pipe: 500 falls through",
       {respond(k500), respond(k200)},
       "{0}|{1}",
       200,
       {{500, "", "fell through: 500 after '|'"}, {200, "", "served"}},
       {1, 1},
       ""},
      {"comma: 500 stops with 502",
       {respond(k500), respond(k200)},
       "{0},{1}",
       502,
       {{500, "", "stopped"}},
       {1, 0},
       "destination_unavailable"},
      {"pipe: 403 falls through",
       {respond(k403), respond(k200)},
       "{0}|{1}",
       200,
       {{403, "", "fell through: 403 after '|'"}, {200, "", "served"}},
       {1, 1},
       ""},
      {"comma: 403 stops with 502",
       {respond(k403), respond(k200)},
       "{0},{1}",
       502,
       {{403, "", "stopped"}},
       {1, 0},
       "destination_unavailable"},
      {"all 404: final 404",
       {respond(k404), respond(k404)},
       "{0},{1}",
       404,
       {{404, "", ft404}, {404, "", "stopped"}},
       {1, 1},
       "destination_not_found"},
      {"off alone: 404",
       {},
       "off",
       404,
       {{std::nullopt, "disabled by GOPROXY=off", "stopped"}},
       {},
       "destination_not_found"},
      {"404 then off: 404",
       {respond(k404)},
       "{0},off",
       404,
       {{404, "", ft404}, {std::nullopt, "GOPROXY=off", "stopped"}},
       {1},
       "destination_not_found"},
      {"500 then off: the 500 outranks off",
       {respond(k500)},
       "{0}|off",
       502,
       {{500, "", "fell through: 500 after '|'"}, {std::nullopt, "GOPROXY=off", "stopped"}},
       {1},
       "destination_unavailable"},
      {"pipe: timeout falls through",
       {hang, respond(k200)},
       "{0}|{1}",
       200,
       {{std::nullopt, "no response within limits.response_timeout (300ms)",
         "fell through: timeout after '|'"},
        {200, "", "served"}},
       {1, 1},
       ""},
      {"comma: timeout stops with 504",
       {hang, respond(k200)},
       "{0},{1}",
       504,
       {{std::nullopt, "no response within limits.response_timeout", "stopped"}},
       {1, 0},
       "connection_read_timeout"},
      {"pipe: close without answer falls through",
       {close_now, respond(k200)},
       "{0}|{1}",
       200,
       {{std::nullopt, "closed without a response", "fell through: transport error after '|'"},
        {200, "", "served"}},
       {1, 1},
       ""},
      {"comma: close without answer stops with 502",
       {close_now, respond(k200)},
       "{0},{1}",
       502,
       {{std::nullopt, "closed without a response", "stopped"}},
       {1, 0},
       "connection_terminated"},
      {"pipe: garbage falls through",
       {respond(kGarbage), respond(k200)},
       "{0}|{1}",
       200,
       {{std::nullopt, "malformed response", "fell through: transport error after '|'"},
        {200, "", "served"}},
       {1, 1},
       ""},
      {"comma: garbage stops with 502",
       {respond(kGarbage)},
       "{0},{0}",
       502,
       {{std::nullopt, "malformed response", "stopped"}},
       {1},
       "http_protocol_error"},
      {"302 is served as it is",
       {respond(k302), respond(k200)},
       "{0},{1}",
       302,
       {{302, "", "served"}},
       {1, 0},
       ""},
      {"404 then direct: the origin serves",
       {respond(k404), respond(k200)},
       "{0},direct",
       200,
       {{404, "", ft404}, {200, "", "served"}},
       {1, 1},
       "",
       "{1}/x/@v/list"},
      {"direct 404: final 404",
       {respond(k404)},
       "direct",
       404,
       {{404, "", "stopped"}},
       {1},
       "destination_not_found",
       "{0}/x/@v/list"},
      {"two refused after pipes, then served",
       {respond(k200)},
       "{R}|{R}|{0}",
       200,
       {{std::nullopt, "refused", "fell through: transport error after '|'"},
        {std::nullopt, "refused", "fell through: transport error after '|'"},
        {200, "", "served"}},
       {1},
       ""},
      {"name that does not resolve",
       {},
       "http://broken.test:1",
       502,
       {{std::nullopt, "cannot resolve broken.test", "stopped"}},
       {},
       "dns_error"},
      {"file URL entry",
       {respond(k200)},
       "file:///srv/goproxy|{0}",
       200,
       {{std::nullopt, "file:// mirrors are not supported",
         "fell through: transport error after '|'"},
        {200, "", "served"}},
       {1},
       ""},
  };
}

std::string expand(std::string text, const std::vector<ScriptedServer*>& servers,
                   uint16_t refused) {
  for (size_t i = 0; i < servers.size(); ++i) {
    std::string key = "{" + std::to_string(i) + "}";
    for (size_t pos; (pos = text.find(key)) != std::string::npos;) {
      text.replace(pos, key.size(), servers[i]->url());
    }
  }
  for (size_t pos; (pos = text.find("{R}")) != std::string::npos;) {
    text.replace(pos, 3, "http://127.0.0.1:" + std::to_string(refused));
  }
  return text;
}

TEST_F(MirrorFetchTest, WalkFollowsTheGoCommandsFallBack) {
  const uint16_t refused = refusedPort();
  for (const WalkCase& c : walkCases()) {
    SCOPED_TRACE(c.name);
    std::vector<ScriptedServer*> servers;
    for (const Script& s : c.servers) {
      servers.push_back(server(s));
    }
    const std::string list = expand(c.list, servers, refused);
    MirrorFetch::Params p = params(list, expand(c.origin, servers, refused));
    for (const Script& s : c.servers) {
      if (s.kind == Script::Kind::kHang) {
        p.response_timeout = 300ms;
      }
    }
    auto sink = run(std::move(p));
    ASSERT_TRUE(sink->done());
    if (c.status < 400) {
      ASSERT_TRUE(sink->complete) << (sink->failure ? sink->failure->body : "");
      ASSERT_TRUE(sink->head.has_value());
      EXPECT_EQ(sink->head->status, c.status);
      EXPECT_EQ(sink->body, c.status == 200 ? "hello" : "");
    } else {
      ASSERT_TRUE(sink->failure.has_value());
      EXPECT_FALSE(sink->head.has_value());
      EXPECT_EQ(sink->failure->status, c.status);
      EXPECT_EQ(sink->failure->proxy_status_error, c.proxy_status_error);
      // The body lists every attempt by URL, and the details name the one
      // that decided.
      for (const AttemptRecord& a : sink->attempts) {
        EXPECT_NE(sink->failure->body.find(a.url), std::string::npos) << sink->failure->body;
      }
      EXPECT_EQ(sink->failure->details.rfind(sink->failure->next_hop, 0), 0u)
          << sink->failure->details;
    }
    ASSERT_EQ(sink->attempts.size(), c.attempts.size());
    for (size_t i = 0; i < c.attempts.size(); ++i) {
      SCOPED_TRACE("attempt " + std::to_string(i));
      const AttemptRecord& got = sink->attempts[i];
      EXPECT_EQ(got.status, c.attempts[i].status);
      if (c.attempts[i].error_part.empty()) {
        EXPECT_FALSE(got.error.has_value()) << *got.error;
      } else {
        ASSERT_TRUE(got.error.has_value());
        EXPECT_NE(got.error->find(c.attempts[i].error_part), std::string::npos) << *got.error;
      }
      EXPECT_EQ(got.next, c.attempts[i].next);
    }
    for (size_t i = 0; i < c.hits.size(); ++i) {
      EXPECT_EQ(servers[i]->hits(), c.hits[i]) << "server " << i;
    }
    servers_.clear();
    spin(&loop_, 2ms);
  }
}

TEST_F(MirrorFetchTest, FailureBodyListsEveryAttemptInOrder) {
  ScriptedServer* a = server(respond(k404));
  ScriptedServer* b = server(respond(k500));
  auto sink = run(params(a->url() + "/p/," + b->url()));
  ASSERT_TRUE(sink->failure.has_value());
  const MirrorFailure& f = *sink->failure;
  EXPECT_EQ(f.status, 502);
  EXPECT_EQ(f.reason, "Mirror failed");
  EXPECT_EQ(f.received_status, 500);
  EXPECT_EQ(f.next_hop, b->url() + "/x/@v/list");
  EXPECT_EQ(f.details, b->url() + "/x/@v/list: 500 Internal Server Error");
  EXPECT_EQ(f.body,
            "502 Mirror failed\nGET http://origin.test/x/@v/list was tried on 2 entries "
            "of the mirror list \"" +
                a->url() + "/p/," + b->url() + "\":\n  1. " + a->url() +
                "/p/x/@v/list: 404 Not Found; fell through: 404 after ','\n  2. " + b->url() +
                "/x/@v/list: 500 Internal Server Error; stopped\n");
}

TEST_F(MirrorFetchTest, PathPrefixIsJoinedWithTheOriginalPathAndQuery) {
  struct Case {
    std::string base_path;
    std::string origin_path;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"/api/go/", "/github.com/x/@v/list", "/api/go/github.com/x/@v/list"},
      {"/api/go", "/github.com/x/@v/list", "/api/go/github.com/x/@v/list"},
      {"/api/go//", "/github.com/x/@v/v1.0.0.zip", "/api/go/github.com/x/@v/v1.0.0.zip"},
      {"", "/github.com/x/@latest", "/github.com/x/@latest"},
      {"/", "/a?b=c&d", "/a?b=c&d"},
      {"/debian/", "/dists/bookworm/Release?x=1", "/debian/dists/bookworm/Release?x=1"},
      {"/p", "/", "/p/"},
  };
  ScriptedServer* s = server(respond(k200));
  for (const Case& c : cases) {
    SCOPED_TRACE(c.base_path + " + " + c.origin_path);
    size_t before = s->hits();
    auto sink = run(params(s->url() + c.base_path, "http://origin.test" + c.origin_path));
    ASSERT_TRUE(sink->complete);
    ASSERT_EQ(s->hits(), before + 1);
    EXPECT_EQ(s->heads().back().substr(0, s->heads().back().find("\r\n")),
              "GET " + c.expect + " HTTP/1.1");
    EXPECT_EQ(sink->info.served_by, s->url() + c.expect);
    EXPECT_EQ(sink->attempts[0].url, s->url() + c.expect);
  }
}

std::string field(const std::string& head, const std::string& name) {
  std::string needle = "\r\n" + name + ": ";
  size_t pos = head.find(needle);
  if (pos == std::string::npos) {
    return "<absent>";
  }
  pos += needle.size();
  return head.substr(pos, head.find("\r\n", pos) - pos);
}

TEST_F(MirrorFetchTest, RequestFieldsForAMirrorAndForDirect) {
  ScriptedServer* mirror = server(respond(k404));
  ScriptedServer* origin = server(respond(k200));
  std::string mirror_url = mirror->url();
  mirror_url.insert(7, "user:p%40ss@");  // after "http://"
  MirrorFetch::Params p = params(mirror_url + "/m,direct", origin->url() + "/pkg?v=1");
  p.headers.add("Host", "wrong.example");
  p.headers.add("Authorization", "Bearer secret");
  p.headers.add("Cookie", "session=1");
  p.headers.add("Proxy-Authorization", "Basic cHJveHk6cHc=");
  p.headers.add("Connection", "keep-alive, X-Hop");
  p.headers.add("X-Hop", "drop me");
  p.headers.add("Keep-Alive", "timeout=5");
  p.headers.add("Accept", "application/json");
  p.headers.add("Content-Length", "0");
  auto sink = run(std::move(p));
  ASSERT_TRUE(sink->complete);
  ASSERT_EQ(mirror->hits(), 1u);
  ASSERT_EQ(origin->hits(), 1u);
  const std::string& m = mirror->heads()[0];
  EXPECT_EQ(m.substr(0, m.find("\r\n")), "GET /m/pkg?v=1 HTTP/1.1");
  EXPECT_EQ(field(m, "Host"), "127.0.0.1:" + std::to_string(mirror->port()));
  // The mirror gets its own credentials, never the client's.
  EXPECT_EQ(field(m, "Authorization"), "Basic " + base64Encode("user:p@ss"));
  EXPECT_EQ(field(m, "Cookie"), "<absent>");
  EXPECT_EQ(field(m, "Proxy-Authorization"), "<absent>");
  EXPECT_EQ(field(m, "X-Hop"), "<absent>");
  EXPECT_EQ(field(m, "Keep-Alive"), "<absent>");
  EXPECT_EQ(field(m, "Content-Length"), "<absent>");
  EXPECT_EQ(field(m, "Accept"), "application/json");
  EXPECT_EQ(field(m, "Via"), "1.1 switchyard (test)");
  EXPECT_EQ(field(m, "Connection"), "close");
  const std::string& o = origin->heads()[0];
  EXPECT_EQ(o.substr(0, o.find("\r\n")), "GET /pkg?v=1 HTTP/1.1");
  EXPECT_EQ(field(o, "Host"), "127.0.0.1:" + std::to_string(origin->port()));
  EXPECT_EQ(field(o, "Authorization"), "Bearer secret");
  EXPECT_EQ(field(o, "Cookie"), "session=1");
  EXPECT_EQ(field(o, "Proxy-Authorization"), "<absent>");
  // Logs never show the mirror's password.
  EXPECT_EQ(sink->attempts[0].url,
            "http://user:***@127.0.0.1:" + std::to_string(mirror->port()) + "/m/pkg?v=1");
  EXPECT_TRUE(sink->info.direct);
  EXPECT_EQ(sink->info.next_hop, "direct");
  EXPECT_EQ(sink->info.resolved, "127.0.0.1:" + std::to_string(origin->port()));
}

TEST_F(MirrorFetchTest, ResponseFramingReachesTheSink) {
  struct Case {
    std::string name;
    std::string method;
    std::string response;
    std::string body;
    std::optional<uint64_t> content_length;
    bool has_body;
  };
  const std::vector<Case> cases = {
      {"content-length", "GET", k200, "hello", 5, true},
      {"chunked", "GET",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
       "abcde", std::nullopt, true},
      {"until EOF", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", "all of it",
       std::nullopt, true},
      {"HEAD keeps Content-Length, no body", "HEAD",
       "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "", 1000, false},
      {"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", "", std::nullopt, false},
      {"304", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", "", std::nullopt, false},
      {"interim 103 is skipped", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + k200,
       "hello", 5, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ScriptedServer* s = server(respond(c.response));
    MirrorFetch::Params p = params(s->url());
    p.method = c.method;
    auto sink = run(std::move(p));
    ASSERT_TRUE(sink->complete) << (sink->aborted ? *sink->aborted : "");
    EXPECT_EQ(sink->body, c.body);
    EXPECT_EQ(sink->info.content_length, c.content_length);
    EXPECT_EQ(sink->info.has_body, c.has_body);
    EXPECT_EQ(sink->head->headers.find("Transfer-Encoding"), nullptr);
    EXPECT_EQ(sink->head->headers.find("Connection"), nullptr);
    EXPECT_EQ(s->heads()[0].substr(0, c.method.size() + 1), c.method + " ");
  }
}

TEST_F(MirrorFetchTest, BodyBrokenOffMidwayAborts) {
  struct Case {
    std::string name;
    Script script;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"closed",
       {Script::Kind::kRespond, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", 0},
       "closed in the middle of the body"},
      {"stalled",
       {Script::Kind::kRespondAndHang, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        0},
       "within limits.idle_timeout (300ms)"},
      {"bad chunk",
       {Script::Kind::kRespond,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n", 0},
       "malformed response body"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ScriptedServer* s = server(c.script);
    MirrorFetch::Params p = params(s->url() + "|" + s->url());
    p.idle_timeout = 300ms;
    auto sink = run(std::move(p));
    ASSERT_TRUE(sink->aborted.has_value());
    EXPECT_NE(sink->aborted->find(c.why), std::string::npos) << *sink->aborted;
    // Once a head went out there is no falling through any more.
    ASSERT_EQ(sink->attempts.size(), 1u);
    EXPECT_EQ(sink->attempts[0].status, 200);
    EXPECT_EQ(sink->attempts[0].next, "served");
    ASSERT_TRUE(sink->attempts[0].error.has_value());
    EXPECT_NE(sink->attempts[0].error->find("aborted after"), std::string::npos);
    EXPECT_EQ(s->hits(), 1u);
  }
}

// ---------------------------------------------------------------------------
// TLS mirrors.

TEST_F(MirrorFetchTest, HttpsMirrorIsVerifiedAndServes) {
  ScriptedServer* s = tlsServer(respond(k200), "mirror.test");
  auto sink = run(params(s->url("mirror.test") + "/api/go/"));
  ASSERT_TRUE(sink->complete) << (sink->failure ? sink->failure->body : "");
  EXPECT_EQ(sink->body, "hello");
  ASSERT_EQ(s->hits(), 1u);
  EXPECT_EQ(field(s->heads()[0], "Host"), "mirror.test:" + std::to_string(s->port()));
  EXPECT_EQ(sink->info.served_by, s->url("mirror.test") + "/api/go/x/@v/list");
}

TEST_F(MirrorFetchTest, HttpsFailuresFallThroughOnlyAfterPipe) {
  struct Case {
    std::string name;
    std::string leaf_host;
    bool trust;
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {"wrong name", "other.test", true,
       "TLS certificate verification failed for mirror.test: hostname mismatch"},
      {"untrusted CA", "mirror.test", false, "TLS certificate verification failed for mirror.test"},
  };
  std::string error;
  certs::SslCtxPtr bare = certs::clientContext("", &error);
  ASSERT_TRUE(bare) << error;
  for (const Case& c : cases) {
    for (const char* sep : {"|", ","}) {
      SCOPED_TRACE(c.name + " with '" + sep + "'");
      ScriptedServer* bad = tlsServer(respond(k200), c.leaf_host);
      ScriptedServer* good = server(respond(k200));
      MirrorFetch::Params p = params(bad->url("mirror.test") + sep + good->url());
      if (!c.trust) {
        p.tls_ctx = bare.get();
      }
      auto sink = run(std::move(p));
      ASSERT_GE(sink->attempts.size(), 1u);
      ASSERT_TRUE(sink->attempts[0].error.has_value());
      EXPECT_NE(sink->attempts[0].error->find(c.error_part), std::string::npos)
          << *sink->attempts[0].error;
      EXPECT_EQ(bad->hits(), 0u);  // no request ever went to it
      if (std::string(sep) == "|") {
        EXPECT_TRUE(sink->complete);
        EXPECT_EQ(good->hits(), 1u);
      } else {
        ASSERT_TRUE(sink->failure.has_value());
        EXPECT_EQ(sink->failure->status, 502);
        EXPECT_EQ(sink->failure->proxy_status_error, "tls_certificate_error");
        EXPECT_NE(sink->failure->body.find(bad->url("mirror.test")), std::string::npos);
        EXPECT_NE(sink->failure->body.find(c.error_part), std::string::npos) << sink->failure->body;
        EXPECT_EQ(good->hits(), 0u);
      }
      servers_.clear();
      spin(&loop_, 2ms);
    }
  }
}

TEST_F(MirrorFetchTest, HandshakeThatNeverEndsIsAConnectTimeout) {
  // A plain server that never answers the ClientHello.
  ScriptedServer* s = server({Script::Kind::kHang, "", 0});
  MirrorFetch::Params p = params("https://mirror.test:" + std::to_string(s->port()));
  p.connect_timeout = 300ms;
  auto sink = run(std::move(p));
  ASSERT_TRUE(sink->failure.has_value());
  EXPECT_EQ(sink->failure->status, 504);
  EXPECT_EQ(sink->failure->proxy_status_error, "connection_timeout");
  ASSERT_TRUE(sink->attempts[0].error.has_value());
  EXPECT_NE(sink->attempts[0].error->find("TLS handshake with mirror.test not finished"),
            std::string::npos);
}

TEST_F(MirrorFetchTest, HttpsWithoutAClientContextIsAConfigurationError) {
  MirrorFetch::Params p = params("https://mirror.test:1");
  p.tls_ctx = nullptr;
  auto sink = run(std::move(p));
  ASSERT_TRUE(sink->failure.has_value());
  EXPECT_EQ(sink->failure->status, 502);
  EXPECT_EQ(sink->failure->proxy_status_error, "proxy_configuration_error");
}

TEST_F(MirrorFetchTest, DirectToAnHttpsOriginUsesTls) {
  // An intercepted request: the origin itself is https.
  ScriptedServer* s = tlsServer(respond(k200), "origin.test");
  auto sink = run(params("direct", s->url("origin.test") + "/x"));
  ASSERT_TRUE(sink->complete) << (sink->failure ? sink->failure->body : "");
  EXPECT_EQ(sink->attempts[0].url, s->url("origin.test") + "/x");
  EXPECT_EQ(field(s->heads()[0], "Host"), "origin.test:" + std::to_string(s->port()));
}

// ---------------------------------------------------------------------------
// Policies around `direct` and our own listeners.

TEST_F(MirrorFetchTest, DirectPoliciesAndLoops) {
  ScriptedServer* s = server(respond(k200));
  {
    SCOPED_TRACE("direct not possible in this mode");
    MirrorFetch::Params p = params("direct", s->url() + "/x");
    p.direct_allowed = false;
    auto sink = run(std::move(p));
    ASSERT_TRUE(sink->failure.has_value());
    EXPECT_EQ(sink->failure->status, 404);
    EXPECT_EQ(sink->attempts[0].url, "direct");
    EXPECT_EQ(s->hits(), 0u);
  }
  {
    SCOPED_TRACE("private destination for direct");
    MirrorFetch::Params p = params(s->url() + "|direct", s->url() + "/x");
    p.deny_private_direct = true;
    p.list.entries[0].url = "http://broken.test";  // the mirror fails first
    auto sink = run(std::move(p));
    ASSERT_TRUE(sink->failure.has_value());
    EXPECT_EQ(sink->failure->status, 502);
    EXPECT_EQ(sink->failure->proxy_status_error, "destination_ip_prohibited");
    EXPECT_EQ(s->hits(), 0u);
  }
  {
    SCOPED_TRACE("private mirrors are fine");
    MirrorFetch::Params p = params(s->url());
    p.deny_private_direct = true;
    auto sink = run(std::move(p));
    EXPECT_TRUE(sink->complete);
  }
  {
    SCOPED_TRACE("a mirror that is this proxy");
    rt_->addListener(s->address());
    auto sink = run(params(s->url()));
    ASSERT_TRUE(sink->failure.has_value());
    EXPECT_EQ(sink->failure->proxy_status_error, "proxy_loop_detected");
    EXPECT_EQ(s->hits(), 1u);  // only the earlier request
  }
}

// ---------------------------------------------------------------------------
// Backpressure and cancellation.

class MirrorFetchStreamTest : public MirrorFetchTest, public ::testing::WithParamInterface<bool> {};

TEST_P(MirrorFetchStreamTest, BigBodyIsStreamedWithBoundedBuffering) {
  const bool tls = GetParam();
  const size_t total = 8 << 20;
  const size_t high_water = 256 * 1024;
  pattern(total);  // built before the clock of any timeout runs
  Script script{Script::Kind::kBody, "", total};
  ScriptedServer* s = tls ? tlsServer(script, "mirror.test") : server(script);
  size_t held = 0;  // bytes the "client" has not taken yet
  size_t max_held = 0;
  int pauses = 0;
  TestTimer drain_holder(&loop_);
  uv_timer_t& drain = drain_holder.timer;
  struct DrainCtx {
    size_t* held;
    SinkRecorder* sink;
  } ctx{&held, nullptr};
  drain.data = &ctx;
  MirrorFetch::Params p = params(s->url("mirror.test"));
  // Generous: a loaded machine with sanitizers is slow to build 8 MiB.
  p.response_timeout = 10s;
  auto sink = run(std::move(p), [&](SinkRecorder& r) {
    ctx.sink = &r;
    r.on_body = [&](SinkRecorder& rec, size_t len) {
      held += len;
      max_held = std::max(max_held, held);
      if (held > high_water) {
        ++pauses;
        rec.fetch->pause();
        // The client takes everything a little later.
        uv_timer_start(
            &drain,
            [](uv_timer_t* t) {
              auto* c = static_cast<DrainCtx*>(t->data);
              *c->held = 0;
              // The last block may have completed the fetch while paused;
              // after its end the fetch must not be touched.
              if (!c->sink->done()) {
                c->sink->fetch->resume();
              }
            },
            1, 0);
      }
    };
  });
  ASSERT_TRUE(sink->complete) << (sink->aborted   ? *sink->aborted
                                  : sink->failure ? sink->failure->body
                                                  : "no end");
  EXPECT_EQ(sink->body.size(), total);
  EXPECT_TRUE(sink->body == pattern(total));
  EXPECT_EQ(sink->info.content_length, total);
  EXPECT_GT(pauses, 4);
  // A pause stops reading; the current read (one pool block) still arrives.
  EXPECT_LE(max_held, high_water + BufferPool::kBlockSize);
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, MirrorFetchStreamTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Tls") : std::string("Plain");
                         });

TEST_F(MirrorFetchTest, CancelAtAnyPointStopsEverySinkCall) {
  pattern(4 << 20);  // built before the clock of any timeout runs
  ScriptedServer* big = server({Script::Kind::kBody, "", 4 << 20});
  ScriptedServer* hang = server({Script::Kind::kHang, "", 0});
  ScriptedServer* tls_hang = tlsServer({Script::Kind::kHang, "", 0}, "mirror.test");
  {
    SCOPED_TRACE("before the first loop turn");
    SinkRecorder sink;
    sink.fetch = MirrorFetch::start(params(big->url()), &sink);
    sink.cancel();
    spin(&loop_, 50ms);
    EXPECT_EQ(sink.terminal, 0);
    EXPECT_EQ(sink.after_end, 0);
    EXPECT_TRUE(sink.attempts.empty());
  }
  for (ScriptedServer* s : {hang, tls_hang}) {
    SCOPED_TRACE("while waiting for the head");
    SinkRecorder sink;
    MirrorFetch::Params p = params(s->url("mirror.test"));
    p.response_timeout = 10s;
    sink.fetch = MirrorFetch::start(std::move(p), &sink);
    ASSERT_TRUE(runUntil(&loop_, [&] { return s->hits() == 1; }));
    sink.cancel();
    spin(&loop_, 50ms);
    EXPECT_EQ(sink.terminal, 0);
    EXPECT_EQ(sink.after_end, 0);
  }
  {
    SCOPED_TRACE("inside a body callback");
    SinkRecorder sink;
    sink.on_body = [](SinkRecorder& r, size_t) { r.cancel(); };
    sink.fetch = MirrorFetch::start(params(big->url()), &sink);
    ASSERT_TRUE(runUntil(&loop_, [&] { return sink.cancelled; }));
    spin(&loop_, 50ms);
    EXPECT_EQ(sink.body_calls, 1u);
    EXPECT_EQ(sink.terminal, 0);
    EXPECT_EQ(sink.after_end, 0);
    ASSERT_EQ(sink.attempts.size(), 1u);
    EXPECT_EQ(sink.attempts[0].next, "served");
  }
  {
    SCOPED_TRACE("inside the head callback, paused");
    class HeadCanceller : public SinkRecorder {
     public:
      void onMirrorHead(const ResponseHead& h, const MirrorResponseInfo& i) override {
        SinkRecorder::onMirrorHead(h, i);
        fetch->pause();
        cancel();
      }
    } sink;
    sink.fetch = MirrorFetch::start(params(big->url()), &sink);
    ASSERT_TRUE(runUntil(&loop_, [&] { return sink.cancelled; }));
    spin(&loop_, 50ms);
    EXPECT_EQ(sink.body_calls, 0u);
    EXPECT_EQ(sink.after_end, 0);
  }
}

// ---------------------------------------------------------------------------
// The pure helpers.

TEST(ConfigureMirrorParams, FromDecisionAndConfig) {
  struct Case {
    std::string name;
    rules::Action action;
    std::string mirrors;
    bool deny_private;
    bool allow_private;
    bool ok;
    std::vector<std::string> entries;  // entry urls ("direct" for the keyword)
    bool expect_deny;
  };
  const std::vector<Case> cases = {
      {"mirror list",
       rules::Action::kMirror,
       "https://a.test/p/|b.test,direct",
       false,
       false,
       true,
       {"https://a.test/p/", "https://b.test", "direct"},
       false},
      {"direct action", rules::Action::kDirect, "", true, false, true, {"direct"}, true},
      {"allow_private exempts", rules::Action::kDirect, "", true, true, true, {"direct"}, false},
      {"off stops the list",
       rules::Action::kMirror,
       "off,https://a.test",
       false,
       false,
       true,
       {"off"},
       false},
      {"bad list", rules::Action::kMirror, "ftp://a.test", false, false, false, {}, false},
      {"deny is not fetched", rules::Action::kDeny, "", false, false, false, {}, false},
      {"upstream is not fetched", rules::Action::kUpstream, "", false, false, false, {}, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    rules::Config config;
    config.limits.connect_timeout = 1234ms;
    config.limits.response_timeout = 2345ms;
    config.limits.idle_timeout = 3456ms;
    config.limits.max_header_bytes = 4567;
    config.access.deny_private_destinations = c.deny_private;
    rules::Decision decision;
    decision.action = c.action;
    decision.rule = "r";
    decision.mirrors = c.mirrors;
    decision.allow_private = c.allow_private;
    MirrorFetch::Params p;
    std::string error;
    ASSERT_EQ(configureMirrorParams(config, decision, &p, &error), c.ok) << error;
    if (!c.ok) {
      EXPECT_FALSE(error.empty());
      continue;
    }
    std::vector<std::string> entries;
    for (const rules::GoproxyEntry& e : p.list.entries) {
      entries.push_back(e.url);
    }
    EXPECT_EQ(entries, c.entries);
    EXPECT_EQ(p.connect_timeout, 1234ms);
    EXPECT_EQ(p.response_timeout, 2345ms);
    EXPECT_EQ(p.idle_timeout, 3456ms);
    EXPECT_EQ(p.max_header_bytes, 4567u);
    EXPECT_EQ(p.deny_private_direct, c.expect_deny);
  }
}

TEST(MirrorUrl, JoinMirrorPath) {
  struct Case {
    std::string base;
    std::string original;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"/api/go/", "/github.com/x/@v/list", "/api/go/github.com/x/@v/list"},
      {"/api/go", "/github.com/x/@v/list", "/api/go/github.com/x/@v/list"},
      {"/api/go///", "/x", "/api/go/x"},
      {"", "/x?q=1", "/x?q=1"},
      {"/", "/x", "/x"},
      {"", "/", "/"},
      {"/p", "/", "/p/"},
      {"/p/", "", "/p/"},
      {"/p", "?q", "/p/?q"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(detail::joinMirrorPath(c.base, c.original), c.expect)
        << c.base << " + " << c.original;
  }
}

TEST(MirrorUrl, ParseMirrorBase) {
  struct Case {
    std::string url;
    bool ok;
    std::string scheme;
    std::string host;
    uint16_t port;
    std::string path;
    std::string user;
    std::string password;
  };
  const std::vector<Case> cases = {
      {"https://goproxy.cn", true, "https", "goproxy.cn", 443, "", "", ""},
      {"https://host/api/go/proxy/", true, "https", "host", 443, "/api/go/proxy/", "", ""},
      {"http://Mirror.Test:8080/p?x=1#f", true, "http", "mirror.test", 8080, "/p", "", ""},
      {"HTTPS://[::1]:8443/", true, "https", "::1", 8443, "", "", ""},
      {"https://u:p%40ss@h/x", true, "https", "h", 443, "/x", "u", "p@ss"},
      {"https://token@h", true, "https", "h", 443, "", "token", ""},
      {"file:///srv/proxy", false, "", "", 0, "", "", ""},
      {"ftp://h/", false, "", "", 0, "", "", ""},
      {"https://", false, "", "", 0, "", "", ""},
      {"https://h:99999/", false, "", "", 0, "", "", ""},
      {"no-scheme", false, "", "", 0, "", "", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url);
    detail::MirrorBase base;
    std::string error;
    ASSERT_EQ(detail::parseMirrorBase(c.url, &base, &error), c.ok) << error;
    if (!c.ok) {
      EXPECT_FALSE(error.empty());
      EXPECT_EQ(error.find("p%40ss"), std::string::npos);
      continue;
    }
    EXPECT_EQ(base.scheme, c.scheme);
    EXPECT_EQ(base.authority.host, c.host);
    EXPECT_EQ(base.authority.port, c.port);
    EXPECT_EQ(base.path, c.path);
    EXPECT_EQ(base.user, c.user);
    EXPECT_EQ(base.password, c.password);
    EXPECT_EQ(base.has_credentials, !c.user.empty());
  }
}

}  // namespace
}  // namespace switchyard
