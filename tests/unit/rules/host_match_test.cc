// The building blocks of the NO_PROXY reading (Go's address, CIDR and
// host:port rules, IDNA, Unicode trimming) and the multi-list HostMatcher
// index, including a differential check of the index against the plain
// per-entry rule.
#include "rules/host_match.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "rules/idna.h"

namespace switchyard::rules {
namespace {

std::string formatIp(const IpBytes& ip) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < ip.size(); ++i) {
    if (i > 0 && i % 2 == 0) {
      out += ':';
    }
    out += kHex[ip[i] >> 4];
    out += kHex[ip[i] & 0xF];
  }
  return out;
}

// --- Go's netip.ParseAddr / net.ParseIP ------------------------------------

struct AddrCase {
  const char* text;
  bool allow_zone;
  const char* expect;  // formatted 16-byte address, nullptr when invalid
};

// clang-format off
const AddrCase kAddrCases[] = {
    {"10.1.2.3", false, "0000:0000:0000:0000:0000:ffff:0a01:0203"},
    {"0.0.0.0", false, "0000:0000:0000:0000:0000:ffff:0000:0000"},
    {"255.255.255.255", false, "0000:0000:0000:0000:0000:ffff:ffff:ffff"},
    {"010.1.2.3", false, nullptr},     // leading zero
    {"10.01.2.3", false, nullptr},
    {"00.1.2.3", false, nullptr},
    {"256.1.2.3", false, nullptr},
    {"1.2.3", false, nullptr},
    {"1.2.3.4.5", false, nullptr},
    {"1..2.3", false, nullptr},
    {".1.2.3", false, nullptr},
    {"1.2.3.", false, nullptr},
    {"1.2.3.4 ", false, nullptr},
    {" 1.2.3.4", false, nullptr},
    {"1.2.3.4%eth0", true, nullptr},   // IPv4 takes no zone
    {"0x1.2.3.4", false, nullptr},
    {"", false, nullptr},
    {"example.com", false, nullptr},
    {"::", false, "0000:0000:0000:0000:0000:0000:0000:0000"},
    {"::1", false, "0000:0000:0000:0000:0000:0000:0000:0001"},
    {"1::", false, "0001:0000:0000:0000:0000:0000:0000:0000"},
    {"2001:DB8::1", false, "2001:0db8:0000:0000:0000:0000:0000:0001"},
    {"2001:db8:0:0:0:0:0:1", false, "2001:0db8:0000:0000:0000:0000:0000:0001"},
    {"2001:0db8:0000::0001", false, "2001:0db8:0000:0000:0000:0000:0000:0001"},
    {"1:2:3:4:5:6:7::", false, "0001:0002:0003:0004:0005:0006:0007:0000"},
    {"::2:3:4:5:6:7:8", false, "0000:0002:0003:0004:0005:0006:0007:0008"},
    {"1:2:3:4:5:6:7::8", false, nullptr},  // "::" must stand for a zero group
    {"1:2:3:4:5:6:7:8:9", false, nullptr},
    {"1:2:3:4:5:6:7", false, nullptr},
    {"1:::2", false, nullptr},
    {"1::2::3", false, nullptr},
    {":1::2", false, nullptr},
    {"1::2:", false, nullptr},
    {"12345::1", false, nullptr},
    {"00001::1", false, nullptr},
    {"g::1", false, nullptr},
    {"::ffff:10.1.2.3", false, "0000:0000:0000:0000:0000:ffff:0a01:0203"},
    {"::ffff:a01:203", false, "0000:0000:0000:0000:0000:ffff:0a01:0203"},
    {"::10.1.2.3", false, "0000:0000:0000:0000:0000:0000:0a01:0203"},
    {"1:2:3:4:5:6:10.1.2.3", false, "0001:0002:0003:0004:0005:0006:0a01:0203"},
    {"1:2:3:4:5:10.1.2.3", false, nullptr},
    {"1:2:3:4:5:6:7:10.1.2.3", false, nullptr},
    {"::ffff:010.1.2.3", false, nullptr},
    {"::10.1.2.3:1", false, nullptr},
    {"fe80::1%eth0", true, "fe80:0000:0000:0000:0000:0000:0000:0001"},
    {"fe80::1%eth0", false, nullptr},
    {"fe80::1%", true, nullptr},
    {"%eth0", true, nullptr},
    {"[::1]", false, nullptr},
};
// clang-format on

TEST(GoAddr, ParsesLikeNetip) {
  for (const AddrCase& c : kAddrCases) {
    SCOPED_TRACE(c.text);
    auto ip = parseGoAddr(c.text, c.allow_zone);
    if (c.expect == nullptr) {
      EXPECT_FALSE(ip.has_value());
    } else {
      ASSERT_TRUE(ip.has_value());
      EXPECT_EQ(formatIp(ip->bytes), c.expect);
    }
  }
}

TEST(GoAddr, RemembersFormAndZone) {
  EXPECT_TRUE(parseGoAddr("1.2.3.4", false)->dotted_v4);
  EXPECT_FALSE(parseGoAddr("::ffff:1.2.3.4", false)->dotted_v4);
  EXPECT_TRUE(parseGoAddr("fe80::1%2", true)->had_zone);
  EXPECT_TRUE(isV4Like(parseGoAddr("::ffff:1.2.3.4", false)->bytes));
  EXPECT_FALSE(isV4Like(parseGoAddr("::1.2.3.4", false)->bytes));
}

TEST(GoAddr, Loopback) {
  EXPECT_TRUE(isLoopbackIp(parseGoAddr("127.0.0.1", false)->bytes));
  EXPECT_TRUE(isLoopbackIp(parseGoAddr("127.1.2.3", false)->bytes));
  EXPECT_TRUE(isLoopbackIp(parseGoAddr("::ffff:127.0.0.2", false)->bytes));
  EXPECT_TRUE(isLoopbackIp(parseGoAddr("::1", false)->bytes));
  EXPECT_FALSE(isLoopbackIp(parseGoAddr("::127.0.0.1", false)->bytes));
  EXPECT_FALSE(isLoopbackIp(parseGoAddr("128.0.0.1", false)->bytes));
  EXPECT_FALSE(isLoopbackIp(parseGoAddr("::", false)->bytes));
}

// --- net.ParseCIDR -----------------------------------------------------------

struct CidrCase {
  const char* text;
  bool valid;
  bool v4;
  int prefix;
};

// clang-format off
const CidrCase kCidrCases[] = {
    {"10.0.0.0/8", true, true, 8},
    {"10.1.2.3/8", true, true, 8},
    {"0.0.0.0/0", true, true, 0},
    {"1.2.3.4/32", true, true, 32},
    {"10.0.0.0/08", true, true, 8},
    {"10.0.0.0/0008", true, true, 8},
    {"10.0.0.0/33", false, false, 0},
    {"10.0.0.0/", false, false, 0},
    {"10.0.0.0/+8", false, false, 0},
    {"10.0.0.0/-8", false, false, 0},
    {"10.0.0.0/8 ", false, false, 0},
    {"10.0.0.0/8/8", false, false, 0},
    {"10.0.0.0/255.0.0.0", false, false, 0},
    {"10.0.0.0", false, false, 0},
    {"10.0.0/8", false, false, 0},
    {"/8", false, false, 0},
    {"10.0.0.0/99999999", false, false, 0},
    {"2001:db8::/32", true, false, 32},
    {"::/0", true, false, 0},
    {"::/128", true, false, 128},
    {"::/129", false, false, 0},
    {"::ffff:0:0/96", true, true, 0},
    {"::ffff:10.0.0.0/104", true, true, 8},
    {"::ffff:10.0.0.0/128", true, true, 32},
    {"::ffff:10.0.0.0/95", true, false, 95},
    {"::ffff:10.0.0.0/24", true, false, 24},
    {"fe80::1%eth0/64", false, false, 0},
    {"[::1]/128", false, false, 0},
};
// clang-format on

TEST(GoCidr, ParsesLikeNetParseCidr) {
  for (const CidrCase& c : kCidrCases) {
    SCOPED_TRACE(c.text);
    auto cidr = parseGoCidr(c.text);
    ASSERT_EQ(cidr.has_value(), c.valid);
    if (c.valid) {
      EXPECT_EQ(cidr->v4, c.v4);
      EXPECT_EQ(cidr->prefix, c.prefix);
    }
  }
}

TEST(GoCidr, MasksHostBitsAndContains) {
  auto cidr = parseGoCidr("10.1.2.3/8");
  ASSERT_TRUE(cidr);
  EXPECT_EQ(formatIp(cidr->network), "0000:0000:0000:0000:0000:ffff:0a00:0000");
  EXPECT_TRUE(cidrContains(*cidr, parseGoAddr("10.255.0.1", false)->bytes));
  EXPECT_TRUE(cidrContains(*cidr, parseGoAddr("::ffff:10.0.0.1", false)->bytes));
  EXPECT_FALSE(cidrContains(*cidr, parseGoAddr("11.0.0.1", false)->bytes));
  auto all_v6 = parseGoCidr("::/0");
  EXPECT_TRUE(cidrContains(*all_v6, parseGoAddr("2001:db8::1", false)->bytes));
  EXPECT_FALSE(cidrContains(*all_v6, parseGoAddr("1.2.3.4", false)->bytes));
}

// --- net.SplitHostPort -------------------------------------------------------

struct SplitCase {
  const char* text;
  const char* host;  // nullptr: Go returns an error
  const char* port;
};

// clang-format off
const SplitCase kSplitCases[] = {
    {"example.com:80", "example.com", "80"},
    {"example.com:", "example.com", ""},
    {":80", "", "80"},
    {":", "", ""},
    {"[::1]:443", "::1", "443"},
    {"[::1]:", "::1", ""},
    {"[]:80", "", "80"},
    {"[a.com]:80", "a.com", "80"},
    {"example.com", nullptr, nullptr},
    {"::1", nullptr, nullptr},
    {"2001:db8::1:80", nullptr, nullptr},
    {"[::1]", nullptr, nullptr},
    {"[::1]80", nullptr, nullptr},
    {"[::1]:80:90", nullptr, nullptr},
    {"[::1:80", nullptr, nullptr},
    {"a]:80", nullptr, nullptr},
    {"a[:80", nullptr, nullptr},
    {"[a[b]:80", nullptr, nullptr},
    {"[a]]:80", nullptr, nullptr},
    {"a:b:c", nullptr, nullptr},
};
// clang-format on

TEST(GoSplitHostPort, SplitsLikeNet) {
  for (const SplitCase& c : kSplitCases) {
    SCOPED_TRACE(c.text);
    auto split = splitGoHostPort(c.text);
    if (c.host == nullptr) {
      EXPECT_FALSE(split.has_value());
    } else {
      ASSERT_TRUE(split.has_value());
      EXPECT_EQ(split->first, c.host);
      EXPECT_EQ(split->second, c.port);
    }
  }
}

// --- Text helpers and IDNA ---------------------------------------------------

TEST(HostText, TrimSpaceLikeGo) {
  EXPECT_EQ(goTrimSpace("  a b \t\n"), "a b");
  EXPECT_EQ(goTrimSpace("\xc2\xa0x\xc2\x85"), "x");
  EXPECT_EQ(goTrimSpace("\xe3\x80\x80x\xe2\x80\x8a"), "x");
  EXPECT_EQ(goTrimSpace("\xe2\x80\x8bx"), "\xe2\x80\x8bx");  // ZWSP is not White_Space
  EXPECT_EQ(goTrimSpace("\x1cx"), "\x1cx");
  EXPECT_EQ(goTrimSpace("\xa0x\xa0"), "\xa0x\xa0");  // invalid UTF-8 is never trimmed
  EXPECT_EQ(goTrimSpace(" \xc2"), "\xc2");
  EXPECT_EQ(goTrimSpace(""), "");
  EXPECT_EQ(goTrimSpace(" \t "), "");
}

TEST(HostText, ToLowerLikeGo) {
  EXPECT_EQ(goToLower("ExAmPlE.COM"), "example.com");
  EXPECT_EQ(goToLower("B\xc3\x9c"
                      "CHER"),
            "b\xc3\xbc"
            "cher");                                                             // Ü
  EXPECT_EQ(goToLower("\xce\xa3\xce\x91"), "\xcf\x83\xce\xb1");                  // ΣΑ -> σα
  EXPECT_EQ(goToLower("\xd0\x9c\xd0\x98\xd0\xa0"), "\xd0\xbc\xd0\xb8\xd1\x80");  // МИР
  EXPECT_EQ(goToLower("\xc4\xb0"), "i");                                         // İ -> i
  EXPECT_EQ(goToLower("\xef\xbc\xa1"), "\xef\xbd\x81");                          // fullwidth A
  EXPECT_EQ(goToLower("A\xffZ"), "a\xef\xbf\xbdz");                // invalid -> U+FFFD
  EXPECT_EQ(simpleLowerRune(0x0178), 0x00FFu);                     // Ÿ -> ÿ
  EXPECT_EQ(simpleLowerRune(0x0101), 0x0101u);                     // already lower
  EXPECT_EQ(simpleLowerRune(0x212A), static_cast<char32_t>('k'));  // Kelvin sign
}

TEST(Idna, LookupNonTransitional) {
  EXPECT_EQ(idnaToAscii("example.com"), "example.com");
  EXPECT_EQ(idnaToAscii("Mixed.Case"), "Mixed.Case");  // ASCII untouched
  EXPECT_EQ(idnaToAscii("a_b.example"), "a_b.example");
  EXPECT_EQ(idnaToAscii("stra\xc3\x9f"
                        "e.de"),
            "xn--strae-oqa.de");
  EXPECT_EQ(idnaToAscii("b\xc3\xbc"
                        "cher.example"),
            "xn--bcher-kva.example");
  EXPECT_EQ(idnaToAscii("B\xc3\x9c"
                        "CHER.Example"),
            "xn--bcher-kva.example");
  EXPECT_EQ(idnaToAscii("\xcf\x82.gr"), "xn--3xa.gr");  // final sigma kept
  EXPECT_EQ(idnaToAscii("b\xc3\xbc"
                        "cher.example."),
            "xn--bcher-kva.example.");
  EXPECT_EQ(idnaToAscii("\xef\xbd\x8c\xef\xbd\x8f\xef\xbd\x83\xef\xbd\x81\xef\xbd\x8c"), "local");
  EXPECT_FALSE(
      idnaToAscii("a_b.b\xc3\xbc"
                  "cher.de"));  // STD3, as Go's Lookup
  EXPECT_FALSE(
      idnaToAscii("-b\xc3\xbc"
                  "cher.de"));
  EXPECT_FALSE(
      idnaToAscii("b\xc3\xbc"
                  "cher.de:80"));
  EXPECT_FALSE(idnaToAscii("\xff.example"));
  EXPECT_FALSE(idnaToAscii(std::string("b\xc3\xbc\0x", 5)));
}

// --- HostKey -----------------------------------------------------------------

TEST(HostKey, PreparesNamesAndAddresses) {
  HostKey name = HostKey::from(
      "WWW.B\xc3\x9c"
      "CHER.example");
  EXPECT_EQ(name.name, "www.xn--bcher-kva.example");
  EXPECT_FALSE(name.is_ip);
  EXPECT_FALSE(name.loopback);

  HostKey v4 = HostKey::from("10.1.2.3");
  EXPECT_TRUE(v4.is_ip);
  EXPECT_TRUE(v4.is_v4);
  HostKey mapped = HostKey::from("::FFFF:10.1.2.3");
  EXPECT_TRUE(mapped.is_ip);
  EXPECT_TRUE(mapped.is_v4);
  EXPECT_EQ(mapped.addr, v4.addr);
  EXPECT_EQ(mapped.name, "::ffff:10.1.2.3");

  HostKey v6 = HostKey::from("2001:DB8::1");
  EXPECT_TRUE(v6.is_ip);
  EXPECT_FALSE(v6.is_v4);

  HostKey zone = HostKey::from("fe80::1%eth0");
  EXPECT_TRUE(zone.is_ip);

  HostKey spaced = HostKey::from(" 10.1.2.3 ");
  EXPECT_FALSE(spaced.is_ip);  // Go parses the untrimmed host
  EXPECT_EQ(spaced.name, "10.1.2.3");

  EXPECT_TRUE(HostKey::from("localhost").loopback);
  EXPECT_FALSE(HostKey::from("Localhost").loopback);
  EXPECT_TRUE(HostKey::from("127.9.9.9").loopback);
  EXPECT_TRUE(HostKey::from("[::1]").malformed);
  EXPECT_FALSE(HostKey::from("[::1]").is_ip);
  EXPECT_FALSE(HostKey::from("example.com").malformed);
}

// --- parseNoProxyEntries -----------------------------------------------------

TEST(NoProxyEntries, ClassifiesEachPiece) {
  const auto entries = parseNoProxyEntries(
      "a.com, .b.com ,*.c.com,*,10.0.0.0/8,10.1.2.3:80,[::1]:,,:9,b\xc3\xbc"
      "cher.de:81");
  ASSERT_EQ(entries.size(), 8u);
  EXPECT_EQ(entries[0].how, HostMatchHow::kName);
  EXPECT_EQ(entries[0].suffix, ".a.com");
  EXPECT_EQ(entries[1].how, HostMatchHow::kSubdomain);
  EXPECT_EQ(entries[1].suffix, ".b.com");
  EXPECT_EQ(entries[1].text, ".b.com");
  EXPECT_EQ(entries[2].how, HostMatchHow::kSubdomain);
  EXPECT_EQ(entries[2].suffix, ".c.com");
  EXPECT_EQ(entries[2].text, "*.c.com");
  EXPECT_EQ(entries[3].how, HostMatchHow::kAny);
  EXPECT_EQ(entries[4].how, HostMatchHow::kCidr);
  EXPECT_EQ(entries[5].how, HostMatchHow::kIp);
  EXPECT_EQ(entries[5].port, "80");
  EXPECT_EQ(entries[6].how, HostMatchHow::kIp);
  EXPECT_EQ(entries[6].port, "");
  EXPECT_EQ(entries[6].index, 6);
  EXPECT_EQ(entries[7].index, 9);  // ",," and ":9" are skipped but counted
  EXPECT_EQ(entries[7].suffix, ".xn--bcher-kva.de");
  EXPECT_EQ(entries[7].port, "81");
}

// --- HostMatcher -------------------------------------------------------------

TEST(HostMatcher, SmallestListThenSmallestIndex) {
  HostMatcher matcher;
  matcher.addList(1, "x.org,a.com");
  matcher.addList(2, "*");
  matcher.addList(3, ".b.com,10.0.0.0/8");
  matcher.addList(4, "www.b.com");

  auto m = matcher.match(HostKey::from("a.com"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 1);
  EXPECT_EQ(m->index, 1);
  EXPECT_EQ(m->entry, "a.com");
  EXPECT_EQ(m->how, HostMatchHow::kName);

  m = matcher.match(HostKey::from("www.b.com"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 2);
  EXPECT_EQ(m->how, HostMatchHow::kAny);

  m = matcher.match(HostKey::from("10.9.9.9"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 2);
}

TEST(HostMatcher, WithoutCatchAllLaterListsAnswer) {
  HostMatcher matcher;
  matcher.addList(1, "x.org");
  matcher.addList(3, ".b.com,10.0.0.0/8");
  matcher.addList(4, "www.b.com");
  auto m = matcher.match(HostKey::from("www.b.com"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 3);
  EXPECT_EQ(m->index, 0);
  EXPECT_EQ(m->how, HostMatchHow::kSubdomain);
  m = matcher.match(HostKey::from("10.9.9.9"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 3);
  EXPECT_EQ(m->index, 1);
  EXPECT_EQ(m->how, HostMatchHow::kCidr);
  EXPECT_FALSE(matcher.match(HostKey::from("b.com"), 443));
  EXPECT_FALSE(matcher.match(HostKey::from("11.0.0.1"), 443));
}

TEST(HostMatcher, ListsAddedOutOfOrder) {
  HostMatcher matcher;
  matcher.addList(9, "example.com");
  matcher.addList(5, "www.example.com:8080");
  matcher.addList(7, ".example.com");
  matcher.addList(2, "zzz.example,www.example.com:9");

  auto m = matcher.match(HostKey::from("www.example.com"), 8080);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 5);
  m = matcher.match(HostKey::from("www.example.com"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 7);
  m = matcher.match(HostKey::from("www.example.com"), 9);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 2);
  EXPECT_EQ(m->index, 1);
  m = matcher.match(HostKey::from("example.com"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 9);
}

TEST(HostMatcher, PortsWithinOneKey) {
  HostMatcher matcher;
  matcher.addList(5, "a.com:81,a.com:82");
  matcher.addList(7, "a.com");
  auto m = matcher.match(HostKey::from("a.com"), 80);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 7);
  m = matcher.match(HostKey::from("a.com"), 82);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 5);
  EXPECT_EQ(m->index, 1);
  m = matcher.match(HostKey::from("x.a.com"), 81);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 5);
  EXPECT_EQ(m->index, 0);
}

TEST(HostMatcher, CidrsAcrossPrefixLengths) {
  HostMatcher matcher;
  matcher.addList(3, "10.0.0.0/8");
  matcher.addList(2, "10.1.0.0/16");
  matcher.addList(4, "10.1.2.3");
  matcher.addList(6, "::ffff:10.1.2.0/120,2001:db8::/32,2001:db8:1::/48");
  auto m = matcher.match(HostKey::from("10.1.2.3"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 2);
  m = matcher.match(HostKey::from("10.2.0.1"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 3);
  m = matcher.match(HostKey::from("2001:db8:1::5"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 6);
  EXPECT_EQ(m->index, 1);
  EXPECT_FALSE(matcher.match(HostKey::from("2001:db9::5"), 443));
  EXPECT_FALSE(matcher.match(HostKey::from("11.1.2.3"), 443));
}

TEST(HostMatcher, IpHostsNeverMeetNameEntriesAndBack) {
  HostMatcher matcher;
  matcher.addList(1, "2.3,example.com");
  matcher.addList(2, "10.1.2.3,10.0.0.0/8");
  auto m = matcher.match(HostKey::from("10.1.2.3"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 2);
  EXPECT_EQ(m->index, 0);
  EXPECT_EQ(m->how, HostMatchHow::kIp);
  m = matcher.match(HostKey::from("x.2.3"), 443);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->list_id, 1);
  EXPECT_EQ(m->how, HostMatchHow::kName);
  EXPECT_FALSE(matcher.match(HostKey::from("10.1.2.3.example"), 443));
}

TEST(HostMatcher, DoesNotApplyLoopbackShortcut) {
  HostMatcher matcher;
  matcher.addList(1, "example.com");
  EXPECT_FALSE(matcher.match(HostKey::from("localhost"), 80));
  EXPECT_FALSE(matcher.match(HostKey::from("127.0.0.1"), 80));
}

TEST(HostMatcher, ManyListsEachFindsItsOwn) {
  HostMatcher matcher;
  constexpr int kLists = 10000;
  for (int i = 0; i < kLists; ++i) {
    matcher.addList(i, "host" + std::to_string(i) + ".example,.sub" + std::to_string(i) +
                           ".example,10." + std::to_string(i / 256) + "." +
                           std::to_string(i % 256) + ".0/24");
  }
  EXPECT_EQ(matcher.entryCount(), 3u * kLists);
  for (int i : {0, 1, 4095, 9999}) {
    auto m = matcher.match(HostKey::from("host" + std::to_string(i) + ".example"), 443);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->list_id, i);
    EXPECT_EQ(m->index, 0);
    m = matcher.match(HostKey::from("a.b.sub" + std::to_string(i) + ".example"), 443);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->list_id, i);
    EXPECT_EQ(m->index, 1);
    m = matcher.match(
        HostKey::from("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".77"),
        443);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->list_id, i);
    EXPECT_EQ(m->how, HostMatchHow::kCidr);
  }
  EXPECT_FALSE(matcher.match(HostKey::from("sub5.example"), 443));
}

// The index must give exactly the answer of the plain rule: for each list
// in order, the first entry (by index) for which entryMatches() holds.
TEST(HostMatcher, AgreesWithPlainRule) {
  const std::vector<std::string> pieces = {"a.com",
                                           ".a.com",
                                           "*.a.com",
                                           "b.a.com",
                                           "a.com:80",
                                           "a.com:443",
                                           ".com",
                                           "*",
                                           "",
                                           " x.org ",
                                           "10.0.0.0/8",
                                           "10.1.0.0/16",
                                           "10.1.2.3",
                                           "10.1.2.3:80",
                                           "::ffff:0:0/96",
                                           "2001:db8::/32",
                                           "2001:db8::1",
                                           "[2001:db8::1]:443",
                                           "1.2.3",
                                           ".",
                                           "a.com.",
                                           ":80",
                                           "::/0",
                                           "0.0.0.0/0",
                                           "b\xc3\xbc"
                                           "cher.de",
                                           "fe80::1"};
  const std::vector<std::string> hosts = {"a.com",
                                          "b.a.com",
                                          "c.b.a.com",
                                          "x.org",
                                          "com",
                                          "a.com.",
                                          "10.1.2.3",
                                          "10.1.9.9",
                                          "10.200.0.1",
                                          "::ffff:10.1.2.3",
                                          "2001:db8::1",
                                          "2001:db8:5::1",
                                          "fe80::1%eth0",
                                          "192.0.2.1",
                                          "xn--bcher-kva.de",
                                          "www.b\xc3\xbc"
                                          "cher.de",
                                          "",
                                          "notexample.org"};
  const uint16_t ports[] = {80, 443, 8080};
  std::mt19937 rng(12345);
  for (int round = 0; round < 300; ++round) {
    HostMatcher matcher;
    std::vector<std::pair<int, std::vector<NoProxyEntry>>> lists;
    const int list_count = 1 + static_cast<int>(rng() % 4);
    for (int l = 0; l < list_count; ++l) {
      std::string value;
      const int n = 1 + static_cast<int>(rng() % 5);
      for (int i = 0; i < n; ++i) {
        value += (i ? "," : "") + pieces[rng() % pieces.size()];
      }
      const int list_id = l * 3 + static_cast<int>(rng() % 3);
      matcher.addList(list_id, value);
      lists.emplace_back(list_id, parseNoProxyEntries(value));
    }
    for (const std::string& host : hosts) {
      const HostKey key = HostKey::from(host);
      for (uint16_t port : ports) {
        std::optional<std::pair<int, int>> expected;
        for (const auto& [list_id, entries] : lists) {
          for (const NoProxyEntry& e : entries) {
            if (entryMatches(e, key, port) &&
                (!expected || std::make_pair(list_id, e.index) < *expected)) {
              expected = std::make_pair(list_id, e.index);
            }
          }
        }
        auto got = matcher.match(key, port);
        SCOPED_TRACE("host=" + host + " port=" + std::to_string(port));
        ASSERT_EQ(got.has_value(), expected.has_value());
        if (got) {
          EXPECT_EQ(std::make_pair(got->list_id, got->index), *expected);
        }
      }
    }
  }
}

TEST(HostMatcher, HowNames) {
  EXPECT_STREQ(hostMatchHowName(HostMatchHow::kName), "name");
  EXPECT_STREQ(hostMatchHowName(HostMatchHow::kSubdomain), "subdomain");
  EXPECT_STREQ(hostMatchHowName(HostMatchHow::kIp), "ip");
  EXPECT_STREQ(hostMatchHowName(HostMatchHow::kCidr), "cidr");
  EXPECT_STREQ(hostMatchHowName(HostMatchHow::kAny), "any");
}

}  // namespace
}  // namespace switchyard::rules
