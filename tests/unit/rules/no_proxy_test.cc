// NO_PROXY read as Go's golang.org/x/net/http/httpproxy (master) reads it,
// SEMANTICS.md (a). Each case: the NO_PROXY value, the request host (no
// brackets) and effective port, and the verdict with the entry that decided.
#include "rules/no_proxy.h"

#include <gtest/gtest.h>

#include <string>

namespace switchyard::rules {
namespace {

constexpr int kNoMatch = -1;
constexpr int kLoopback = -2;   // bypass by rule 1, no entry involved
constexpr int kMalformed = -3;  // bypass because Go cannot split the host back out

struct NoProxyCase {
  const char* value;
  const char* host;
  uint16_t port;
  int index;          // kNoMatch, kLoopback, kMalformed, or the matching entry's index
  const char* entry;  // the matching piece, trimmed and lowercased
  const char* how;
};

// clang-format off
const NoProxyCase kCases[] = {
    // Bare names: the host itself and its subdomains, label-aligned.
    {"example.com", "example.com", 443, 0, "example.com", "name"},
    {"example.com", "www.example.com", 443, 0, "example.com", "name"},
    {"example.com", "a.b.example.com", 80, 0, "example.com", "name"},
    {"example.com", "notexample.com", 443, kNoMatch, "", ""},
    {"example.com", "example.com.evil", 443, kNoMatch, "", ""},
    {"example.com", "com", 443, kNoMatch, "", ""},
    {"EXAMPLE.COM", "www.example.com", 443, 0, "example.com", "name"},
    {"example.com", "WWW.EXAMPLE.COM", 443, 0, "example.com", "name"},
    {"Example.Com", "eXample.cOM", 8080, 0, "example.com", "name"},
    // Trailing dots are significant on both sides.
    {"example.com", "example.com.", 443, kNoMatch, "", ""},
    {"example.com.", "example.com", 443, kNoMatch, "", ""},
    {"example.com.", "example.com.", 443, 0, "example.com.", "name"},
    {"example.com.", "www.example.com.", 443, 0, "example.com.", "name"},
    {".", "example.com.", 443, 0, ".", "subdomain"},
    {".", "example.com", 443, kNoMatch, "", ""},
    {"*.", "example.com.", 443, 0, "*.", "subdomain"},
    // Leading dot or "*.": strict subdomains only.
    {".example.com", "example.com", 443, kNoMatch, "", ""},
    {".example.com", "www.example.com", 443, 0, ".example.com", "subdomain"},
    {".example.com", "a.b.example.com", 443, 0, ".example.com", "subdomain"},
    {"*.example.com", "example.com", 443, kNoMatch, "", ""},
    {"*.example.com", "www.example.com", 443, 0, "*.example.com", "subdomain"},
    {"*.EXAMPLE.com", "api.example.COM", 443, 0, "*.example.com", "subdomain"},
    {"..example.com", "a..example.com", 443, 0, "..example.com", "subdomain"},
    {"..example.com", "a.example.com", 443, kNoMatch, "", ""},
    // Any other '*' is literal.
    {"*example.com", "www.example.com", 443, kNoMatch, "", ""},
    {"*example.com", "example.com", 443, kNoMatch, "", ""},
    {"*example.com", "*example.com", 443, 0, "*example.com", "name"},
    {"www.*.com", "www.example.com", 443, kNoMatch, "", ""},
    {"**.example.com", "a.example.com", 443, kNoMatch, "", ""},
    // Splitting and trimming: ',' only, Unicode White_Space trimmed, inner
    // blanks kept.
    {"a.com,b.com", "b.com", 443, 1, "b.com", "name"},
    {",,b.com", "b.com", 443, 2, "b.com", "name"},
    {"a.com,,  ,b.com", "x.b.com", 443, 3, "b.com", "name"},
    {"a.com , b.com", "b.com", 443, 1, "b.com", "name"},
    {"  example.com  ", "example.com", 443, 0, "example.com", "name"},
    {"\texample.com\n,x", "example.com", 443, 0, "example.com", "name"},
    {"\v\f\rexample.com", "example.com", 443, 0, "example.com", "name"},
    {"\xc2\xa0" "example.com", "example.com", 443, 0, "example.com", "name"},
    {"\xc2\x85" "example.com\xe3\x80\x80", "example.com", 443, 0, "example.com", "name"},
    {"\xe2\x80\x83" "example.com\xe2\x80\xa8", "www.example.com", 443, 0, "example.com", "name"},
    {"\xe1\x9a\x80" "a.com", "a.com", 443, 0, "a.com", "name"},
    {"\x1c" "example.com", "example.com", 443, kNoMatch, "", ""},  // not White_Space in Go
    {"a.com b.com", "a.com", 443, kNoMatch, "", ""},
    {"a.com b.com", "b.com", 443, kNoMatch, "", ""},
    {"a.com\tb.com", "b.com", 443, kNoMatch, "", ""},
    {"a.com;b.com", "a.com", 443, kNoMatch, "", ""},
    {"a.com;b.com", "a.com;b.com", 443, 0, "a.com;b.com", "name"},
    // '*' anywhere matches everything.
    {"*", "example.com", 443, 0, "*", "any"},
    {"*", "10.1.2.3", 443, 0, "*", "any"},
    {"*", "2001:db8::1", 1, 0, "*", "any"},
    {"*", "", 443, 0, "*", "any"},
    {" * ", "anything.example", 80, 0, "*", "any"},
    {"a.com,*", "b.com", 443, 1, "*", "any"},
    {"a.com,*", "a.com", 443, 0, "a.com", "name"},
    {"a.com,*,b.com", "b.com", 443, 1, "*", "any"},
    {"\xc2\xa0*\t", "192.0.2.1", 80, 0, "*", "any"},
    // Empty NO_PROXY, empty host.
    {"", "example.com", 443, kNoMatch, "", ""},
    {",,,", "example.com", 443, kNoMatch, "", ""},
    {"example.com", "", 443, kNoMatch, "", ""},
    {".", "", 443, kNoMatch, "", ""},
    // Rule 1: loopback, whatever NO_PROXY says.
    {"", "localhost", 80, kLoopback, "", ""},
    {"example.com", "localhost", 443, kLoopback, "", ""},
    {"", "127.0.0.1", 80, kLoopback, "", ""},
    {"", "127.255.0.9", 80, kLoopback, "", ""},
    {"", "::1", 80, kLoopback, "", ""},
    {"", "0:0:0:0:0:0:0:1", 80, kLoopback, "", ""},
    {"", "::ffff:127.0.0.1", 80, kLoopback, "", ""},
    {"", "::FFFF:7f00:1", 80, kLoopback, "", ""},
    {"", "\xef\xbd\x8c\xef\xbd\x8f\xef\xbd\x83\xef\xbd\x81\xef\xbd\x8c\xef\xbd\x88\xef\xbd\x8f"
         "\xef\xbd\x93\xef\xbd\x94", 80, kLoopback, "", ""},  // fullwidth "localhost"
    {"", "LOCALHOST", 80, kNoMatch, "", ""},
    {"", "localhost.", 80, kNoMatch, "", ""},
    {"", "foo.localhost", 80, kNoMatch, "", ""},
    {"", " localhost", 80, kNoMatch, "", ""},
    {"", "::2", 80, kNoMatch, "", ""},
    {"", "::127.0.0.1", 80, kNoMatch, "", ""},
    {"", "128.0.0.1", 80, kNoMatch, "", ""},
    {"", "0127.0.0.1", 80, kNoMatch, "", ""},
    {"localhost", "LOCALHOST", 80, 0, "localhost", "name"},
    {"LocalHost", "localhost.localdomain", 80, kNoMatch, "", ""},
    // Ports: compared with the effective port as a decimal string.
    {"example.com:8080", "example.com", 8080, 0, "example.com:8080", "name"},
    {"example.com:8080", "example.com", 443, kNoMatch, "", ""},
    {"example.com:8080", "www.example.com", 8080, 0, "example.com:8080", "name"},
    {"example.com:08080", "example.com", 8080, kNoMatch, "", ""},
    {"example.com:", "example.com", 443, 0, "example.com:", "name"},
    {".example.com:443", "api.example.com", 443, 0, ".example.com:443", "subdomain"},
    {".example.com:443", "api.example.com", 80, kNoMatch, "", ""},
    {"*.example.com:443", "api.example.com", 443, 0, "*.example.com:443", "subdomain"},
    {"example.com:abc", "example.com", 80, kNoMatch, "", ""},
    {"example.com:65536", "example.com", 0, kNoMatch, "", ""},
    {"example.com:0", "example.com", 0, 0, "example.com:0", "name"},
    {"example.com:+80", "example.com", 80, kNoMatch, "", ""},
    {"example.com:80:90", "example.com", 80, kNoMatch, "", ""},
    {"example.com:1,example.com:2,example.com", "example.com", 3, 2, "example.com", "name"},
    {":8080", "example.com", 8080, kNoMatch, "", ""},
    {":8080,example.com", "example.com", 80, 1, "example.com", "name"},
    {"[]:80,x.com", "x.com", 80, 1, "x.com", "name"},
    {"[a.com]:80", "a.com", 80, 0, "[a.com]:80", "name"},
    {"10.1.2.3:80", "10.1.2.3", 80, 0, "10.1.2.3:80", "ip"},
    {"10.1.2.3:80", "10.1.2.3", 443, kNoMatch, "", ""},
    {"10.1.2.3:", "10.1.2.3", 443, 0, "10.1.2.3:", "ip"},
    {"[2001:db8::1]:443", "2001:db8::1", 443, 0, "[2001:db8::1]:443", "ip"},
    {"[2001:db8::1]:443", "2001:db8::1", 80, kNoMatch, "", ""},
    {"[2001:db8::1]:", "2001:db8::1", 80, 0, "[2001:db8::1]:", "ip"},
    {"[2001:db8::1]", "2001:db8::1", 443, kNoMatch, "", ""},  // the trap
    {"[::ffff:10.1.2.3]:8443", "10.1.2.3", 8443, 0, "[::ffff:10.1.2.3]:8443", "ip"},
    // CIDR, net.ParseCIDR only.
    {"10.0.0.0/8", "10.1.2.3", 443, 0, "10.0.0.0/8", "cidr"},
    {"10.0.0.0/8", "10.1.2.3", 1, 0, "10.0.0.0/8", "cidr"},
    {"10.0.0.0/8", "11.1.2.3", 443, kNoMatch, "", ""},
    {"10.1.2.3/8", "10.200.0.1", 443, 0, "10.1.2.3/8", "cidr"},
    {"10.0.0.0/08", "10.200.0.1", 443, 0, "10.0.0.0/08", "cidr"},
    {"10.1.2.3/32", "10.1.2.3", 443, 0, "10.1.2.3/32", "cidr"},
    {"10.1.2.3/32", "10.1.2.4", 443, kNoMatch, "", ""},
    {"192.168.0.0/23", "192.168.1.200", 80, 0, "192.168.0.0/23", "cidr"},
    {"192.168.0.0/23", "192.168.2.1", 80, kNoMatch, "", ""},
    {"0.0.0.0/0", "8.8.8.8", 443, 0, "0.0.0.0/0", "cidr"},
    {"0.0.0.0/0", "2001:db8::1", 443, kNoMatch, "", ""},
    {"0.0.0.0/0", "example.com", 443, kNoMatch, "", ""},
    {"10.0.0.0/8", "::ffff:10.9.9.9", 443, 0, "10.0.0.0/8", "cidr"},
    {"::ffff:0:0/96", "192.0.2.1", 443, 0, "::ffff:0:0/96", "cidr"},
    {"::ffff:10.0.0.0/104", "10.5.5.5", 443, 0, "::ffff:10.0.0.0/104", "cidr"},
    {"::ffff:10.0.0.0/104", "11.5.5.5", 443, kNoMatch, "", ""},
    {"::ffff:10.0.0.0/90", "10.5.5.5", 443, kNoMatch, "", ""},
    {"::/0", "2001:db8::1", 443, 0, "::/0", "cidr"},
    {"::/0", "10.1.2.3", 443, kNoMatch, "", ""},
    {"::/0", "::ffff:10.1.2.3", 443, kNoMatch, "", ""},
    {"2001:db8::/32", "2001:db8:ffff::1", 443, 0, "2001:db8::/32", "cidr"},
    {"2001:DB8::/32", "2001:db9::1", 443, kNoMatch, "", ""},
    {"2001:db8::1/64", "2001:db8::abcd", 443, 0, "2001:db8::1/64", "cidr"},
    {"10.0.0.0/8", "ten.example", 443, kNoMatch, "", ""},
    {"10.0.0.0/8:80", "10.1.2.3", 80, kNoMatch, "", ""},
    {"10.0.0.0/255.0.0.0", "10.1.2.3", 443, kNoMatch, "", ""},
    {"10.0.0.0/33", "10.0.0.1", 443, kNoMatch, "", ""},
    {"::/129", "::2", 443, kNoMatch, "", ""},
    {"10.0.0.0/", "10.0.0.0", 443, kNoMatch, "", ""},
    {"10.0.0.0/-8", "10.0.0.1", 443, kNoMatch, "", ""},
    {"010.0.0.0/8", "10.1.1.1", 443, kNoMatch, "", ""},
    {"10.0.0/8", "10.0.0.1", 443, kNoMatch, "", ""},
    {"fe80::%eth0/64", "fe80::1", 443, kNoMatch, "", ""},
    {"10.0.0.0/8,10.1.2.3", "10.1.2.3", 443, 0, "10.0.0.0/8", "cidr"},
    {"10.1.2.3:443,10.0.0.0/8", "10.1.2.3", 80, 1, "10.0.0.0/8", "cidr"},
    // Exact IPs compare numerically; IP hosts never meet name entries.
    {"10.1.2.3", "10.1.2.3", 443, 0, "10.1.2.3", "ip"},
    {"10.1.2.3", "::ffff:10.1.2.3", 443, 0, "10.1.2.3", "ip"},
    {"::ffff:10.1.2.3", "10.1.2.3", 443, 0, "::ffff:10.1.2.3", "ip"},
    {"::FFFF:a01:203", "10.1.2.3", 443, 0, "::ffff:a01:203", "ip"},
    {"2001:DB8::1", "2001:db8::1", 443, 0, "2001:db8::1", "ip"},
    {"2001:db8:0:0:0:0:0:1", "2001:db8::1", 443, 0, "2001:db8:0:0:0:0:0:1", "ip"},
    {"2001:db8::1", "2001:0db8:0000::0001", 443, 0, "2001:db8::1", "ip"},
    {"2001:db8::1", "2001:DB8::1", 443, 0, "2001:db8::1", "ip"},
    {"::", "::", 443, 0, "::", "ip"},
    {"::1:80", "::1:80", 443, 0, "::1:80", "ip"},
    {"2.3", "10.1.2.3", 443, kNoMatch, "", ""},
    {"1.2.3", "10.1.2.3", 443, kNoMatch, "", ""},
    {"example.com", "10.1.2.3", 443, kNoMatch, "", ""},
    {"db8::1", "2001:db8::1", 443, kNoMatch, "", ""},
    {"10.1.2.3", "10.1.2.30", 443, kNoMatch, "", ""},
    {"10.1.2.3", "10.1.2.3.example", 443, kNoMatch, "", ""},
    {"010.1.2.3", "10.1.2.3", 443, kNoMatch, "", ""},
    {"1.2.3", "010.1.2.3", 443, 0, "1.2.3", "name"},  // "010.1.2.3" is a name for Go
    {"10.1.2.3.", "10.1.2.3.", 443, 0, "10.1.2.3.", "name"},
    {"10.1.2.3", "10.1.2.3.", 443, kNoMatch, "", ""},
    {"fe80::1", "fe80::1%eth0", 443, 0, "fe80::1", "ip"},  // x/net master drops the zone
    {"fe80::1%eth0", "fe80::1", 443, kNoMatch, "", ""},
    {"fe80::1%eth0", "fe80::1%eth0", 443, kNoMatch, "", ""},
    {"10.1.2.3", " 10.1.2.3", 443, kNoMatch, "", ""},
    {"1.2.3", " 10.1.2.3", 443, 0, "1.2.3", "name"},
    // IDNA (UTS #46, non-transitional) on entries and hosts.
    {"b\xc3\xbc" "cher.example", "xn--bcher-kva.example", 443, 0,
     "b\xc3\xbc" "cher.example", "name"},
    {"b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example", 443, 0,
     "b\xc3\xbc" "cher.example", "name"},
    {".b\xc3\xbc" "cher.example", "www.xn--bcher-kva.example", 443, 0,
     ".b\xc3\xbc" "cher.example", "subdomain"},
    {"*.b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example", 443, kNoMatch, "", ""},
    {"*.b\xc3\xbc" "cher.example", "www.b\xc3\xbc" "cher.example", 443, 0,
     "*.b\xc3\xbc" "cher.example", "subdomain"},
    {"B\xc3\x9c" "CHER.example", "b\xc3\xbc" "cher.example", 443, 0,
     "b\xc3\xbc" "cher.example", "name"},
    {"b\xc3\xbc" "cher.example:8443", "www.b\xc3\xbc" "cher.example", 8443, 0,
     "b\xc3\xbc" "cher.example:8443", "name"},
    {"stra\xc3\x9f" "e.de", "xn--strae-oqa.de", 443, 0, "stra\xc3\x9f" "e.de", "name"},
    {"stra\xc3\x9f" "e.de", "strasse.de", 443, kNoMatch, "", ""},
    {"xn--strae-oqa.de", "stra\xc3\x9f" "e.de", 443, 0, "xn--strae-oqa.de", "name"},
    {"\xe2\x80\x8b" "example.com", "example.com", 443, 0, "\xe2\x80\x8b" "example.com", "name"},
    {"a_b.b\xc3\xbc" "cher.de", "a_b.b\xc3\xbc" "cher.de", 443, 0,
     "a_b.b\xc3\xbc" "cher.de", "name"},
    {"a_b.b\xc3\xbc" "cher.de", "a_b.xn--bcher-kva.de", 443, kNoMatch, "", ""},
    // Hosts Go cannot split back out of host:port are never proxied.
    {"", "[::1]", 443, kMalformed, "", ""},
    {"example.com", "a]b", 443, kMalformed, "", ""},
    // Several entries: the first matching one in list order is reported.
    {"example.com,.example.com", "www.example.com", 443, 0, "example.com", "name"},
    {".example.com,example.com", "www.example.com", 443, 0, ".example.com", "subdomain"},
    {".example.com,example.com", "example.com", 443, 1, "example.com", "name"},
    {"b.example.com,example.com", "a.b.example.com", 443, 0, "b.example.com", "name"},
    {"example.com,b.example.com", "a.b.example.com", 443, 0, "example.com", "name"},
    {"x.org,10.0.0.0/8,*", "10.2.2.2", 443, 1, "10.0.0.0/8", "cidr"},
};
// clang-format on

class NoProxyTable : public ::testing::TestWithParam<NoProxyCase> {};

TEST_P(NoProxyTable, Evaluate) {
  const NoProxyCase& c = GetParam();
  const NoProxyVerdict verdict = NoProxyList::parse(c.value).evaluate(c.host, c.port);
  switch (c.index) {
    case kNoMatch:
      EXPECT_FALSE(verdict.bypass);
      EXPECT_FALSE(verdict.loopback);
      EXPECT_FALSE(verdict.match.has_value());
      break;
    case kLoopback:
      EXPECT_TRUE(verdict.bypass);
      EXPECT_TRUE(verdict.loopback);
      EXPECT_FALSE(verdict.match.has_value());
      EXPECT_TRUE(isLoopbackShortcut(c.host));
      break;
    case kMalformed:
      EXPECT_TRUE(verdict.bypass);
      EXPECT_TRUE(verdict.malformed_host);
      EXPECT_FALSE(verdict.loopback);
      EXPECT_FALSE(verdict.match.has_value());
      break;
    default:
      EXPECT_TRUE(verdict.bypass);
      EXPECT_FALSE(verdict.loopback);
      ASSERT_TRUE(verdict.match.has_value());
      EXPECT_EQ(verdict.match->list_id, 0);
      EXPECT_EQ(verdict.match->index, c.index);
      EXPECT_EQ(verdict.match->entry, c.entry);
      EXPECT_STREQ(hostMatchHowName(verdict.match->how), c.how);
      break;
  }
  if (c.index != kLoopback) {
    EXPECT_FALSE(isLoopbackShortcut(c.host));
  }
  if (c.index != kMalformed) {
    EXPECT_FALSE(verdict.malformed_host);
  }
}

std::string caseName(const ::testing::TestParamInfo<NoProxyCase>& info) {
  return "case" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(Go, NoProxyTable, ::testing::ValuesIn(kCases), caseName);

TEST(NoProxyTableSize, HasEnoughCases) {
  EXPECT_GE(std::size(kCases), 110u);
}

TEST(NoProxyList, KeepsValueAndCountsUsableEntries) {
  const NoProxyList list = NoProxyList::parse(" a.com,,:80,[]:1,10.0.0.0/8,*, ");
  EXPECT_EQ(list.value(), " a.com,,:80,[]:1,10.0.0.0/8,*, ");
  EXPECT_EQ(list.entryCount(), 3u);
  EXPECT_EQ(NoProxyList::parse("").entryCount(), 0u);
}

TEST(NoProxyList, EvaluatesPreparedHostKey) {
  const NoProxyList list = NoProxyList::parse(".corp.example.com,10.0.0.0/8");
  const HostKey key = HostKey::from("Build.Corp.Example.Com");
  const NoProxyVerdict verdict = list.evaluate(key, 443);
  ASSERT_TRUE(verdict.match.has_value());
  EXPECT_EQ(verdict.match->entry, ".corp.example.com");
  EXPECT_EQ(verdict.match->how, HostMatchHow::kSubdomain);
}

TEST(NoProxyList, LoopbackWinsOverEntries) {
  const NoProxyVerdict verdict = NoProxyList::parse("127.0.0.0/8,*").evaluate("127.0.0.1", 80);
  EXPECT_TRUE(verdict.bypass);
  EXPECT_TRUE(verdict.loopback);
  EXPECT_FALSE(verdict.match.has_value());
}

}  // namespace
}  // namespace switchyard::rules
