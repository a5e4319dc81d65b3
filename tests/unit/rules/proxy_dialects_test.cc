// curl 7.88.1 and CPython 3.11 urllib readings of a no_proxy value, one row
// per line of the SEMANTICS.md A.4 table (and a few more). Every expected
// value below was observed by running Debian 12's curl 7.88.1 (no_proxy and
// http(s)_proxy in the environment, inside an empty network namespace, a
// proxied request being one that tried the proxy port) and CPython 3.11.7's
// urllib.request.proxy_bypass_environment() on Request(url).host.
#include "rules/proxy_dialects.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "rules/no_proxy.h"

namespace switchyard::rules {
namespace {

struct DialectCase {
  const char* name;
  const char* no_proxy;
  const char* host;  // URL host, no brackets
  uint16_t effective_port;
  std::optional<uint16_t> explicit_port;
  bool curl;
  bool python;
};

// clang-format off
const DialectCase kCases[] = {
    {"sep-blank", "a.com b.com", "b.com", 80, std::nullopt, true, false},
    {"sep-tab", "a.com\tb.com", "b.com", 80, std::nullopt, true, false},
    {"sep-comma-padded", "a.com , b.com", "b.com", 80, std::nullopt, true, true},
    {"sep-semicolon", "a.com;b.com", "b.com", 80, std::nullopt, false, false},
    {"sep-empty-pieces", "a.com,,b.com", "b.com", 80, std::nullopt, true, true},
    {"star-alone", "*", "example.com", 80, std::nullopt, true, true},
    {"star-alone-ip", "*", "10.1.2.3", 80, std::nullopt, true, true},
    {"star-in-list", "a.com,*", "b.com", 80, std::nullopt, false, false},
    {"star-padded", " * ", "b.com", 80, std::nullopt, false, false},
    {"name-self", "example.com", "example.com", 80, std::nullopt, true, true},
    {"name-sub", "example.com", "www.example.com", 80, std::nullopt, true, true},
    {"name-not-suffix", "example.com", "notexample.com", 80, std::nullopt, false, false},
    {"dot-self", ".example.com", "example.com", 80, std::nullopt, true, true},
    {"dot-sub", ".example.com", "www.example.com", 80, std::nullopt, true, true},
    {"dots-many", "...example.com", "example.com", 80, std::nullopt, false, true},
    {"starDot-sub", "*.example.com", "www.example.com", 80, std::nullopt, false, false},
    {"starDot-self", "*.example.com", "example.com", 80, std::nullopt, false, false},
    {"port-explicit-same", "example.com:8080", "example.com", 8080, 8080, false, true},
    {"port-explicit-sub", "example.com:8080", "www.example.com", 8080, 8080, false, true},
    {"port-explicit-other", "example.com:8080", "example.com", 8081, 8081, false, false},
    {"port-default-https", "example.com:443", "example.com", 443, std::nullopt, false, false},
    {"port-explicit-default", "example.com:443", "example.com", 443, 443, false, true},
    {"port-empty-entry", "example.com:", "example.com", 80, std::nullopt, false, false},
    {"port-on-host-only", "example.com", "example.com", 8080, 8080, true, true},
    {"case", "EXAMPLE.com", "www.Example.COM", 80, std::nullopt, true, true},
    {"trail-host", "example.com", "example.com.", 80, std::nullopt, true, false},
    {"trail-entry", "example.com.", "www.example.com", 80, std::nullopt, true, false},
    {"trail-both", "example.com.", "example.com.", 80, std::nullopt, true, true},
    {"v4-exact", "10.1.2.3", "10.1.2.3", 80, std::nullopt, true, true},
    {"v4-leading-zero-entry", "010.1.2.3", "10.1.2.3", 80, std::nullopt, false, false},
    {"v4-other", "10.1.2.3", "10.1.2.30", 80, std::nullopt, false, false},
    {"v4-suffix-entry", "2.3", "10.1.2.3", 80, std::nullopt, false, true},
    {"v4-suffix-entry3", "1.2.3", "10.1.2.3", 80, std::nullopt, false, true},
    {"cidr4", "10.0.0.0/8", "10.1.2.3", 80, std::nullopt, true, false},
    {"cidr4-out", "10.0.0.0/8", "11.1.2.3", 80, std::nullopt, false, false},
    {"cidr4-zero", "0.0.0.0/0", "10.1.2.3", 80, std::nullopt, false, false},
    {"cidr4-zero-self", "10.1.2.3/0", "10.1.2.3", 80, std::nullopt, true, false},
    {"cidr4-garbage", "10.0.0.0/8garbage", "10.1.2.3", 80, std::nullopt, true, false},
    {"cidr4-33", "10.0.0.0/33", "10.1.2.3", 80, std::nullopt, false, false},
    {"cidr4-neg", "10.1.2.3/-1", "10.1.2.3", 80, std::nullopt, false, false},
    {"cidr4-wrap", "10.1.2.3/4294967328", "10.1.2.3", 80, std::nullopt, true, false},
    {"cidr4-blank-list", "192.168.0.0/16 10.0.0.0/8", "10.1.2.3", 80, std::nullopt, true, false},
    {"cidr6", "2001:db8::/32", "2001:db8::1", 80, std::nullopt, false, false},
    {"v6-exact", "2001:db8::1", "2001:db8::1", 80, std::nullopt, true, false},
    {"v6-case", "2001:DB8::1", "2001:db8::1", 80, std::nullopt, true, false},
    {"v6-long-spelling", "2001:db8:0:0:0:0:0:1", "2001:db8::1", 80, std::nullopt, false, false},
    {"v6-bracketed", "[2001:db8::1]", "2001:db8::1", 80, std::nullopt, false, true},
    {"v6-bracketed-port", "[2001:db8::1]:8080", "2001:db8::1", 8080, 8080, false, true},
    {"v6-loopback-entry", "::1", "::1", 80, std::nullopt, true, false},
    {"mapped-exact", "10.1.2.3", "::ffff:10.1.2.3", 80, std::nullopt, false, false},
    {"mapped-cidr", "10.0.0.0/8", "::ffff:10.1.2.3", 80, std::nullopt, false, false},
    {"mapped-textual-suffix", "2.3", "::ffff:10.1.2.3", 80, std::nullopt, true, false},
    {"localhost-empty", "", "localhost", 80, std::nullopt, false, false},
    {"localhost-other", "example.com", "localhost", 80, std::nullopt, false, false},
    {"loopback-ip", "example.com", "127.0.0.1", 80, std::nullopt, false, false},
    {"idn-entry", "b\xc3\xbc" "cher.example", "xn--bcher-kva.example",
     80, std::nullopt, false, false},
    {"idn-both-unicode", "b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example",
     80, std::nullopt, false, true},
    {"idn-ace-entry", "xn--bcher-kva.example", "b\xc3\xbc" "cher.example",
     80, std::nullopt, true, false},
    {"lone-dot-fqdn", ".", "example.com.", 80, std::nullopt, false, true},
    {"lone-dot", ".", "example.com", 80, std::nullopt, false, false},
    {"nbsp", "\xc2\xa0" "example.com", "example.com", 80, std::nullopt, false, true},
    {"x1c", "\x1c" "example.com", "example.com", 80, std::nullopt, false, true},
    {"empty-value", "", "example.com", 80, std::nullopt, false, false},
    {"newline-sep", "a.com\nb.com", "b.com", 80, std::nullopt, false, false},
    {"uppercase-host-trail", "example.com", "EXAMPLE.COM.", 80, std::nullopt, true, false},
};
// clang-format on

class DialectTable : public ::testing::TestWithParam<DialectCase> {};

TEST_P(DialectTable, Curl) {
  const DialectCase& c = GetParam();
  EXPECT_EQ(curlBypass(c.no_proxy, c.host, c.effective_port), c.curl);
}

TEST_P(DialectTable, Python) {
  const DialectCase& c = GetParam();
  EXPECT_EQ(pythonBypass(c.no_proxy, c.host, c.explicit_port), c.python);
}

std::string caseName(const ::testing::TestParamInfo<DialectCase>& info) {
  std::string name = info.param.name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) {
      ch = '_';
    }
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Observed, DialectTable, ::testing::ValuesIn(kCases), caseName);

TEST(DialectTableSize, HasEnoughCases) {
  EXPECT_GE(std::size(kCases), 40u);
}

// Rows of the A.4 table where the three readings disagree, seen side by side
// with Go's verdict, as `explain` reports them.
TEST(Dialects, DifferFromGoWhereTheTableSays) {
  struct Row {
    const char* no_proxy;
    const char* host;
    uint16_t port;
    bool go;
    bool curl;
    bool python;
  };
  const Row rows[] = {
      {"a.com,*", "b.com", 443, true, false, false},
      {".example.com", "example.com", 443, false, true, true},
      {"*.example.com", "www.example.com", 443, true, false, false},
      {"example.com:443", "example.com", 443, true, false, false},
      {"example.com", "example.com.", 443, false, true, false},
      {"2.3", "10.1.2.3", 443, false, false, true},
      {"10.0.0.0/8", "10.1.2.3", 443, true, true, false},
      {"0.0.0.0/0", "10.1.2.3", 443, true, false, false},
      {"2001:db8::/32", "2001:db8::1", 443, true, false, false},
      {"10.1.2.3", "::ffff:10.1.2.3", 443, true, false, false},
      {"", "localhost", 443, true, false, false},
      {"b\xc3\xbc"
       "cher.example",
       "xn--bcher-kva.example", 443, true, false, false},
      {".", "example.com.", 443, true, false, true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(std::string(r.no_proxy) + " / " + r.host);
    EXPECT_EQ(NoProxyList::parse(r.no_proxy).evaluate(r.host, r.port).bypass, r.go);
    EXPECT_EQ(curlBypass(r.no_proxy, r.host, r.port), r.curl);
    EXPECT_EQ(pythonBypass(r.no_proxy, r.host, std::nullopt), r.python);
  }
}

TEST(CurlDialect, FunctionLevelDetails) {
  // The port plays no part.
  EXPECT_TRUE(curlBypass("example.com", "example.com", 1));
  EXPECT_FALSE(curlBypass("example.com:1", "example.com", 1));
  // Empty host or value.
  EXPECT_FALSE(curlBypass("example.com", "", 80));
  EXPECT_FALSE(curlBypass("", "", 80));
  // A bracketed host is treated like the bare address (7.88.1's URL layer).
  EXPECT_TRUE(curlBypass("::1", "[::1]", 80));
  EXPECT_FALSE(curlBypass("::1", "[::1", 80));
  // Only one trailing dot is ignored, on each side.
  EXPECT_FALSE(curlBypass("example.com", "example.com..", 80));
  EXPECT_FALSE(curlBypass("example.com..", "example.com", 80));
  // An IPv4 host with a trailing dot is a name, compared as text.
  EXPECT_TRUE(curlBypass("1.2.3.4", "1.2.3.4.", 80));
  EXPECT_FALSE(curlBypass("1.2.3.0/24", "1.2.3.4.", 80));
  // atoi() details: leading white space, '+', saturation.
  EXPECT_TRUE(curlBypass("10.0.0.0/\v8", "10.1.2.3", 80));
  EXPECT_TRUE(curlBypass("10.0.0.0/+8", "10.1.2.3", 80));
  EXPECT_FALSE(curlBypass("10.0.0.0/99999999999999999999", "10.1.2.3", 80));
  EXPECT_TRUE(curlBypass("10.1.2.3/-99999999999999999999", "10.1.2.3", 80));
  EXPECT_TRUE(curlBypass("10.1.2.3/32", "10.1.2.3", 80));
  EXPECT_FALSE(curlBypass("10.1.2.3/32", "10.1.2.4", 80));
  EXPECT_TRUE(curlBypass("10.1.2.0/31", "10.1.2.1", 80));
  // Tokens of 128 bytes or more never match an IPv4 host.
  EXPECT_FALSE(curlBypass("10.0.0.0/" + std::string(130, '8'), "10.1.2.3", 80));
  // C strings: everything after a NUL is invisible.
  EXPECT_FALSE(curlBypass(std::string("a.com\0,b.com", 13), "b.com", 80));
  // A lone "." matches only the host "." itself.
  EXPECT_TRUE(curlBypass(".", ".", 80));
  EXPECT_FALSE(curlBypass(".", "a.", 80));
  // Several commas and blanks in a row.
  EXPECT_TRUE(curlBypass(" ,, a.com ,\t, b.com,", "b.com", 80));
}

TEST(PythonDialect, FunctionLevelDetails) {
  // Only the whole value "*" is special.
  EXPECT_TRUE(pythonBypass("*", "anything", std::nullopt));
  EXPECT_FALSE(pythonBypass("*,a.com", "b.com", std::nullopt));
  // Entry equal to the whole authority, with its port.
  EXPECT_TRUE(pythonBypass("a.com:8080", "A.COM", 8080));
  EXPECT_FALSE(pythonBypass("a.com:8080", "a.com", std::nullopt));
  // Suffix over the authority with port.
  EXPECT_TRUE(pythonBypass("com:8080", "a.com", 8080));
  // IPv6 authority keeps its brackets.
  EXPECT_TRUE(pythonBypass("[::1]", "::1", std::nullopt));
  EXPECT_TRUE(pythonBypass("[::1]", "[::1]", std::nullopt));
  EXPECT_TRUE(pythonBypass("[2001:DB8::1]:443", "2001:db8::1", 443));
  EXPECT_FALSE(pythonBypass("[2001:db8::1]:80", "2001:db8::1", 443));
  // Python's white space includes \x1c-\x1f and U+0085.
  EXPECT_TRUE(
      pythonBypass("\x1f"
                   "a.com\xc2\x85",
                   "a.com", std::nullopt));
  // Leading dots are all stripped; a lone "." matches FQDN hosts.
  EXPECT_TRUE(pythonBypass("....a.com", "a.com", std::nullopt));
  EXPECT_TRUE(pythonBypass(".", "a.com.", std::nullopt));
  // str.lower() is Unicode-aware on both sides, İ becomes "i̇".
  EXPECT_TRUE(
      pythonBypass("B\xc3\x9c"
                   "CHER.de",
                   "www.b\xc3\xbc"
                   "cher.DE",
                   std::nullopt));
  EXPECT_TRUE(pythonBypass("\xc4\xb0.tr", "i\xcc\x87.tr", std::nullopt));
  // Undecodable bytes pass through unchanged.
  EXPECT_TRUE(pythonBypass("\xff.com", "a.\xff.com", std::nullopt));
  // Empty values and hosts.
  EXPECT_FALSE(pythonBypass("", "a.com", std::nullopt));
  EXPECT_FALSE(pythonBypass("a.com", "", std::nullopt));
}

}  // namespace
}  // namespace switchyard::rules
