// Connector tests on loopback: listening sockets that never accept (the
// kernel completes the handshake), ports nobody listens on (refused), and a
// listener whose backlog is full (SYNs are dropped, so connects hang).
#include "daemon/connector.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "daemon/net_address.h"
#include "tests/unit/test_support/loop_helpers.h"

namespace switchyard {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test::runUntil;
using test::spin;

sockaddr_storage makeAddr(const std::string& ip, uint16_t port) {
  sockaddr_storage out{};
  if (ip.find(':') != std::string::npos) {
    uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out));
  } else {
    uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&out));
  }
  return out;
}

std::string text(const sockaddr_storage& addr) {
  return formatAddress(reinterpret_cast<const sockaddr*>(&addr));
}

// A listening socket; `backlog` 0 plus fill() makes it drop further SYNs.
class Listener {
 public:
  Listener(const std::string& ip, int backlog) {
    sockaddr_storage addr = makeAddr(ip, 0);
    fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, backlog) != 0) {
      closeAll();
      return;
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof(bound);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
    addr_ = bound;
  }
  ~Listener() { closeAll(); }

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const sockaddr_storage& addr() const { return addr_; }

  // Connects until one connection does not complete within 200 ms: from then
  // on the backlog is full and new SYNs go unanswered. Returns false if the
  // network stack never stops accepting.
  bool fill() {
    for (int i = 0; i < 64; ++i) {
      int fd = ::socket(addr_.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      fillers_.push_back(fd);
      socklen_t len = addr_.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr_), len);
      if (rc == 0) {
        continue;
      }
      if (errno != EINPROGRESS) {
        return false;
      }
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 200) == 0) {
        return true;
      }
    }
    return false;
  }

 private:
  void closeAll() {
    for (int fd : fillers_) {
      ::close(fd);
    }
    fillers_.clear();
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

  int fd_ = -1;
  sockaddr_storage addr_{};
  std::vector<int> fillers_;
};

// An address on which nothing listens: bind, learn the port, close.
sockaddr_storage refusedAddr(const std::string& ip) {
  Listener l(ip, 1);
  return l.addr();
}

bool haveIpv6Loopback() {
  Listener l("::1", 1);
  return l.ok();
}

void closeTcp(uv_tcp_t* tcp) {
  uv_close(reinterpret_cast<uv_handle_t*>(tcp),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
}

class ConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    connector_ = std::make_unique<Connector>(&loop_);
  }

  void TearDown() override {
    connector_->close();
    connector_.reset();
    EXPECT_TRUE(runUntil(&loop_, [this] { return uv_loop_alive(&loop_) == 0; }));
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  struct Outcome {
    int calls = 0;
    ConnectResult result;
    Clock::duration elapsed{};
  };

  // Connects and waits for the result; closes a connected handle; checks the
  // callback runs exactly once and never inside connect().
  Outcome connectNow(std::vector<sockaddr_storage> addrs, std::chrono::milliseconds timeout) {
    auto out = std::make_shared<Outcome>();
    bool inside = true;
    auto start = Clock::now();
    connector_->connect(std::move(addrs), timeout, [&, out, start](ConnectResult&& r) {
      EXPECT_FALSE(inside) << "callback ran inside connect()";
      out->elapsed = Clock::now() - start;
      out->result = std::move(r);
      ++out->calls;
    });
    inside = false;
    EXPECT_TRUE(runUntil(&loop_, [&] { return out->calls > 0; }));
    // A second call would show up here.
    spin(&loop_, 30ms);
    EXPECT_EQ(out->calls, 1);
    if (out->result.tcp != nullptr) {
      closeTcp(out->result.tcp);
    }
    return *out;
  }

  uv_loop_t loop_;
  std::unique_ptr<Connector> connector_;
};

class ConnectorFamilyTest : public ConnectorTest,
                            public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    ConnectorTest::SetUp();
    if (GetParam() == "::1" && !haveIpv6Loopback()) {
      GTEST_SKIP() << "no IPv6 loopback";
    }
  }
};

TEST_P(ConnectorFamilyTest, ConnectsToListener) {
  Listener listener(GetParam(), 16);
  ASSERT_TRUE(listener.ok());
  Outcome o = connectNow({listener.addr()}, 2000ms);
  EXPECT_EQ(o.result.status, 0) << o.result.error;
  EXPECT_FALSE(o.result.timed_out);
  EXPECT_NE(o.result.tcp, nullptr);
  EXPECT_EQ(text(o.result.peer), text(listener.addr()));
}

TEST_P(ConnectorFamilyTest, RefusedPortReportsEconnrefused) {
  sockaddr_storage refused = refusedAddr(GetParam());
  Outcome o = connectNow({refused}, 2000ms);
  EXPECT_EQ(o.result.status, UV_ECONNREFUSED);
  EXPECT_FALSE(o.result.timed_out);
  EXPECT_EQ(o.result.tcp, nullptr);
  EXPECT_EQ(o.result.error, "connect to " + text(refused) + ": connection refused");
}

TEST_P(ConnectorFamilyTest, FullBacklogTimesOut) {
  Listener listener(GetParam(), 0);
  ASSERT_TRUE(listener.ok());
  if (!listener.fill()) {
    GTEST_SKIP() << "this network stack never drops SYNs";
  }
  Outcome o = connectNow({listener.addr()}, 200ms);
  EXPECT_TRUE(o.result.timed_out);
  EXPECT_EQ(o.result.status, UV_ETIMEDOUT);
  EXPECT_EQ(o.result.tcp, nullptr);
  EXPECT_EQ(o.result.error, "connect timed out after 200 ms");
  EXPECT_GE(o.elapsed, 199ms);
}

INSTANTIATE_TEST_SUITE_P(Families, ConnectorFamilyTest, ::testing::Values("127.0.0.1", "::1"),
                         [](const auto& info) { return info.param == "::1" ? "V6" : "V4"; });

TEST_F(ConnectorTest, RefusedIpv6ThenGoodIpv4Succeeds) {
  if (!haveIpv6Loopback()) {
    GTEST_SKIP() << "no IPv6 loopback";
  }
  Listener good("127.0.0.1", 16);
  ASSERT_TRUE(good.ok());
  Outcome o = connectNow({refusedAddr("::1"), good.addr()}, 2000ms);
  EXPECT_EQ(o.result.status, 0) << o.result.error;
  EXPECT_EQ(text(o.result.peer), text(good.addr()));
  // The failure started the next attempt at once, not after 250 ms.
  EXPECT_LT(o.elapsed, 240ms);
}

TEST_F(ConnectorTest, FailuresMoveOnImmediately) {
  std::vector<sockaddr_storage> refused;
  for (int i = 0; i < 4; ++i) {
    refused.push_back(refusedAddr("127.0.0.1"));
  }
  Outcome o = connectNow(refused, 5000ms);
  EXPECT_EQ(o.result.status, UV_ECONNREFUSED);
  EXPECT_FALSE(o.result.timed_out);
  // Four addresses at 250 ms each would take 750 ms.
  EXPECT_LT(o.elapsed, 500ms);
  // The error names the last address tried.
  EXPECT_EQ(o.result.error, "connect to " + text(refused.back()) + ": connection refused");
}

TEST_F(ConnectorTest, HangingFirstAddressStartsSecondAfterDelay) {
  Listener hanging("127.0.0.1", 0);
  ASSERT_TRUE(hanging.ok());
  if (!hanging.fill()) {
    GTEST_SKIP() << "this network stack never drops SYNs";
  }
  Listener good("127.0.0.1", 16);
  Outcome o = connectNow({hanging.addr(), good.addr()}, 5000ms);
  EXPECT_EQ(o.result.status, 0) << o.result.error;
  EXPECT_EQ(text(o.result.peer), text(good.addr()));
  EXPECT_GE(o.elapsed, Connector::kAttemptDelay - 1ms);
  EXPECT_LT(o.elapsed, 2000ms);
}

TEST_F(ConnectorTest, Ipv6IsTriedFirst) {
  if (!haveIpv6Loopback()) {
    GTEST_SKIP() << "no IPv6 loopback";
  }
  Listener hanging6("::1", 0);
  ASSERT_TRUE(hanging6.ok());
  if (!hanging6.fill()) {
    GTEST_SKIP() << "this network stack never drops SYNs";
  }
  Listener good4("127.0.0.1", 16);
  Listener good4b("127.0.0.1", 16);
  // Given v4 first, the connector still starts with v6 (which hangs), so the
  // answer comes from the first v4 address only after the stagger delay.
  Outcome o = connectNow({good4.addr(), good4b.addr(), hanging6.addr()}, 5000ms);
  EXPECT_EQ(o.result.status, 0) << o.result.error;
  EXPECT_EQ(text(o.result.peer), text(good4.addr()));
  EXPECT_GE(o.elapsed, Connector::kAttemptDelay - 1ms);
}

TEST_F(ConnectorTest, AllHangingTimesOutAndClosesEveryAttempt) {
  Listener a("127.0.0.1", 0);
  Listener b("127.0.0.1", 0);
  ASSERT_TRUE(a.ok() && b.ok());
  if (!a.fill() || !b.fill()) {
    GTEST_SKIP() << "this network stack never drops SYNs";
  }
  Outcome o = connectNow({a.addr(), b.addr()}, 400ms);
  EXPECT_TRUE(o.result.timed_out);
  EXPECT_EQ(o.result.status, UV_ETIMEDOUT);
  EXPECT_GE(o.elapsed, 399ms);
}

TEST_F(ConnectorTest, EmptyOrUnusableAddressListFailsAsynchronously) {
  Outcome o = connectNow({}, 1000ms);
  EXPECT_EQ(o.result.status, UV_EINVAL);
  EXPECT_FALSE(o.result.error.empty());

  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  o = connectNow({unix_addr}, 1000ms);
  EXPECT_EQ(o.result.status, UV_EINVAL);
}

TEST_F(ConnectorTest, CancelAtAnyPointSuppressesTheCallback) {
  Listener good("127.0.0.1", 16);
  Listener hanging("127.0.0.1", 0);
  const bool can_hang = hanging.fill();
  int calls = 0;
  auto count = [&](ConnectResult&& r) {
    ++calls;
    if (r.tcp != nullptr) {
      closeTcp(r.tcp);
    }
  };

  // Right after connect(): before any callback of libuv ran.
  uint64_t id = connector_->connect({good.addr()}, 1000ms, count);
  connector_->cancel(id);
  // A synchronous failure waiting for delivery.
  id = connector_->connect({}, 1000ms, count);
  connector_->cancel(id);
  // After the connection succeeded in the kernel but possibly before libuv
  // reported it. If libuv did report it in this turn, cancel is a no-op.
  id = connector_->connect({good.addr()}, 1000ms, count);
  uv_run(&loop_, UV_RUN_NOWAIT);
  const int delivered_early = calls;
  connector_->cancel(id);
  // While an attempt hangs and the stagger timer is armed.
  if (can_hang) {
    id = connector_->connect({hanging.addr(), hanging.addr()}, 1000ms, count);
    spin(&loop_, 100ms);
    connector_->cancel(id);
  }
  spin(&loop_, 100ms);
  EXPECT_EQ(calls, delivered_early);
  EXPECT_LE(delivered_early, 1);

  // After delivery cancel is a harmless no-op, as is an unknown id.
  Outcome o = connectNow({good.addr()}, 1000ms);
  EXPECT_EQ(o.result.status, 0);
  connector_->cancel(1);
  connector_->cancel(123456);
}

TEST_F(ConnectorTest, CloseCancelsEverythingPending) {
  Listener hanging("127.0.0.1", 0);
  if (!hanging.fill()) {
    GTEST_SKIP() << "this network stack never drops SYNs";
  }
  Listener good("127.0.0.1", 16);
  int calls = 0;
  for (int i = 0; i < 3; ++i) {
    connector_->connect({hanging.addr(), hanging.addr(), good.addr()}, 5000ms,
                        [&](ConnectResult&&) { ++calls; });
  }
  spin(&loop_, 50ms);
  connector_->close();
  // New work after close() is ignored.
  connector_->connect({good.addr()}, 1000ms, [&](ConnectResult&&) { ++calls; });
  spin(&loop_, 400ms);
  EXPECT_EQ(calls, 0);
}

TEST_F(ConnectorTest, DestroyingConnectorInsideCallbackIsSafe) {
  Listener good("127.0.0.1", 16);
  int calls = 0;
  connector_->connect({good.addr()}, 1000ms, [&](ConnectResult&& r) {
    ++calls;
    closeTcp(r.tcp);
    connector_->close();
    connector_.reset();
  });
  ASSERT_TRUE(runUntil(&loop_, [&] { return calls == 1; }));
  connector_ = std::make_unique<Connector>(&loop_);
}

// EarlyRead: the winning socket reads from the start with the given
// callbacks, which see nothing before the connect callback has run (the
// handle's data is still nullptr then), and then every byte the server sent
// right after accepting, without another uv_read_start.
struct EarlyReadLog {
  bool connected = false;
  bool read_before_connect = false;
  std::string bytes;
  ssize_t end = 0;  // UV_EOF or an error once the server closed
};

void earlyAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  static char block[4096];
  *buf = uv_buf_init(block, sizeof(block));
}

void earlyRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* log = static_cast<EarlyReadLog*>(stream->data);
  if (log == nullptr) {
    return;  // checked by the test through its own flag
  }
  if (!log->connected) {
    log->read_before_connect = true;
  }
  if (nread > 0) {
    log->bytes.append(buf->base, static_cast<size_t>(nread));
  } else if (nread < 0) {
    log->end = nread;
  }
}

TEST_F(ConnectorTest, EarlyReadKeepsReadingTheWinnerAcrossTheConnect) {
  Listener good("127.0.0.1", 16);
  ASSERT_TRUE(good.ok());
  EarlyReadLog log;
  int calls = 0;
  ConnectResult won;
  connector_->connect(
      {refusedAddr("127.0.0.1"), good.addr()}, 2000ms,
      [&](ConnectResult&& r) {
        ++calls;
        won = std::move(r);
        if (won.tcp != nullptr) {
          won.tcp->data = &log;
          log.connected = true;
        }
      },
      EarlyRead{&earlyAlloc, &earlyRead});
  ASSERT_TRUE(runUntil(&loop_, [&] { return calls == 1; }));
  ASSERT_EQ(won.status, 0) << won.error;
  ASSERT_NE(won.tcp, nullptr);
  EXPECT_TRUE(won.reading);
  EXPECT_TRUE(uv_is_active(reinterpret_cast<uv_handle_t*>(won.tcp)));

  // The server speaks first and closes: the bytes and the end reach the
  // callbacks that were set before the connect completed.
  int served = ::accept(good.fd(), nullptr, nullptr);
  ASSERT_GE(served, 0);
  ASSERT_EQ(::write(served, "hello", 5), 5);
  ::close(served);
  ASSERT_TRUE(runUntil(&loop_, [&] { return log.end != 0; }));
  EXPECT_EQ(log.bytes, "hello");
  EXPECT_EQ(log.end, UV_EOF);
  EXPECT_FALSE(log.read_before_connect);
  closeTcp(won.tcp);
}

TEST_F(ConnectorTest, WithoutEarlyReadTheWinnerIsNotReading) {
  Listener good("127.0.0.1", 16);
  Outcome o = connectNow({good.addr()}, 2000ms);
  EXPECT_EQ(o.result.status, 0) << o.result.error;
  EXPECT_FALSE(o.result.reading);
}

TEST_F(ConnectorTest, EarlyReadOnFailedAttemptsCallsNoReadCallback) {
  EarlyReadLog log;
  int calls = 0;
  ConnectResult result;
  connector_->connect(
      {refusedAddr("127.0.0.1"), refusedAddr("127.0.0.1")}, 2000ms,
      [&](ConnectResult&& r) {
        ++calls;
        result = std::move(r);
      },
      EarlyRead{&earlyAlloc, &earlyRead});
  ASSERT_TRUE(runUntil(&loop_, [&] { return calls == 1; }));
  spin(&loop_, 30ms);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result.status, UV_ECONNREFUSED);
  EXPECT_EQ(result.tcp, nullptr);
  EXPECT_FALSE(log.read_before_connect);
  EXPECT_TRUE(log.bytes.empty());
}

struct PrivateCase {
  const char* ip;
  bool is_private;
};

TEST(IsPrivateDestination, Table) {
  const PrivateCase cases[] = {
      // IPv4 private and special ranges.
      {"127.0.0.1", true},
      {"127.255.255.254", true},
      {"10.0.0.1", true},
      {"10.255.255.255", true},
      {"172.16.0.1", true},
      {"172.31.255.255", true},
      {"192.168.1.1", true},
      {"169.254.169.254", true},
      {"169.254.0.1", true},
      {"100.64.0.1", true},
      {"100.127.255.255", true},
      {"0.0.0.0", true},
      {"0.1.2.3", true},
      {"224.0.0.1", true},
      {"239.255.255.250", true},
      {"255.255.255.255", true},
      // IPv4 public neighbours of those ranges.
      {"8.8.8.8", false},
      {"93.184.216.34", false},
      {"11.0.0.1", false},
      {"9.255.255.255", false},
      {"172.15.255.255", false},
      {"172.32.0.1", false},
      {"192.167.1.1", false},
      {"192.169.0.1", false},
      {"169.253.255.255", false},
      {"169.255.0.1", false},
      {"100.63.255.255", false},
      {"100.128.0.1", false},
      {"128.0.0.1", false},
      {"223.255.255.255", false},
      {"1.1.1.1", false},
      // IPv6.
      {"::1", true},
      {"::", true},
      {"fe80::1", true},
      {"febf:ffff::1", true},
      {"fc00::1", true},
      {"fd12:3456::1", true},
      {"ff02::1", true},
      {"fec0::1", true},
      {"::ffff:127.0.0.1", true},
      {"::ffff:10.1.2.3", true},
      {"::ffff:169.254.169.254", true},
      {"::ffff:100.64.0.1", true},
      {"64:ff9b::10.0.0.1", true},
      {"2001:4860:4860::8888", false},
      {"2606:4700::1111", false},
      {"::ffff:8.8.8.8", false},
      {"64:ff9b::8.8.8.8", false},
      {"fb00::1", false},
      {"fe00::1", false},
      {"::2", false},
      {"2001:db8::1", false},
  };
  for (const PrivateCase& c : cases) {
    SCOPED_TRACE(c.ip);
    sockaddr_storage addr = makeAddr(c.ip, 443);
    ASSERT_NE(addr.ss_family, 0) << "bad test address";
    EXPECT_EQ(isPrivateDestination(reinterpret_cast<const sockaddr*>(&addr)), c.is_private);
  }
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_FALSE(isPrivateDestination(reinterpret_cast<const sockaddr*>(&unix_addr)));
  EXPECT_FALSE(isPrivateDestination(nullptr));
}

}  // namespace
}  // namespace switchyard
