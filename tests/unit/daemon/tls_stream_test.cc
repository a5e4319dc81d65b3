// TlsStream on a real loop: a client stream and a server stream on the two
// ends of a loopback TCP connection, with a CA made in a temporary directory
// and leaves minted from it. Every test ends with the loop closed.
#include "daemon/tls_stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "certs/ca.h"
#include "certs/tls_context.h"
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

// Both ends of one loopback TCP connection, heap handles ready for
// TlsStream::create().
struct TcpPair {
  uv_tcp_t* client = nullptr;
  uv_tcp_t* server = nullptr;
};

bool makePair(uv_loop_t* loop, TcpPair* out) {
  struct State {
    uv_tcp_t listener;
    uv_tcp_t* accepted = nullptr;
    bool connected = false;
    bool listener_closed = false;
  } state;
  uv_tcp_init(loop, &state.listener);
  state.listener.data = &state;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&state.listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&state.listener), 8, [](uv_stream_t* s, int) {
    auto* st = static_cast<State*>(s->data);
    st->accepted = new uv_tcp_t;
    uv_tcp_init(s->loop, st->accepted);
    uv_accept(s, reinterpret_cast<uv_stream_t*>(st->accepted));
  });
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(&state.listener, reinterpret_cast<sockaddr*>(&bound), &len);
  auto* client = new uv_tcp_t;
  uv_tcp_init(loop, client);
  uv_connect_t req;
  req.data = &state;
  if (rc == 0) {
    uv_tcp_connect(
        &req, client, reinterpret_cast<const sockaddr*>(&bound),
        [](uv_connect_t* r, int status) { static_cast<State*>(r->data)->connected = status == 0; });
  }
  bool ok = rc == 0 && runUntil(loop, [&] { return state.connected && state.accepted; });
  uv_close(reinterpret_cast<uv_handle_t*>(&state.listener),
           [](uv_handle_t* h) { static_cast<State*>(h->data)->listener_closed = true; });
  runUntil(loop, [&] { return state.listener_closed; });
  out->client = client;
  out->server = state.accepted;
  return ok;
}

void closeTcp(uv_tcp_t* tcp) {
  uv_close(reinterpret_cast<uv_handle_t*>(tcp),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
}

// Records everything a stream reports, and counts callbacks that arrive
// after the test closed the stream (there must be none).
class Recorder : public TlsStream::Handler {
 public:
  TlsStream* stream = nullptr;
  int handshakes = 0;
  std::string data;
  int data_calls = 0;
  int ends = 0;
  bool clean_end = false;
  std::vector<TlsError> errors;
  std::vector<std::string> server_names;
  bool closed = false;
  int after_close = 0;
  int while_paused = 0;
  bool paused = false;
  std::function<void(Recorder&)> on_handshake;
  std::function<void(Recorder&, size_t)> on_data;
  std::function<bool(Recorder&, const std::string&)> on_name;

  void onTlsHandshake(TlsStream*) override {
    note();
    ++handshakes;
    if (on_handshake) {
      on_handshake(*this);
    }
  }
  void onTlsData(TlsStream*, const BufferRef& block, const char* at, size_t len) override {
    note();
    EXPECT_TRUE(static_cast<bool>(block));
    EXPECT_GE(at, block.data());
    EXPECT_LE(at + len, block.data() + BufferPool::kBlockSize);
    EXPECT_LE(len, TlsStream::kMaxPlaintextPerCallback);
    if (paused) {
      ++while_paused;
    }
    ++data_calls;
    data.append(at, len);
    if (on_data) {
      on_data(*this, len);
    }
  }
  void onTlsEnd(TlsStream*, bool clean) override {
    note();
    ++ends;
    clean_end = clean;
  }
  void onTlsError(TlsStream*, const TlsError& error) override {
    note();
    errors.push_back(error);
  }
  bool onTlsServerName(TlsStream* s, const std::string& name) override {
    note();
    server_names.push_back(name);
    if (on_name) {
      return on_name(*this, name);
    }
    return TlsStream::Handler::onTlsServerName(s, name);
  }

  void close() {
    if (!closed && stream != nullptr) {
      closed = true;
      stream->close();
    }
  }
  void abort() {
    if (!closed && stream != nullptr) {
      closed = true;
      stream->abort();
    }
  }
  void pause() {
    paused = true;
    stream->pauseReading();
  }
  void resume() {
    paused = false;
    stream->resumeReading();
  }

 private:
  void note() {
    if (closed) {
      ++after_close;
    }
  }
};

std::string pattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>('a' + (i * 7 + i / 1024) % 26);
  }
  return out;
}

class TlsStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // As in the daemon (cli_run.cc): a write to a socket the peer already
    // closed must be an EPIPE error, not the end of the process.
    ::signal(SIGPIPE, SIG_IGN);
    ca_ = new TestCa("sy-tlsstream");
  }
  static void TearDownTestSuite() {
    delete ca_;
    ca_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    client_ctx_ = ca_->trustingClient();
    ASSERT_TRUE(client_ctx_);
    std::string error;
    server_ctx_ = certs::serverContext(&error);
    ASSERT_TRUE(server_ctx_) << error;
    live_blocks_ = BufferPool::liveBlocks();
  }

  void TearDown() override {
    client_.close();
    server_.close();
    EXPECT_TRUE(runUntil(&loop_, [this] { return uv_loop_alive(&loop_) == 0; }));
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    EXPECT_EQ(client_.after_close, 0);
    EXPECT_EQ(server_.after_close, 0);
    EXPECT_EQ(BufferPool::liveBlocks(), live_blocks_);
  }

  LeafPtr mint(const std::string& host) { return ca_->mint(host); }

  // Connects a pair and wraps both ends; the server presents `leaf` (or
  // asks its handler when null), the client verifies `host`.
  void startPair(const std::string& host, LeafPtr leaf, SSL_CTX* client_ctx = nullptr) {
    TcpPair pair;
    ASSERT_TRUE(makePair(&loop_, &pair));
    TlsStream::Options c;
    c.role = TlsStream::Role::kClient;
    c.ctx = client_ctx != nullptr ? client_ctx : client_ctx_.get();
    c.host = host;
    client_.stream = TlsStream::create(pair.client, c, &client_);
    TlsStream::Options s;
    s.role = TlsStream::Role::kServer;
    s.ctx = server_ctx_.get();
    s.leaf = std::move(leaf);
    server_.stream = TlsStream::create(pair.server, s, &server_);
    std::string error;
    ASSERT_TRUE(server_.stream->start("", &error)) << error;
    ASSERT_TRUE(client_.stream->start("", &error)) << error;
  }

  bool bothShookHands() {
    return runUntil(&loop_, [this] {
      return (client_.handshakes > 0 && server_.handshakes > 0) || !client_.errors.empty() ||
             !server_.errors.empty();
    });
  }

  static TestCa* ca_;
  uv_loop_t loop_;
  certs::SslCtxPtr client_ctx_;
  certs::SslCtxPtr server_ctx_;
  Recorder client_;
  Recorder server_;
  size_t live_blocks_ = 0;
};

TestCa* TlsStreamTest::ca_ = nullptr;

TEST_F(TlsStreamTest, HandshakeThenDataBothWaysThenCleanClose) {
  startPair("mirror.test", mint("mirror.test"));
  ASSERT_TRUE(bothShookHands());
  ASSERT_TRUE(client_.errors.empty()) << client_.errors[0].message;
  ASSERT_TRUE(server_.errors.empty()) << server_.errors[0].message;
  EXPECT_EQ(client_.stream->alpn(), "http/1.1");
  EXPECT_EQ(server_.stream->alpn(), "http/1.1");
  EXPECT_EQ(server_.stream->serverName(), "mirror.test");
  EXPECT_EQ(client_.stream->protocolVersion(), "TLSv1.3");
  EXPECT_TRUE(client_.stream->handshakeDone());

  std::vector<int> done;
  ASSERT_EQ(client_.stream->write("GET / HTTP/1.1\r\n\r\n", [&](int s) { done.push_back(s); }), 0);
  ASSERT_TRUE(runUntil(&loop_, [&] { return server_.data.size() == 18; }));
  EXPECT_EQ(server_.data, "GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(server_.stream->write(std::string("pong")), 0);
  ASSERT_TRUE(runUntil(&loop_, [&] { return client_.data == "pong"; }));
  EXPECT_EQ(done, std::vector<int>{0});
  EXPECT_EQ(client_.stream->writeQueueSize(), 0u);

  server_.close();
  ASSERT_TRUE(runUntil(&loop_, [&] { return client_.ends > 0; }));
  EXPECT_TRUE(client_.clean_end);
  EXPECT_TRUE(client_.errors.empty());
}

TEST_F(TlsStreamTest, WritesBeforeTheHandshakeAreQueuedAndSentInOrder) {
  startPair("mirror.test", mint("mirror.test"));
  std::vector<int> order;
  ASSERT_EQ(client_.stream->write("one,", [&](int) { order.push_back(1); }), 0);
  ASSERT_EQ(client_.stream->write("two", [&](int) { order.push_back(2); }), 0);
  EXPECT_EQ(client_.stream->writeQueueSize(), 7u);  // held until the handshake
  ASSERT_TRUE(runUntil(&loop_, [&] { return server_.data == "one,two"; }));
  ASSERT_TRUE(runUntil(&loop_, [&] { return order.size() == 2; }));
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(client_.stream->write(std::string()), UV_EINVAL);
}

TEST_F(TlsStreamTest, VerificationFailuresNameHostAndReason) {
  struct Case {
    std::string name;
    std::string expect_host;  // what the client verifies
    std::string leaf_host;    // what the server presents
    bool trust_ca;
    std::string reason;  // part of the message
  };
  const std::vector<Case> cases = {
      {"wrong name", "mirror.test", "other.test", true, "hostname mismatch"},
      {"wrong IP", "127.0.0.2", "127.0.0.1", true, "IP address mismatch"},
      {"untrusted CA", "mirror.test", "mirror.test", false, "certificate"},
  };
  std::string error;
  certs::SslCtxPtr bare = certs::clientContext("", &error);
  ASSERT_TRUE(bare) << error;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    client_ = Recorder();
    server_ = Recorder();
    startPair(c.expect_host, mint(c.leaf_host), c.trust_ca ? nullptr : bare.get());
    ASSERT_TRUE(runUntil(&loop_, [&] { return !client_.errors.empty(); }));
    EXPECT_EQ(client_.handshakes, 0);
    EXPECT_EQ(client_.errors[0].kind, TlsError::Kind::kCertificate);
    EXPECT_STREQ(client_.errors[0].proxyStatusError(), "tls_certificate_error");
    EXPECT_NE(client_.errors[0].message.find("verification failed for " + c.expect_host),
              std::string::npos)
        << client_.errors[0].message;
    EXPECT_NE(client_.errors[0].message.find(c.reason), std::string::npos)
        << client_.errors[0].message;
    // The server hears about it through the client's alert.
    ASSERT_TRUE(runUntil(&loop_, [&] { return !server_.errors.empty() || server_.ends > 0; }));
    if (!server_.errors.empty()) {
      EXPECT_EQ(server_.errors[0].kind, TlsError::Kind::kHandshake);
    }
    client_.close();
    server_.close();
    spin(&loop_, 5ms);
  }
}

TEST_F(TlsStreamTest, ServerNameCallbackCanProvideTheLeafLater) {
  LeafPtr leaf = mint("mirror.test");
  TestTimer later_holder(&loop_);
  uv_timer_t& later = later_holder.timer;
  struct Ctx {
    Recorder* server;
    LeafPtr leaf;
    bool provided = false;
  } ctx{&server_, leaf};
  later.data = &ctx;
  server_.on_name = [&](Recorder&, const std::string& name) {
    EXPECT_EQ(name, "mirror.test");
    // As if minted on a worker thread: the answer comes on a later turn.
    uv_timer_start(
        &later,
        [](uv_timer_t* t) {
          auto* c = static_cast<Ctx*>(t->data);
          std::string error;
          c->provided = c->server->stream->provideLeaf(c->leaf, &error);
          EXPECT_TRUE(c->provided) << error;
        },
        20, 0);
    return true;
  };
  startPair("mirror.test", nullptr);
  ASSERT_TRUE(bothShookHands());
  EXPECT_TRUE(ctx.provided);
  EXPECT_TRUE(client_.errors.empty());
  EXPECT_EQ(server_.server_names, std::vector<std::string>{"mirror.test"});
  EXPECT_EQ(server_.stream->serverName(), "mirror.test");
}

TEST_F(TlsStreamTest, ServerNameCallbackCanProvideTheLeafAtOnce) {
  LeafPtr leaf = mint("mirror.test");
  server_.on_name = [&](Recorder& r, const std::string&) {
    std::string error;
    EXPECT_TRUE(r.stream->provideLeaf(leaf, &error)) << error;
    return true;
  };
  startPair("mirror.test", nullptr);
  ASSERT_TRUE(bothShookHands());
  EXPECT_EQ(client_.handshakes, 1);
  EXPECT_EQ(server_.handshakes, 1);
}

TEST_F(TlsStreamTest, RefusedServerNameFailsBothSides) {
  startPair("mirror.test", nullptr);  // the default handler refuses
  ASSERT_TRUE(runUntil(&loop_, [&] { return !server_.errors.empty(); }));
  EXPECT_EQ(server_.errors[0].kind, TlsError::Kind::kHandshake);
  EXPECT_NE(server_.errors[0].message.find("no certificate for \"mirror.test\""), std::string::npos)
      << server_.errors[0].message;
  ASSERT_TRUE(runUntil(&loop_, [&] { return !client_.errors.empty(); }));
  EXPECT_EQ(client_.errors[0].kind, TlsError::Kind::kHandshake);
  EXPECT_NE(client_.errors[0].message.find("unrecognized name"), std::string::npos)
      << client_.errors[0].message;
}

TEST_F(TlsStreamTest, ServerStartsWithBytesAlreadyRead) {
  // The CONNECT head parser may have read the ClientHello already: the
  // server side reads the first bytes itself, then hands them over.
  TcpPair pair;
  ASSERT_TRUE(makePair(&loop_, &pair));
  struct Grab {
    std::string bytes;
  } grab;
  pair.server->data = &grab;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(pair.server),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static char storage[65536];
        *buf = uv_buf_init(storage, sizeof(storage));
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        if (n > 0) {
          static_cast<Grab*>(s->data)->bytes.append(buf->base, static_cast<size_t>(n));
          uv_read_stop(s);
        }
      });
  TlsStream::Options c;
  c.role = TlsStream::Role::kClient;
  c.ctx = client_ctx_.get();
  c.host = "mirror.test";
  client_.stream = TlsStream::create(pair.client, c, &client_);
  std::string error;
  ASSERT_TRUE(client_.stream->start("", &error)) << error;
  client_.stream->write("hello");
  ASSERT_TRUE(runUntil(&loop_, [&] { return !grab.bytes.empty(); }));
  EXPECT_EQ(grab.bytes[0], 0x16);  // a TLS handshake record
  pair.server->data = nullptr;
  TlsStream::Options s;
  s.role = TlsStream::Role::kServer;
  s.ctx = server_ctx_.get();
  s.leaf = mint("mirror.test");
  server_.stream = TlsStream::create(pair.server, s, &server_);
  ASSERT_TRUE(server_.stream->start(grab.bytes, &error)) << error;
  EXPECT_EQ(server_.handshakes, 0);  // nothing runs inside start()
  ASSERT_TRUE(bothShookHands());
  ASSERT_TRUE(runUntil(&loop_, [&] { return server_.data == "hello"; }));
}

TEST_F(TlsStreamTest, PlainHttpToATlsServerIsAHandshakeError) {
  TcpPair pair;
  ASSERT_TRUE(makePair(&loop_, &pair));
  TlsStream::Options s;
  s.role = TlsStream::Role::kServer;
  s.ctx = server_ctx_.get();
  s.leaf = mint("mirror.test");
  server_.stream = TlsStream::create(pair.server, s, &server_);
  std::string error;
  ASSERT_TRUE(server_.stream->start("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &error)) << error;
  ASSERT_TRUE(runUntil(&loop_, [&] { return !server_.errors.empty(); }));
  EXPECT_EQ(server_.errors[0].kind, TlsError::Kind::kHandshake);
  EXPECT_NE(server_.errors[0].message.find("http request"), std::string::npos)
      << server_.errors[0].message;
  closeTcp(pair.client);
}

TEST_F(TlsStreamTest, EofDuringTheHandshakeIsAHandshakeError) {
  TcpPair pair;
  ASSERT_TRUE(makePair(&loop_, &pair));
  TlsStream::Options c;
  c.role = TlsStream::Role::kClient;
  c.ctx = client_ctx_.get();
  c.host = "mirror.test";
  client_.stream = TlsStream::create(pair.client, c, &client_);
  std::string error;
  ASSERT_TRUE(client_.stream->start("", &error)) << error;
  closeTcp(pair.server);  // the "server" hangs up without a word
  ASSERT_TRUE(runUntil(&loop_, [&] { return !client_.errors.empty(); }));
  EXPECT_NE(client_.errors[0].message.find("connection was closed"), std::string::npos)
      << client_.errors[0].message;
  EXPECT_EQ(client_.handshakes, 0);
}

TEST_F(TlsStreamTest, StartFailsForAnUnusableHost) {
  TcpPair pair;
  ASSERT_TRUE(makePair(&loop_, &pair));
  TlsStream::Options c;
  c.role = TlsStream::Role::kClient;
  c.ctx = client_ctx_.get();
  c.host = "";
  client_.stream = TlsStream::create(pair.client, c, &client_);
  std::string error;
  EXPECT_FALSE(client_.stream->start("", &error));
  EXPECT_FALSE(error.empty());
  client_.abort();
  closeTcp(pair.server);
}

TEST_F(TlsStreamTest, TcpEndWithoutCloseNotifyIsAnUncleanEnd) {
  startPair("mirror.test", mint("mirror.test"));
  ASSERT_TRUE(bothShookHands());
  server_.stream->write("partial");
  ASSERT_TRUE(runUntil(&loop_, [&] { return client_.data == "partial"; }));
  // A FIN without close_notify, as from a crashed or truncating peer.
  static uv_shutdown_t req;
  uv_shutdown(&req, reinterpret_cast<uv_stream_t*>(server_.stream->tcp()), nullptr);
  ASSERT_TRUE(runUntil(&loop_, [&] { return client_.ends > 0; }));
  EXPECT_FALSE(client_.clean_end);
  EXPECT_TRUE(client_.errors.empty());
}

TEST_F(TlsStreamTest, AbortResetsThePeer) {
  startPair("mirror.test", mint("mirror.test"));
  ASSERT_TRUE(bothShookHands());
  server_.abort();
  ASSERT_TRUE(runUntil(&loop_, [&] { return !client_.errors.empty() || client_.ends > 0; }));
  if (!client_.errors.empty()) {
    EXPECT_EQ(client_.errors[0].kind, TlsError::Kind::kTransport);
    EXPECT_STREQ(client_.errors[0].proxyStatusError(), "connection_terminated");
  } else {
    EXPECT_FALSE(client_.clean_end);
  }
}

TEST_F(TlsStreamTest, NoCallbackAfterCloseEvenWithDataInFlight) {
  startPair("mirror.test", mint("mirror.test"));
  ASSERT_TRUE(bothShookHands());
  client_.on_data = [](Recorder& r, size_t) { r.close(); };
  std::string big = pattern(1 << 20);
  server_.stream->write(big);
  ASSERT_TRUE(runUntil(&loop_, [&] { return client_.closed; }));
  spin(&loop_, 50ms);
  EXPECT_EQ(client_.data_calls, 1);
  EXPECT_EQ(client_.after_close, 0);
}

TEST_F(TlsStreamTest, PauseHoldsDataAndResumeDeliversAllOfIt) {
  startPair("mirror.test", mint("mirror.test"));
  ASSERT_TRUE(bothShookHands());
  const size_t total = 4 << 20;
  std::string big = pattern(total);
  size_t since_resume = 0;
  size_t max_between_pauses = 0;
  TestTimer resume_timer_holder(&loop_);
  uv_timer_t& resume_timer = resume_timer_holder.timer;
  resume_timer.data = &client_;
  client_.on_data = [&](Recorder& r, size_t len) {
    since_resume += len;
    max_between_pauses = std::max(max_between_pauses, since_resume);
    if (since_resume >= 256 * 1024) {
      r.pause();
      since_resume = 0;
      uv_timer_start(
          &resume_timer, [](uv_timer_t* t) { static_cast<Recorder*>(t->data)->resume(); }, 2, 0);
    }
  };
  int written = -1;
  server_.stream->write(big, [&](int status) { written = status; });
  ASSERT_TRUE(runUntil(
      &loop_, [&] { return client_.data.size() == total; }, 20000ms));
  EXPECT_TRUE(client_.data == big);
  EXPECT_EQ(client_.while_paused, 0);
  // A pause takes effect after the current callback: at most one block
  // beyond the threshold.
  EXPECT_LE(max_between_pauses, 256 * 1024 + TlsStream::kMaxPlaintextPerCallback);
  ASSERT_TRUE(runUntil(&loop_, [&] { return written != -1; }));
  EXPECT_EQ(written, 0);
  EXPECT_EQ(server_.stream->writeQueueSize(), 0u);
}

TEST_F(TlsStreamTest, EndIsReportedOnlyAfterHeldDataWasDelivered) {
  startPair("mirror.test", mint("mirror.test"));
  ASSERT_TRUE(bothShookHands());
  client_.pause();
  server_.stream->write("last words");
  server_.close();
  spin(&loop_, 100ms);
  EXPECT_EQ(client_.data, "");
  EXPECT_EQ(client_.ends, 0);
  client_.resume();
  ASSERT_TRUE(runUntil(&loop_, [&] { return client_.ends > 0; }));
  EXPECT_EQ(client_.data, "last words");
  EXPECT_TRUE(client_.clean_end);
}

TEST_F(TlsStreamTest, WriteAfterErrorIsRefused) {
  startPair("mirror.test", mint("other.test"));
  ASSERT_TRUE(runUntil(&loop_, [&] { return !client_.errors.empty(); }));
  EXPECT_EQ(client_.stream->write("x"), UV_EPIPE);
}

TEST(UpstreamTlsContexts, CachesPerFileAndReportsBadFiles) {
  UpstreamTlsContexts contexts;
  std::string error;
  SSL_CTX* a = contexts.get("", &error);
  ASSERT_NE(a, nullptr) << error;
  EXPECT_EQ(contexts.get("", &error), a);
  EXPECT_EQ(contexts.get("/nonexistent/ca.pem", &error), nullptr);
  EXPECT_NE(error.find("/nonexistent/ca.pem"), std::string::npos) << error;
  contexts.clear();
}

}  // namespace
}  // namespace switchyard
