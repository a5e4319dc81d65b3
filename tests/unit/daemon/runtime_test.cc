// Runtime plumbing: pooled read blocks and their reference counts, the
// listener loop check, and the daemon's own part of a config snapshot.
#include "daemon/runtime.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "rules/config_loader.h"

namespace switchyard {
namespace {

sockaddr_storage addr(const std::string& ip, uint16_t port) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr), 1) << ip;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
  }
  return ss;
}

TEST(BufferRef, CopiesShareOneBlockUntilTheLastGoes) {
  size_t base = BufferPool::liveBlocks();
  {
    BufferRef a = BufferRef::make();
    EXPECT_EQ(BufferPool::liveBlocks(), base + 1);
    a.data()[0] = 'x';
    BufferRef b = a;
    EXPECT_EQ(b.data(), a.data());
    BufferRef c = std::move(a);
    EXPECT_FALSE(static_cast<bool>(a));
    EXPECT_EQ(c.data()[0], 'x');
    b = BufferRef();
    EXPECT_EQ(BufferPool::liveBlocks(), base + 1);
  }
  EXPECT_EQ(BufferPool::liveBlocks(), base);
}

TEST(BufferRef, AllocCallbackAndReadBufRoundTrip) {
  size_t base = BufferPool::liveBlocks();
  uv_buf_t buf;
  allocReadBuffer(nullptr, 65536, &buf);
  EXPECT_EQ(buf.len, BufferPool::kBlockSize);
  EXPECT_EQ(BufferPool::liveBlocks(), base + 1);
  {
    BufferRef ref = BufferRef::fromReadBuf(&buf);
    EXPECT_EQ(ref.data(), buf.base);
  }
  EXPECT_EQ(BufferPool::liveBlocks(), base);
  uv_buf_t empty = uv_buf_init(nullptr, 0);
  EXPECT_FALSE(static_cast<bool>(BufferRef::fromReadBuf(&empty)));
}

TEST(BufferPool, LargeBlocksUpToTheCapThenStandardOnes) {
  size_t base = BufferPool::liveBlocks();
  size_t base_large = BufferPool::liveLargeBlocks();
  std::vector<BufferRef> held;
  for (size_t i = base_large; i < BufferPool::kMaxLiveLarge; ++i) {
    held.push_back(BufferRef::make(/*large=*/true));
    ASSERT_TRUE(held.back().large());
    ASSERT_EQ(held.back().size(), BufferPool::kLargeBlockSize);
  }
  // The whole block is usable: the header sits before it, not inside.
  std::memset(held.front().data(), 'L', BufferPool::kLargeBlockSize);
  EXPECT_EQ(BufferPool::liveLargeBlocks(), BufferPool::kMaxLiveLarge);
  // Past the cap a large request gets a standard block, through the alloc
  // callback too (its buffer length says which).
  BufferRef over = BufferRef::make(/*large=*/true);
  EXPECT_FALSE(over.large());
  EXPECT_EQ(over.size(), BufferPool::kBlockSize);
  uv_buf_t buf;
  allocLargeReadBuffer(nullptr, 65536, &buf);
  EXPECT_EQ(buf.len, BufferPool::kBlockSize);
  BufferRef from_alloc = BufferRef::fromReadBuf(&buf);
  EXPECT_FALSE(from_alloc.large());
  held.pop_back();
  EXPECT_EQ(BufferPool::liveLargeBlocks(), BufferPool::kMaxLiveLarge - 1);
  allocLargeReadBuffer(nullptr, 65536, &buf);
  EXPECT_EQ(buf.len, BufferPool::kLargeBlockSize);
  BufferRef again = BufferRef::fromReadBuf(&buf);
  EXPECT_TRUE(again.large());
  held.clear();
  again = BufferRef();
  over = BufferRef();
  from_alloc = BufferRef();
  EXPECT_EQ(BufferPool::liveLargeBlocks(), base_large);
  EXPECT_EQ(BufferPool::liveBlocks(), base);
}

TEST(WriteRequest, PiecesAndSize) {
  BufferRef block = BufferRef::make();
  std::memcpy(block.data(), "hello", 5);
  WriteRequest* w = makeWrite("5\r\n", block, block.data(), 5, "\r\n");
  EXPECT_EQ(w->bytes(), 10u);
  EXPECT_EQ(std::string(w->middle.base, w->middle.len), "hello");
  delete w;
  w = makeWrite("text only");
  EXPECT_EQ(w->bytes(), 9u);
  EXPECT_EQ(w->middle.len, 0u);
  delete w;
}

// writeNow on a socket whose peer does not read: the first call takes what
// fits, the rest stays in the request (head, middle, tail consumed in order),
// and what arrives plus what is left is exactly what was asked for.
TEST(WriteNow, PartialWritesConsumeThePiecesInOrder) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  auto* pipe = new uv_pipe_t;
  ASSERT_EQ(uv_pipe_init(&loop, pipe, 0), 0);
  ASSERT_EQ(uv_pipe_open(pipe, fds[0]), 0);
  auto* stream = reinterpret_cast<uv_stream_t*>(pipe);

  std::string head(100000, 'h');
  std::string tail(100000, 't');
  BufferRef block = BufferRef::make();
  std::memset(block.data(), 'm', BufferPool::kBlockSize);
  std::string expected = head + std::string(BufferPool::kBlockSize, 'm') + tail;
  WriteRequest* w = makeWrite(head, block, block.data(), BufferPool::kBlockSize, tail);

  EXPECT_FALSE(writeNow(stream, w));
  std::string received;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fds[1], buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) {
      break;
    }
    received.append(buf, static_cast<size_t>(n));
  }
  ASSERT_GT(received.size(), 0u);
  ASSERT_LT(received.size(), expected.size());
  EXPECT_EQ(received.size() + w->bytes(), expected.size());
  std::string left = w->head + std::string(w->middle.base, w->middle.len) + w->tail;
  EXPECT_EQ(received + left, expected);

  // With the peer draining, the rest goes out in further calls.
  while (!writeNow(stream, w)) {
    ssize_t n = ::recv(fds[1], buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    received.append(buf, static_cast<size_t>(n));
  }
  for (;;) {
    ssize_t n = ::recv(fds[1], buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) {
      break;
    }
    received.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(received, expected);
  delete w;
  block = BufferRef();
  uv_close(reinterpret_cast<uv_handle_t*>(pipe),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
  ::close(fds[1]);
}

TEST(Runtime, IsOwnListener) {
  uv_loop_t loop;
  Runtime rt(&loop);
  rt.addListener(addr("127.0.0.1", 3128));
  rt.addListener(addr("0.0.0.0", 8080));
  rt.addListener(addr("::", 9090));
  struct Case {
    std::string ip;
    uint16_t port;
    bool own;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1", 3128, true}, {"127.0.0.2", 3128, false},   {"127.0.0.1", 3129, false},
      {"127.0.0.5", 8080, true}, {"10.0.0.1", 8080, false},    {"::1", 9090, true},
      {"::1", 3128, false},      {"2001:db8::1", 9090, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.ip + ":" + std::to_string(c.port));
    sockaddr_storage a = addr(c.ip, c.port);
    EXPECT_EQ(rt.isOwnListener(reinterpret_cast<const sockaddr*>(&a)), c.own);
  }
}

TEST(Runtime, ClientCounts) {
  uv_loop_t loop;
  Runtime rt(&loop);
  rt.addClientConnection("10.0.0.1");
  rt.addClientConnection("10.0.0.1");
  rt.addClientConnection("10.0.0.2");
  EXPECT_EQ(rt.clientConnections("10.0.0.1"), 2u);
  rt.removeClientConnection("10.0.0.1");
  rt.removeClientConnection("10.0.0.1");
  rt.removeClientConnection("10.0.0.1");  // never below zero
  EXPECT_EQ(rt.clientConnections("10.0.0.1"), 0u);
  EXPECT_EQ(rt.clientConnections("10.0.0.2"), 1u);
}

TEST(AddressIp, Families) {
  sockaddr_storage a = addr("192.0.2.1", 1);
  EXPECT_EQ(addressIp(reinterpret_cast<const sockaddr*>(&a)), "192.0.2.1");
  sockaddr_storage b = addr("2001:db8::1", 1);
  EXPECT_EQ(addressIp(reinterpret_cast<const sockaddr*>(&b)), "2001:db8::1");
}

TEST(BuildLiveConfig, CompilesTheAclOrSaysWhy) {
  rules::Config config;
  config.access.allow_clients = {"10.0.0.0/8"};
  std::vector<std::string> errors;
  auto snapshot = rules::ConfigSnapshot::build(config, 7, &errors);
  ASSERT_NE(snapshot, nullptr);
  LiveConfigPtr live;
  std::string error;
  ASSERT_TRUE(buildLiveConfig(snapshot, &live, &error)) << error;
  EXPECT_EQ(live->generation(), 7u);
  EXPECT_EQ(live->allow_clients.size(), 1u);

  config.access.allow_clients = {"not-an-ip"};
  snapshot = rules::ConfigSnapshot::build(config, 8, &errors);
  ASSERT_NE(snapshot, nullptr);
  EXPECT_FALSE(buildLiveConfig(snapshot, &live, &error));
  EXPECT_NE(error.find("access.allow_clients"), std::string::npos) << error;
}

}  // namespace
}  // namespace switchyard
