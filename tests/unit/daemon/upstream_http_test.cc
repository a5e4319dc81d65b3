// ResponseReader (responses from origins and parents, fed whole and byte by
// byte) and UpstreamPool (idle keep-alive connections on a real loop).
#include "daemon/upstream_http.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace switchyard {
namespace {

// Records what the reader reports.
class Recorder : public ResponseReader::Listener {
 public:
  ResponseReader::HeadAction action = ResponseReader::HeadAction::kBody;
  std::vector<int> statuses;  // every head, interim ones included
  std::vector<std::string> reasons;
  std::vector<HeaderList> heads;
  std::string body;
  int completes = 0;

  ResponseReader::HeadAction onResponseHead(const ResponseHead& head) override {
    statuses.push_back(head.status);
    reasons.push_back(head.reason);
    heads.push_back(head.headers);
    return action;
  }
  void onResponseBody(const char* at, size_t len) override { body.append(at, len); }
  void onResponseComplete() override { ++completes; }
};

struct ReaderCase {
  std::string name;
  std::string input;
  ResponseReader::HeadAction action;
  bool eof;  // call finish() after the input
  // Expected:
  ResponseReader::Result::Kind kind;
  size_t consumed;  // bytes consumed (when paused)
  std::vector<int> statuses;
  std::string body;
  int completes;
  bool keep_alive;
};

const std::string kClBody = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

std::vector<ReaderCase> readerCases() {
  using K = ResponseReader::Result::Kind;
  using A = ResponseReader::HeadAction;
  return {
      {"content-length",
       kClBody,
       A::kBody,
       false,
       K::kPaused,
       kClBody.size(),
       {200},
       "hello",
       1,
       true},
      {"content-length with surplus",
       kClBody + "EXTRA",
       A::kBody,
       false,
       K::kPaused,
       kClBody.size(),
       {200},
       "hello",
       1,
       true},
      {"chunked",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n"
       "0\r\nX-Trailer: t\r\n\r\n",
       A::kBody,
       false,
       K::kPaused,
       0,
       {200},
       "abcde",
       1,
       true},
      {"until eof",
       "HTTP/1.1 200 OK\r\n\r\nall of it",
       A::kBody,
       true,
       K::kPaused,
       0,
       {200},
       "all of it",
       1,
       false},
      {"http/1.0 closes",
       "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
       A::kBody,
       false,
       K::kPaused,
       0,
       {200},
       "ok",
       1,
       false},
      {"connection close",
       "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
       A::kBody,
       false,
       K::kPaused,
       0,
       {404},
       "",
       1,
       false},
      {"100 continue then 200",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
       "Content-Length: 1\r\n\r\nx",
       A::kBody,
       false,
       K::kPaused,
       0,
       {100, 201},
       "x",
       1,
       true},
      {"103 early hints",
       "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n"
       "Content-Length: 0\r\n\r\n",
       A::kBody,
       false,
       K::kPaused,
       0,
       {103, 200},
       "",
       1,
       true},
      {"204 has no body",
       "HTTP/1.1 204 No Content\r\n\r\n",
       A::kBody,
       false,
       K::kPaused,
       0,
       {204},
       "",
       1,
       true},
      {"304 ignores content-length",
       "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
       A::kBody,
       false,
       K::kPaused,
       0,
       {304},
       "",
       1,
       true},
      {"HEAD response",
       "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
       A::kNoBody,
       false,
       K::kPaused,
       0,
       {200},
       "",
       1,
       true},
      {"CONNECT 200 pauses after the head",
       "HTTP/1.1 200 Connection established\r\n\r\nTLS",
       A::kPause,
       false,
       K::kPaused,
       39,
       {200},
       "",
       0,
       true},
      {"incomplete body",
       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
       A::kBody,
       false,
       K::kNeedMore,
       0,
       {200},
       "abc",
       0,
       true},
      {"eof in body",
       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
       A::kBody,
       true,
       K::kError,
       0,
       {200},
       "abc",
       0,
       true},
      {"eof before anything", "", A::kBody, true, K::kNeedMore, 0, {}, "", 0, true},
      {"garbage", "SSH-2.0-OpenSSH\r\n\r\n", A::kBody, false, K::kError, 0, {}, "", 0, true},
      {"bad chunk size",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       A::kBody,
       false,
       K::kError,
       0,
       {200},
       "",
       0,
       true},
      {"duplicate content-length",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       A::kBody,
       false,
       K::kError,
       0,
       {},
       "",
       0,
       true},
      {"bad field name",
       "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
       A::kBody,
       false,
       K::kError,
       0,
       {},
       "",
       0,
       true},
      {"101 is refused",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
       A::kBody,
       false,
       K::kError,
       0,
       {},
       "",
       0,
       true},
  };
}

void checkResult(const ReaderCase& c, const Recorder& rec, const ResponseReader& reader,
                 ResponseReader::Result::Kind kind, size_t consumed) {
  EXPECT_EQ(static_cast<int>(kind), static_cast<int>(c.kind));
  EXPECT_EQ(rec.statuses, c.statuses);
  EXPECT_EQ(rec.body, c.body);
  EXPECT_EQ(rec.completes, c.completes);
  if (c.consumed != 0) {
    EXPECT_EQ(consumed, c.consumed);
  }
  if (c.kind == ResponseReader::Result::Kind::kPaused && c.completes == 1) {
    EXPECT_EQ(reader.keepAlive(), c.keep_alive);
  }
}

TEST(ResponseReader, WholeInput) {
  for (const ReaderCase& c : readerCases()) {
    SCOPED_TRACE(c.name);
    Recorder rec;
    rec.action = c.action;
    ResponseReader reader(&rec, 4096);
    ResponseReader::Result r = reader.feed(c.input.data(), c.input.size());
    if (c.eof && r.kind == ResponseReader::Result::Kind::kNeedMore) {
      r = reader.finish();
    }
    checkResult(c, rec, reader, r.kind, r.consumed);
    if (r.kind == ResponseReader::Result::Kind::kError) {
      EXPECT_FALSE(r.error.empty());
    }
  }
}

TEST(ResponseReader, ByteByByte) {
  for (const ReaderCase& c : readerCases()) {
    SCOPED_TRACE(c.name);
    Recorder rec;
    rec.action = c.action;
    ResponseReader reader(&rec, 4096);
    ResponseReader::Result r;
    size_t consumed = 0;
    for (size_t i = 0; i < c.input.size(); ++i) {
      r = reader.feed(c.input.data() + i, 1);
      if (r.kind != ResponseReader::Result::Kind::kNeedMore) {
        consumed = i + r.consumed;
        break;
      }
    }
    if (c.eof && r.kind == ResponseReader::Result::Kind::kNeedMore) {
      r = reader.finish();
    }
    checkResult(c, rec, reader, r.kind, consumed);
  }
}

TEST(ResponseReader, HeadLimits) {
  struct Case {
    std::string name;
    std::string input;
    bool too_large;
  };
  std::string many;
  for (int i = 0; i < 300; ++i) {
    many += "X-" + std::to_string(i) + ": 1\r\n";
  }
  const std::vector<Case> cases = {
      {"long value", "HTTP/1.1 200 OK\r\nX: " + std::string(5000, 'a') + "\r\n\r\n", true},
      {"long reason", "HTTP/1.1 200 " + std::string(5000, 'r') + "\r\n\r\n", true},
      {"too many fields", "HTTP/1.1 200 OK\r\n" + many + "\r\n", true},
      {"fits", "HTTP/1.1 200 OK\r\nX: " + std::string(1000, 'a') + "\r\nContent-Length: 0\r\n\r\n",
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Recorder rec;
    ResponseReader reader(&rec, 4096);
    ResponseReader::Result r = reader.feed(c.input.data(), c.input.size());
    if (c.too_large) {
      EXPECT_EQ(r.kind, ResponseReader::Result::Kind::kError);
      EXPECT_TRUE(r.head_too_large);
    } else {
      EXPECT_EQ(r.kind, ResponseReader::Result::Kind::kPaused);
    }
  }
}

// The head is counted as reason + for each field (name + 4 + value), the
// same however the head is cut into reads: llhttp calls onHeaderField once
// per read a name spans.
TEST(ResponseReader, HeadLimitDoesNotDependOnReads) {
  constexpr size_t kLimit = 256;
  // 2 ("OK") + 19 ("Content-Length" + 4 + "0") + 5 ("X" + 4) = 26, plus the padding.
  auto head = [](size_t pad) {
    return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: " + std::string(pad, 'a') + "\r\n\r\n";
  };
  for (auto [pad, too_large] : {std::pair<size_t, bool>{kLimit - 26, false}, {kLimit - 25, true}}) {
    const std::string input = head(pad);
    SCOPED_TRACE(pad);
    for (size_t cut = 0; cut < input.size(); ++cut) {
      Recorder rec;
      ResponseReader reader(&rec, kLimit);
      ResponseReader::Result r;
      // cut 0: one byte at a time; otherwise two reads split at `cut`.
      size_t step = cut == 0 ? 1 : input.size();
      for (size_t at = 0; at < input.size();) {
        size_t end = cut == 0 ? at + step : (at < cut ? cut : input.size());
        r = reader.feed(input.data() + at, end - at);
        if (r.kind != ResponseReader::Result::Kind::kNeedMore) {
          break;
        }
        at = end;
      }
      EXPECT_EQ(r.kind, too_large ? ResponseReader::Result::Kind::kError
                                  : ResponseReader::Result::Kind::kPaused)
          << "cut " << cut;
      EXPECT_EQ(r.head_too_large, too_large) << "cut " << cut;
    }
  }
}

TEST(ResponseReader, ResetReadsTheNextResponse) {
  Recorder rec;
  ResponseReader reader(&rec, 4096);
  std::string two = kClBody + "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope";
  ResponseReader::Result r = reader.feed(two.data(), two.size());
  ASSERT_EQ(r.kind, ResponseReader::Result::Kind::kPaused);
  ASSERT_EQ(r.consumed, kClBody.size());
  reader.reset();
  EXPECT_FALSE(reader.started());
  r = reader.feed(two.data() + kClBody.size(), two.size() - kClBody.size());
  EXPECT_EQ(r.kind, ResponseReader::Result::Kind::kPaused);
  EXPECT_EQ(rec.statuses, (std::vector<int>{200, 404}));
  EXPECT_EQ(rec.reasons, (std::vector<std::string>{"OK", "Not Found"}));
  EXPECT_EQ(rec.body, "hellonope");
}

TEST(ResponseReader, FramingFacts) {
  struct Case {
    std::string input;
    bool chunked, content_length, until_eof;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false, true, false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, false, false},
      {"HTTP/1.1 200 OK\r\n\r\n", false, false, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input);
    Recorder rec;
    ResponseReader reader(&rec, 4096);
    reader.feed(c.input.data(), c.input.size());
    EXPECT_TRUE(reader.headSeen());
    EXPECT_EQ(reader.chunked(), c.chunked);
    EXPECT_EQ(reader.hasContentLength(), c.content_length);
    EXPECT_EQ(reader.bodyUntilEof(), c.until_eof);
  }
}

// ---------------------------------------------------------------------------
// UpstreamPool on a real loop.

using namespace std::chrono_literals;

bool runUntil(uv_loop_t* loop, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    uv_run(loop, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A connected loopback TCP pair: `ours` wrapped in a uv_tcp_t, `theirs` a
// plain descriptor the test controls.
struct Pair {
  uv_tcp_t* ours = nullptr;
  int theirs = -1;
};

Pair makePair(uv_loop_t* loop) {
  int lst = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(lst, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::listen(lst, 1);
  socklen_t len = sizeof(addr);
  ::getsockname(lst, reinterpret_cast<sockaddr*>(&addr), &len);
  int client = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int server = ::accept(lst, nullptr, nullptr);
  ::close(lst);
  Pair p;
  p.ours = new uv_tcp_t;
  uv_tcp_init(loop, p.ours);
  EXPECT_EQ(uv_tcp_open(p.ours, client), 0);
  p.theirs = server;
  return p;
}

const sockaddr_storage kNoPeer{};

// Counts the reads handed to the current holder of a taken connection.
struct CountingReader : UpstreamReader {
  int reads = 0;
  ssize_t last = 0;
  void onUpstreamRead(ssize_t nread, BufferRef) override {
    ++reads;
    last = nread;
  }
};

class PoolTest : public ::testing::Test {
 protected:
  CountingReader reader;
  sockaddr_storage peer{};
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    // Every handle the pool owned must be closed by close(): the loop ends
    // empty, and no read block is left behind.
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    EXPECT_EQ(BufferPool::liveBlocks(), 0u);
  }
  uv_loop_t loop_;
};

TEST_F(PoolTest, TakeReturnsWhatWasPutPerKey) {
  UpstreamPool pool(&loop_, 30s);
  Pair a = makePair(&loop_);
  Pair b = makePair(&loop_);
  pool.put("direct|a:80", a.ours, kNoPeer, false);
  pool.put("direct|b:80", b.ours, kNoPeer, false);
  EXPECT_EQ(pool.idleCount(), 2u);
  EXPECT_EQ(pool.take("direct|c:80", &reader, &peer), nullptr);
  uv_tcp_t* got = pool.take("direct|a:80", &reader, &peer);
  EXPECT_EQ(got, a.ours);
  EXPECT_EQ(got->data, static_cast<void*>(static_cast<UpstreamReader*>(&reader)));
  EXPECT_EQ(pool.take("direct|a:80", &reader, &peer), nullptr);
  EXPECT_EQ(pool.idleCount(), 1u);
  closeAndDelete(asHandle(got));
  pool.close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  ::close(a.theirs);
  ::close(b.theirs);
}

// A connection moves between pool and holder without its reads being
// restarted: after take the holder gets what arrives, after a put with
// reading on the pool does (a peer close removes it), and the peer address
// travels with it.
TEST_F(PoolTest, ReadsFollowTheHolderWithoutRestart) {
  UpstreamPool pool(&loop_, 30s);
  Pair a = makePair(&loop_);
  sockaddr_storage addr{};
  int len = sizeof(addr);
  ASSERT_EQ(uv_tcp_getpeername(a.ours, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  pool.put("k", a.ours, addr, false);
  uv_tcp_t* got = pool.take("k", &reader, &peer);
  ASSERT_EQ(got, a.ours);
  EXPECT_EQ(std::memcmp(&peer, &addr, sizeof(addr)), 0);
  ASSERT_EQ(::write(a.theirs, "x", 1), 1);
  EXPECT_TRUE(runUntil(&loop_, [&] { return reader.reads == 1; }));
  EXPECT_EQ(reader.last, 1);
  pool.put("k", got, peer, /*reading=*/true);
  EXPECT_EQ(pool.idleCount(), 1u);
  ::close(a.theirs);
  EXPECT_TRUE(runUntil(&loop_, [&] { return pool.idleCount() == 0; }));
  EXPECT_EQ(reader.reads, 1);
  pool.close();
  uv_run(&loop_, UV_RUN_DEFAULT);
}

TEST_F(PoolTest, MostRecentlyUsedFirst) {
  UpstreamPool pool(&loop_, 30s);
  Pair a = makePair(&loop_);
  Pair b = makePair(&loop_);
  pool.put("k", a.ours, kNoPeer, false);
  pool.put("k", b.ours, kNoPeer, false);
  uv_tcp_t* first = pool.take("k", &reader, &peer);
  uv_tcp_t* second = pool.take("k", &reader, &peer);
  EXPECT_EQ(first, b.ours);
  EXPECT_EQ(second, a.ours);
  closeAndDelete(asHandle(first));
  closeAndDelete(asHandle(second));
  pool.close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  ::close(a.theirs);
  ::close(b.theirs);
}

TEST_F(PoolTest, PeerCloseOrStrayBytesRemoveTheConnection) {
  for (bool stray : {false, true}) {
    SCOPED_TRACE(stray ? "stray bytes" : "peer close");
    UpstreamPool pool(&loop_, 30s);
    Pair a = makePair(&loop_);
    pool.put("k", a.ours, kNoPeer, false);
    if (stray) {
      ASSERT_EQ(::write(a.theirs, "x", 1), 1);
    } else {
      ::close(a.theirs);
    }
    EXPECT_TRUE(runUntil(&loop_, [&] { return pool.idleCount() == 0; }));
    EXPECT_EQ(pool.take("k", &reader, &peer), nullptr);
    pool.close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (stray) {
      ::close(a.theirs);
    }
  }
}

TEST_F(PoolTest, IdleTimeoutExpires) {
  UpstreamPool pool(&loop_, 100ms);
  Pair a = makePair(&loop_);
  pool.put("k", a.ours, kNoPeer, false);
  // The sweep timer is unreferenced, so keep the loop busy with our own.
  uv_timer_t keep;
  uv_timer_init(&loop_, &keep);
  uv_timer_start(
      &keep, [](uv_timer_t*) {}, 10, 10);
  EXPECT_TRUE(runUntil(&loop_, [&] { return pool.idleCount() == 0; }));
  uv_close(asHandle(&keep), nullptr);
  pool.close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  ::close(a.theirs);
}

TEST_F(PoolTest, PerKeyLimitAndPutAfterClose) {
  UpstreamPool pool(&loop_, 30s);
  pool.setLimits(5, 100);
  std::vector<int> theirs;
  for (size_t i = 0; i < 7; ++i) {
    Pair p = makePair(&loop_);
    theirs.push_back(p.theirs);
    pool.put("k", p.ours, kNoPeer, false);
  }
  EXPECT_EQ(pool.idleCount(), 5u);
  pool.close();
  EXPECT_EQ(pool.idleCount(), 0u);
  Pair late = makePair(&loop_);
  theirs.push_back(late.theirs);
  pool.put("k", late.ours, kNoPeer, false);  // closed pool: closes it instead
  EXPECT_EQ(pool.idleCount(), 0u);
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (int fd : theirs) {
    ::close(fd);
  }
}

// Many keep-alive clients of one origin: the pool must hold one idle
// connection per client, far beyond the old fixed 16 per next hop.
TEST_F(PoolTest, HoldsManyPerKeyAndBoundsTheTotal) {
  UpstreamPool pool(&loop_, 30s);
  EXPECT_GE(pool.maxIdlePerKey(), 400u);
  pool.setLimits(100, 60);
  std::vector<int> theirs;
  for (size_t i = 0; i < 50; ++i) {
    Pair p = makePair(&loop_);
    theirs.push_back(p.theirs);
    pool.put("a", p.ours, kNoPeer, false);
  }
  EXPECT_EQ(pool.idleCount(), 50u);
  for (size_t i = 0; i < 20; ++i) {
    Pair p = makePair(&loop_);
    theirs.push_back(p.theirs);
    pool.put("b", p.ours, kNoPeer, false);
  }
  EXPECT_EQ(pool.idleCount(), 60u);  // the total bound, across keys
  pool.close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (int fd : theirs) {
    ::close(fd);
  }
}

TEST(PoolKeys, DirectAndParentDiffer) {
  Authority a{"example.com", 80, false};
  EXPECT_EQ(UpstreamPool::directKey(a), "direct|example.com:80");
  EXPECT_EQ(UpstreamPool::parentKey(a), "parent|example.com:80");
}

}  // namespace
}  // namespace switchyard
