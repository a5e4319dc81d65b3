// Resolver tests. DNS is a fake responder on 127.0.0.1 running on the test's
// own loop, so no test depends on the network or on /etc/resolv.conf.
#include "daemon/resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
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

std::vector<std::string> formatAll(const std::vector<sockaddr_storage>& addrs) {
  std::vector<std::string> out;
  for (const sockaddr_storage& a : addrs) {
    out.push_back(formatAddress(reinterpret_cast<const sockaddr*>(&a)));
  }
  return out;
}

// A DNS server that knows a few names. Unknown names get NXDOMAIN; a known
// name without records of the asked type gets an empty NOERROR (NODATA).
class FakeDns {
 public:
  struct Answer {
    std::vector<std::string> a;
    std::vector<std::string> aaaa;
    uint32_t ttl = 60;
    int rcode = 0;  // 2: SERVFAIL
  };

  explicit FakeDns(uv_loop_t* loop) {
    udp_ = new uv_udp_t;
    uv_udp_init(loop, udp_);
    udp_->data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    EXPECT_EQ(uv_udp_bind(udp_, reinterpret_cast<const sockaddr*>(&addr), 0), 0);
    sockaddr_storage bound{};
    int len = sizeof(bound);
    uv_udp_getsockname(udp_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    uv_udp_recv_start(udp_, &FakeDns::onAlloc, &FakeDns::onRecv);
  }

  void set(const std::string& name, Answer answer) { answers_[name] = std::move(answer); }
  int queries(const std::string& name) const {
    auto it = queries_.find(name);
    return it == queries_.end() ? 0 : it->second;
  }
  int totalQueries() const { return total_; }
  std::string csv() const { return "127.0.0.1:" + std::to_string(port_); }

  void close() {
    if (udp_ != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(udp_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_udp_t*>(h); });
      udp_ = nullptr;
    }
  }

 private:
  static void onAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
    static char storage[4096];
    *buf = uv_buf_init(storage, sizeof(storage));
  }

  static void onRecv(uv_udp_t* udp, ssize_t nread, const uv_buf_t* buf, const sockaddr* from,
                     unsigned) {
    if (nread <= 0 || from == nullptr) {
      return;
    }
    static_cast<FakeDns*>(udp->data)->answer(reinterpret_cast<const uint8_t*>(buf->base),
                                             static_cast<size_t>(nread), from);
  }

  void answer(const uint8_t* q, size_t len, const sockaddr* from) {
    if (len < 12) {
      return;
    }
    size_t pos = 12;
    std::string name;
    while (pos < len && q[pos] != 0) {
      size_t label = q[pos];
      if (pos + 1 + label > len) {
        return;
      }
      if (!name.empty()) {
        name += '.';
      }
      for (size_t i = 0; i < label; ++i) {
        name += static_cast<char>(std::tolower(q[pos + 1 + i]));
      }
      pos += 1 + label;
    }
    if (pos + 5 > len) {
      return;
    }
    uint16_t qtype = static_cast<uint16_t>((q[pos + 1] << 8) | q[pos + 2]);
    size_t question_end = pos + 5;
    ++queries_[name];
    ++total_;

    std::vector<uint8_t> r(q, q + question_end);
    int rcode = 3;  // NXDOMAIN
    std::vector<std::vector<uint8_t>> rdatas;
    uint32_t ttl = 0;
    if (auto it = answers_.find(name); it != answers_.end()) {
      rcode = it->second.rcode;
      ttl = it->second.ttl;
      const auto& list = qtype == 1 ? it->second.a : it->second.aaaa;
      for (const std::string& ip :
           (qtype == 1 || qtype == 28) ? list : std::vector<std::string>{}) {
        std::vector<uint8_t> rdata(qtype == 1 ? 4 : 16);
        inet_pton(qtype == 1 ? AF_INET : AF_INET6, ip.c_str(), rdata.data());
        rdatas.push_back(rdata);
      }
    }
    // QR, opcode 0, AA, RD copied, RA, rcode; QDCOUNT 1, ANCOUNT n, rest 0.
    r[2] = static_cast<uint8_t>(0x84 | (q[2] & 0x01));
    r[3] = static_cast<uint8_t>(0x80 | rcode);
    r[4] = 0;
    r[5] = 1;
    r[6] = 0;
    r[7] = static_cast<uint8_t>(rdatas.size());
    for (int i = 8; i < 12; ++i) {
      r[i] = 0;
    }
    for (const auto& rdata : rdatas) {
      const uint8_t rr[] = {0xc0,
                            0x0c,
                            static_cast<uint8_t>(qtype >> 8),
                            static_cast<uint8_t>(qtype),
                            0,
                            1,
                            static_cast<uint8_t>(ttl >> 24),
                            static_cast<uint8_t>(ttl >> 16),
                            static_cast<uint8_t>(ttl >> 8),
                            static_cast<uint8_t>(ttl),
                            0,
                            static_cast<uint8_t>(rdata.size())};
      r.insert(r.end(), std::begin(rr), std::end(rr));
      r.insert(r.end(), rdata.begin(), rdata.end());
    }
    uv_buf_t out = uv_buf_init(reinterpret_cast<char*>(r.data()), static_cast<unsigned>(r.size()));
    EXPECT_EQ(uv_udp_try_send(udp_, &out, 1, from), static_cast<int>(r.size()));
  }

  uv_udp_t* udp_ = nullptr;
  uint16_t port_ = 0;
  std::map<std::string, Answer> answers_;
  std::map<std::string, int> queries_;
  int total_ = 0;
};

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    dns_ = std::make_unique<FakeDns>(&loop_);
    dns_->set("dual.test", {{"192.0.2.1"}, {"2001:db8::5"}, 300, 0});
    dns_->set("v4only.test", {{"192.0.2.7", "192.0.2.8"}, {}, 300, 0});
    dns_->set("short.test", {{"192.0.2.30"}, {}, 30, 0});
    dns_->set("broken.test", {{}, {}, 0, 2});
    makeResolver(Resolver::kDefaultMaxEntries);
  }

  void makeResolver(size_t max_entries) {
    if (resolver_) {
      resolver_->close();
    }
    resolver_ = std::make_unique<Resolver>(&loop_, max_entries);
    ASSERT_TRUE(resolver_->setServersForTest(dns_->csv()));
    resolver_->setClockForTest([this] { return now_; });
  }

  void TearDown() override {
    resolver_->close();
    resolver_.reset();
    dns_->close();
    EXPECT_TRUE(runUntil(&loop_, [this] { return uv_loop_alive(&loop_) == 0; }));
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // Resolves and waits for the answer.
  ResolveResult resolveNow(const std::string& host, uint16_t port) {
    ResolveResult out;
    int calls = 0;
    bool inside = true;
    resolver_->resolve(host, port, [&](const ResolveResult& r) {
      EXPECT_FALSE(inside) << "callback ran inside resolve()";
      out = r;
      ++calls;
    });
    inside = false;
    EXPECT_TRUE(runUntil(&loop_, [&] { return calls > 0; })) << host;
    EXPECT_EQ(calls, 1);
    return out;
  }

  uv_loop_t loop_;
  std::unique_ptr<FakeDns> dns_;
  std::unique_ptr<Resolver> resolver_;
  Clock::time_point now_ = Clock::now();
};

struct LiteralCase {
  std::string host;
  uint16_t port;
  std::string expected;
};

TEST_F(ResolverTest, IpLiteralsNeedNoDns) {
  const LiteralCase cases[] = {
      {"127.0.0.1", 80, "127.0.0.1:80"},
      {"10.1.2.3", 443, "10.1.2.3:443"},
      {"0.0.0.0", 1, "0.0.0.0:1"},
      {"255.255.255.255", 65535, "255.255.255.255:65535"},
      {"::1", 8080, "[::1]:8080"},
      {"[::1]", 8080, "[::1]:8080"},
      {"2001:db8::1", 443, "[2001:db8::1]:443"},
      {"2001:DB8::A", 443, "[2001:db8::a]:443"},
      {"::ffff:192.0.2.1", 80, "[::ffff:192.0.2.1]:80"},
      {"fe80::1", 22, "[fe80::1]:22"},
  };
  for (const LiteralCase& c : cases) {
    SCOPED_TRACE(c.host);
    ResolveResult r = resolveNow(c.host, c.port);
    EXPECT_EQ(r.status, 0) << r.error;
    EXPECT_FALSE(r.from_cache);
    EXPECT_EQ(formatAll(r.addresses), std::vector<std::string>{c.expected});
  }
  EXPECT_EQ(dns_->totalQueries(), 0);
}

TEST_F(ResolverTest, InvalidNamesFailWithoutDns) {
  const std::string cases[] = {"",
                               "[]",
                               "has space.test",
                               "tab\there.test",
                               "new\nline.test",
                               "user@host.test",
                               "a/b.test",
                               std::string(300, 'a')};
  for (const std::string& host : cases) {
    SCOPED_TRACE(host);
    ResolveResult r = resolveNow(host, 80);
    EXPECT_EQ(r.status, UV_EINVAL);
    EXPECT_FALSE(r.error.empty());
    EXPECT_TRUE(r.addresses.empty());
  }
  EXPECT_EQ(dns_->totalQueries(), 0);
}

TEST_F(ResolverTest, OverridesWinOverDnsAndHosts) {
  dns_->set("mirror.test", {{"192.0.2.99"}, {}, 300, 0});
  resolver_->setOverrides({{"mirror.test", "127.0.0.9"},
                           {"Upper.Test", "::2"},
                           {"localhost", "127.0.0.42"},
                           {"bad.test", "not-an-ip"}});
  struct Case {
    std::string host;
    int status;
    std::string expected;
  };
  const Case cases[] = {
      {"mirror.test", 0, "127.0.0.9:443"},  {"MIRROR.test", 0, "127.0.0.9:443"},
      {"mirror.test.", 0, "127.0.0.9:443"}, {"upper.test", 0, "[::2]:443"},
      {"localhost", 0, "127.0.0.42:443"},   {"bad.test", UV_EINVAL, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.host);
    ResolveResult r = resolveNow(c.host, 443);
    EXPECT_EQ(r.status, c.status) << r.error;
    if (c.status == 0) {
      EXPECT_EQ(formatAll(r.addresses), std::vector<std::string>{c.expected});
    } else {
      EXPECT_NE(r.error.find("bad.test"), std::string::npos) << r.error;
    }
  }
  EXPECT_EQ(dns_->totalQueries(), 0);

  // Replacing the overrides lets DNS answer again.
  resolver_->setOverrides({});
  ResolveResult r = resolveNow("mirror.test", 443);
  EXPECT_EQ(formatAll(r.addresses), std::vector<std::string>{"192.0.2.99:443"});
}

TEST_F(ResolverTest, EtcHostsLocalhostIsLoopback) {
  ResolveResult r = resolveNow("localhost", 3128);
  ASSERT_EQ(r.status, 0) << r.error;
  ASSERT_FALSE(r.addresses.empty());
  for (const sockaddr_storage& a : r.addresses) {
    const std::string text = formatAddress(reinterpret_cast<const sockaddr*>(&a));
    EXPECT_TRUE(text == "127.0.0.1:3128" || text == "[::1]:3128") << text;
  }
  EXPECT_EQ(dns_->queries("localhost"), 0);
}

TEST_F(ResolverTest, DnsAnswersBothFamiliesWithPort) {
  ResolveResult r = resolveNow("dual.test", 8443);
  ASSERT_EQ(r.status, 0) << r.error;
  EXPECT_FALSE(r.from_cache);
  std::vector<std::string> got = formatAll(r.addresses);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"192.0.2.1:8443", "[2001:db8::5]:8443"}));
  EXPECT_EQ(dns_->queries("dual.test"), 2);  // A and AAAA

  r = resolveNow("v4only.test", 80);
  ASSERT_EQ(r.status, 0) << r.error;
  got = formatAll(r.addresses);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"192.0.2.7:80", "192.0.2.8:80"}));
}

TEST_F(ResolverTest, NxdomainIsNoNameAndCachedBriefly) {
  ResolveResult r = resolveNow("nothere.invalid", 443);
  EXPECT_EQ(r.status, UV_EAI_NONAME);
  EXPECT_EQ(r.error, "no such host nothere.invalid");
  EXPECT_TRUE(r.addresses.empty());
  EXPECT_FALSE(r.from_cache);
  const int first = dns_->queries("nothere.invalid");
  EXPECT_GE(first, 1);

  now_ += 4s;
  r = resolveNow("nothere.invalid", 443);
  EXPECT_EQ(r.status, UV_EAI_NONAME);
  EXPECT_EQ(r.error, "no such host nothere.invalid");
  EXPECT_TRUE(r.from_cache);
  EXPECT_EQ(dns_->queries("nothere.invalid"), first);

  now_ += 2s;
  r = resolveNow("nothere.invalid", 443);
  EXPECT_EQ(r.status, UV_EAI_NONAME);
  EXPECT_FALSE(r.from_cache);
  EXPECT_GT(dns_->queries("nothere.invalid"), first);
}

TEST_F(ResolverTest, ServerFailureIsReadableAndNotCached) {
  ResolveResult r = resolveNow("broken.test", 443);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.status, UV_EAI_NONAME);
  EXPECT_NE(r.error.find("broken.test"), std::string::npos) << r.error;
  const int first = dns_->queries("broken.test");
  r = resolveNow("broken.test", 443);
  EXPECT_FALSE(r.from_cache);
  EXPECT_GT(dns_->queries("broken.test"), first);
}

TEST_F(ResolverTest, CacheHonoursTtl) {
  ResolveResult r = resolveNow("short.test", 80);
  ASSERT_EQ(r.status, 0) << r.error;
  EXPECT_FALSE(r.from_cache);
  EXPECT_EQ(dns_->queries("short.test"), 2);

  struct Step {
    std::chrono::seconds advance;
    bool from_cache;
    int queries;
  };
  // TTL 30 s: still cached at 29 s, gone at 30 s.
  const Step steps[] = {{0s, true, 2}, {29s, true, 2}, {1s, false, 4}, {10s, true, 4}};
  for (const Step& s : steps) {
    now_ += s.advance;
    r = resolveNow("short.test", 8080);
    ASSERT_EQ(r.status, 0) << r.error;
    EXPECT_EQ(r.from_cache, s.from_cache);
    EXPECT_EQ(formatAll(r.addresses), std::vector<std::string>{"192.0.2.30:8080"});
    EXPECT_EQ(dns_->queries("short.test"), s.queries);
  }
  // Case and a trailing dot do not make a different cache key.
  r = resolveNow("SHORT.test.", 1);
  EXPECT_TRUE(r.from_cache);
  EXPECT_EQ(formatAll(r.addresses), std::vector<std::string>{"192.0.2.30:1"});
}

TEST_F(ResolverTest, CacheIsBoundedLeastRecentlyUsedFirst) {
  makeResolver(2);
  resolveNow("dual.test", 1);
  resolveNow("v4only.test", 1);
  EXPECT_TRUE(resolveNow("dual.test", 1).from_cache);  // dual is now the most recent
  resolveNow("short.test", 1);                         // evicts v4only
  EXPECT_TRUE(resolveNow("dual.test", 1).from_cache);
  EXPECT_TRUE(resolveNow("short.test", 1).from_cache);
  EXPECT_FALSE(resolveNow("v4only.test", 1).from_cache);

  makeResolver(0);  // no cache at all
  EXPECT_FALSE(resolveNow("dual.test", 1).from_cache);
  EXPECT_FALSE(resolveNow("dual.test", 1).from_cache);
}

TEST_F(ResolverTest, ConcurrentRequestsShareOneLookup) {
  std::vector<std::string> got(3);
  int calls = 0;
  const uint16_t ports[] = {80, 443, 8080};
  for (int i = 0; i < 3; ++i) {
    resolver_->resolve("v4only.test", ports[i], [&, i](const ResolveResult& r) {
      EXPECT_EQ(r.status, 0);
      EXPECT_FALSE(r.from_cache);
      got[i] = formatAll(r.addresses).front();
      ++calls;
    });
  }
  ASSERT_TRUE(runUntil(&loop_, [&] { return calls == 3; }));
  EXPECT_EQ(dns_->queries("v4only.test"), 2);  // one A and one AAAA query in all
  EXPECT_EQ(got, (std::vector<std::string>{"192.0.2.7:80", "192.0.2.7:443", "192.0.2.7:8080"}));
}

TEST_F(ResolverTest, CancelledRequestsNeverCallBack) {
  int cancelled_calls = 0;
  int other_calls = 0;
  // Cancelled before the loop ran: literal, override-free name, cache miss.
  uint64_t a =
      resolver_->resolve("127.0.0.1", 80, [&](const ResolveResult&) { ++cancelled_calls; });
  uint64_t b =
      resolver_->resolve("dual.test", 80, [&](const ResolveResult&) { ++cancelled_calls; });
  // Shares b's lookup and must still get its answer.
  resolver_->resolve("dual.test", 81, [&](const ResolveResult& r) {
    EXPECT_EQ(r.status, 0);
    ++other_calls;
  });
  resolver_->cancel(a);
  resolver_->cancel(b);
  resolver_->cancel(b);       // twice is harmless
  resolver_->cancel(999999);  // unknown ids too
  ASSERT_TRUE(runUntil(&loop_, [&] { return other_calls == 1; }));
  // Give any stray callback a chance to show up.
  spin(&loop_, 50ms);
  EXPECT_EQ(cancelled_calls, 0);

  // Cancelling from inside another request's callback.
  uint64_t victim = 0;
  int victim_calls = 0;
  resolver_->resolve("10.0.0.1", 1, [&](const ResolveResult&) { resolver_->cancel(victim); });
  victim = resolver_->resolve("10.0.0.2", 1, [&](const ResolveResult&) { ++victim_calls; });
  spin(&loop_, 50ms);
  EXPECT_EQ(victim_calls, 0);
}

TEST_F(ResolverTest, CallbacksMayResolveAgain) {
  std::vector<std::string> order;
  resolver_->resolve("127.0.0.1", 1, [&](const ResolveResult&) {
    order.push_back("first");
    resolver_->resolve("dual.test", 2, [&](const ResolveResult& r) {
      order.push_back(r.status == 0 ? "second" : "second failed");
    });
  });
  ASSERT_TRUE(runUntil(&loop_, [&] { return order.size() == 2; }));
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second"}));
}

TEST_F(ResolverTest, CloseDropsPendingCallbacksAndFreesHandles) {
  int calls = 0;
  resolver_->resolve("dual.test", 80, [&](const ResolveResult&) { ++calls; });
  // Let the DNS query go out so c-ares has a socket being polled.
  uv_run(&loop_, UV_RUN_NOWAIT);
  // An answer queued for delivery but not delivered yet.
  resolver_->resolve("127.0.0.1", 80, [&](const ResolveResult&) { ++calls; });
  resolver_->close();
  resolver_->close();  // idempotent
  resolver_->resolve("127.0.0.1", 80, [&](const ResolveResult&) { ++calls; });
  spin(&loop_, 50ms);
  EXPECT_EQ(calls, 0);
  // TearDown asserts that the loop closes with no handle left.
}

TEST_F(ResolverTest, CloseFromInsideCallback) {
  int calls = 0;
  resolver_->resolve("127.0.0.1", 80, [&](const ResolveResult&) {
    ++calls;
    resolver_->close();
  });
  resolver_->resolve("127.0.0.2", 80, [&](const ResolveResult&) { ++calls; });
  spin(&loop_, 50ms);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace switchyard
