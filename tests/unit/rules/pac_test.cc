// generatePac(): the script's shape (no DNS helpers, one FindProxyForURL),
// the exact data tables each NO_PROXY / `hosts:` entry becomes, which rules
// are carried over and with what answer, and, when `node` is installed, a
// differential run: the PAC evaluated by a real JavaScript engine for a few
// hundred URLs must give the answer decide() implies for every one of them.
#include "rules/pac.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rules/decision.h"
#include "rules/explain.h"
#include "rules/snapshot.h"

namespace switchyard::rules {
namespace {

using Json = nlohmann::json;

constexpr const char* kProxy = "gw.test:3128";

Sourced value(std::string v) {
  return {std::move(v), {"pac.yaml", 1, 1, ""}};
}

RuleConfig hostRule(std::string name, std::string hosts, Action action) {
  RuleConfig r;
  r.name = std::move(name);
  r.pos = {"pac.yaml", 10, 5, ""};
  r.hosts = value(std::move(hosts));
  r.action = action;
  if (action == Action::kUpstream) {
    r.upstream = value("http://user:s3cret@parent.test:8080");
  } else if (action == Action::kMirror) {
    r.mirrors = value("https://mirror.test");
    r.intercept = true;
  }
  return r;
}

ConfigSnapshotPtr snapshot(const std::string& no_proxy, std::vector<RuleConfig> rules = {},
                           const std::string& https_proxy = "http://parent.test:8080") {
  Config c;
  c.file = "pac.yaml";
  c.rules = std::move(rules);
  c.env.goproxy = {"https://proxy.golang.org,direct", {}};
  c.env.gosumdb = {"sum.golang.org", {}};
  c.env.no_proxy = value(no_proxy);
  c.env.https_proxy = value(https_proxy);
  c.env.http_proxy = value(https_proxy);
  std::vector<std::string> errors;
  auto snap = ConfigSnapshot::build(std::move(c), 3, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  return snap;
}

// The JSON assigned to `var NAME = ...;` in the script.
Json tableOf(const std::string& pac, const std::string& name) {
  const std::string marker = "var " + name + " = ";
  const size_t start = pac.find(marker);
  if (start == std::string::npos) {
    ADD_FAILURE() << "no " << name << " in the PAC";
    return Json();
  }
  const size_t from = start + marker.size();
  // The value ends at the first ";\n" after which what came before parses.
  for (size_t end = pac.find(";\n", from); end != std::string::npos;
       end = pac.find(";\n", end + 1)) {
    Json j = Json::parse(pac.substr(from, end - from), nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) {
      return j;
    }
  }
  ADD_FAILURE() << name << " is not followed by valid JSON";
  return Json();
}

// ---------------------------------------------------------------------------
// Shape of the script.

TEST(PacTest, NeedsNoDnsAndNoPacHelpers) {
  const std::string pac =
      generatePac(*snapshot("localhost,.corp.test,10.0.0.0/8,::1,2001:db8::/32",
                            {hostRule("r", "intranet.test,192.168.0.0/16", Action::kDirect)}),
                  kProxy);
  for (const char* forbidden :
       {"isInNet", "dnsResolve", "myIpAddress", "isResolvable", "dnsDomainIs", "shExpMatch",
        "localHostOrDomainIs", "isPlainHostName", "dnsDomainLevels", "convert_addr", "alert(",
        "weekdayRange", "dateRange", "timeRange", "let ", "const ", "=>"}) {
    SCOPED_TRACE(forbidden);
    EXPECT_EQ(pac.find(forbidden), std::string::npos);
  }
  EXPECT_NE(pac.find("function FindProxyForURL(url, host) {"), std::string::npos);
  EXPECT_NE(pac.find("var SY_PROXY = \"PROXY gw.test:3128\";\n"), std::string::npos);
  EXPECT_NE(pac.find("config generation 3"), std::string::npos);
}

TEST(PacTest, SameConfigSameBytes) {
  auto snap = snapshot("b.test,a.test,10.0.0.0/8,1.2.3.4,c.test:8080",
                       {hostRule("r", "z.test,y.test", Action::kDeny)});
  EXPECT_EQ(generatePac(*snap, kProxy), generatePac(*snap, kProxy));
}

TEST(PacTest, ProxyAddressIsAJsonString) {
  auto snap = snapshot("");
  const std::string pac = generatePac(*snap, "[::1]:3128");
  EXPECT_NE(pac.find("var SY_PROXY = \"PROXY [::1]:3128\";"), std::string::npos);
  // Whatever the caller passes cannot break out of the string literal.
  const std::string evil = generatePac(*snap, "a\";alert(1);//\n:1");
  EXPECT_EQ(tableOf(evil, "SY_PROXY"), Json("PROXY a\";alert(1);//\n:1"));
  EXPECT_EQ(evil.find("alert(1);//\n"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Entry encoding: what each NO_PROXY value becomes.

struct EncodingCase {
  const char* no_proxy;
  const char* expected;  // the SY_NO_PROXY object
};

class PacEncodingTest : public ::testing::TestWithParam<EncodingCase> {};

TEST_P(PacEncodingTest, NoProxyTable) {
  const EncodingCase& c = GetParam();
  const std::string pac = generatePac(*snapshot(c.no_proxy), kProxy);
  EXPECT_EQ(tableOf(pac, "SY_NO_PROXY"), Json::parse(c.expected)) << pac.substr(0, 600);
}

constexpr const char* kV4Prefix = "00000000000000000000ffff";

std::string v4Key(const char* hex8) {
  return std::string("k:") + kV4Prefix + hex8;
}

INSTANTIATE_TEST_SUITE_P(
    Entries, PacEncodingTest,
    ::testing::Values(
        EncodingCase{"", R"({"any":false,"n":{},"s":{},"i":{},"c":[]})"},
        EncodingCase{" , ,", R"({"any":false,"n":{},"s":{},"i":{},"c":[]})"},
        EncodingCase{"*", R"({"any":true,"n":{},"s":{},"i":{},"c":[]})"},
        EncodingCase{"a.test, * ", R"({"any":true,"n":{"k:a.test":[-1]},"s":{"k:.a.test":[-1]},
                                      "i":{},"c":[]})"},
        EncodingCase{".example.com", R"({"any":false,"n":{},"s":{"k:.example.com":[-1]},
                                        "i":{},"c":[]})"},
        EncodingCase{"*.example.com", R"({"any":false,"n":{},"s":{"k:.example.com":[-1]},
                                         "i":{},"c":[]})"},
        EncodingCase{"Example.COM", R"({"any":false,"n":{"k:example.com":[-1]},
                                       "s":{"k:.example.com":[-1]},"i":{},"c":[]})"},
        EncodingCase{"example.com:8080", R"({"any":false,"n":{"k:example.com":[8080]},
                                            "s":{"k:.example.com":[8080]},"i":{},"c":[]})"},
        EncodingCase{"example.com:", R"({"any":false,"n":{"k:example.com":[-1]},
                                        "s":{"k:.example.com":[-1]},"i":{},"c":[]})"},
        EncodingCase{"a.com:80,a.com:8080", R"({"any":false,"n":{"k:a.com":[80,8080]},
                                               "s":{"k:.a.com":[80,8080]},"i":{},"c":[]})"},
        EncodingCase{"a.com:80,a.com", R"({"any":false,"n":{"k:a.com":[-1]},
                                          "s":{"k:.a.com":[-1]},"i":{},"c":[]})"},
        // Ports no request can have are left out.
        EncodingCase{"a.com:08080,b.com:99999,c.com:http",
                     R"({"any":false,"n":{},"s":{},"i":{},"c":[]})"},
        EncodingCase{":8080", R"({"any":false,"n":{},"s":{},"i":{},"c":[]})"},
        EncodingCase{"fqdn.test.", R"({"any":false,"n":{"k:fqdn.test.":[-1]},
                                      "s":{"k:.fqdn.test.":[-1]},"i":{},"c":[]})"},
        EncodingCase{".", R"({"any":false,"n":{},"s":{"k:.":[-1]},"i":{},"c":[]})"},
        EncodingCase{"bücher.example", R"({"any":false,"n":{"k:xn--bcher-kva.example":[-1]},
                                          "s":{"k:.xn--bcher-kva.example":[-1]},"i":{},"c":[]})"},
        EncodingCase{".BÜCHER.example", R"({"any":false,"n":{},
                                           "s":{"k:.xn--bcher-kva.example":[-1]},"i":{},"c":[]})"},
        EncodingCase{"1.2.3.4", R"({"any":false,"n":{},"s":{},
                                   "i":{"k:00000000000000000000ffff01020304":[-1]},"c":[]})"},
        EncodingCase{"1.2.3.4:8080,[::ffff:1.2.3.4]:", R"({"any":false,"n":{},"s":{},
                                   "i":{"k:00000000000000000000ffff01020304":[-1]},"c":[]})"},
        // Unbracketed IPv6 cannot carry a port: the whole piece is a name.
        EncodingCase{"::ffff:1.2.3.4:", R"({"any":false,"n":{"k:::ffff:1.2.3.4:":[-1]},
                                           "s":{"k:.::ffff:1.2.3.4:":[-1]},"i":{},"c":[]})"},
        EncodingCase{"2001:DB8::1", R"({"any":false,"n":{},"s":{},
                                       "i":{"k:20010db8000000000000000000000001":[-1]},"c":[]})"},
        EncodingCase{"[2001:db8::1]:443", R"({"any":false,"n":{},"s":{},
                                        "i":{"k:20010db8000000000000000000000001":[443]},"c":[]})"},
        // A bracketed IPv6 entry without a port is a name that never matches.
        EncodingCase{"[2001:db8::1]", R"({"any":false,"n":{"k:[2001:db8::1]":[-1]},
                                         "s":{"k:.[2001:db8::1]":[-1]},"i":{},"c":[]})"},
        EncodingCase{"10.0.0.0/8", R"({"any":false,"n":{},"s":{},"i":{},
                          "c":[[4,104,{"k:00000000000000000000ffff0a000000":1}]]})"},
        EncodingCase{"10.1.2.3/8,10.0.0.0/8,192.168.0.0/16", R"({"any":false,"n":{},"s":{},
                          "i":{},"c":[[4,104,{"k:00000000000000000000ffff0a000000":1}],
                                      [4,112,{"k:00000000000000000000ffffc0a80000":1}]]})"},
        EncodingCase{"0.0.0.0/0", R"({"any":false,"n":{},"s":{},"i":{},
                          "c":[[4,96,{"k:00000000000000000000ffff00000000":1}]]})"},
        EncodingCase{"::ffff:0:0/96", R"({"any":false,"n":{},"s":{},"i":{},
                          "c":[[4,96,{"k:00000000000000000000ffff00000000":1}]]})"},
        EncodingCase{"2001:db8::/32,::/0", R"({"any":false,"n":{},"s":{},"i":{},
                          "c":[[6,0,{"k:00000000000000000000000000000000":1}],
                               [6,32,{"k:20010db8000000000000000000000000":1}]]})"},
        // Not CIDRs: they degrade to names (with a port) as in Go.
        EncodingCase{"10.0.0.0/8:80", R"({"any":false,"n":{"k:10.0.0.0/8":[80]},
                                         "s":{"k:.10.0.0.0/8":[80]},"i":{},"c":[]})"},
        EncodingCase{"10.0.0.0/255.0.0.0", R"({"any":false,"n":{"k:10.0.0.0/255.0.0.0":[-1]},
                                              "s":{"k:.10.0.0.0/255.0.0.0":[-1]},"i":{},"c":[]})"},
        // Keys that are JavaScript property names are safe behind "k:".
        EncodingCase{"__proto__,constructor", R"({"any":false,
                          "n":{"k:__proto__":[-1],"k:constructor":[-1]},
                          "s":{"k:.__proto__":[-1],"k:.constructor":[-1]},"i":{},"c":[]})"}));

TEST(PacTest, V4KeyHelperMatchesTheTables) {
  const std::string pac = generatePac(*snapshot("127.0.0.9"), kProxy);
  EXPECT_TRUE(tableOf(pac, "SY_NO_PROXY")["i"].contains(v4Key("7f000009")));
}

// ---------------------------------------------------------------------------
// Rules carried over.

TEST(PacTest, RulesInOrderWithAnswersAndModuleRulesLeftOut) {
  std::vector<RuleConfig> rules;
  rules.push_back(hostRule("first-direct", "good.ads.test", Action::kDirect));
  rules.push_back(hostRule("deny-ads", ".ads.test", Action::kDeny));
  RuleConfig module_only;
  module_only.name = "module-only";
  module_only.modules = value("git.company.com");
  rules.push_back(module_only);
  RuleConfig both = hostRule("both", "both.test", Action::kDirect);
  both.modules = value("both.test/*");
  rules.push_back(both);
  rules.push_back(hostRule("via-parent", "corp.test", Action::kUpstream));
  rules.push_back(hostRule("mirror", "proxy.golang.org", Action::kMirror));
  rules.push_back(hostRule("ips", "192.168.0.0/16,[fd00::1]:8443", Action::kDirect));

  const std::string pac = generatePac(*snapshot("", std::move(rules)), kProxy);
  const Json table = tableOf(pac, "SY_RULES");
  ASSERT_TRUE(table.is_array());
  struct Expected {
    const char* rule;
    const char* action;
    const char* answer;
  };
  const std::vector<Expected> expected = {
      {"first-direct", "direct", "DIRECT"}, {"deny-ads", "deny", "PROXY"},
      {"via-parent", "upstream", "PROXY"},  {"mirror", "mirror", "PROXY"},
      {"ips", "direct", "DIRECT"},
  };
  ASSERT_EQ(table.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(expected[i].rule);
    EXPECT_EQ(table[i]["rule"], expected[i].rule);
    EXPECT_EQ(table[i]["action"], expected[i].action);
    EXPECT_EQ(table[i]["answer"], expected[i].answer);
  }
  EXPECT_EQ(table[0]["hosts"]["n"], Json::parse(R"({"k:good.ads.test":[-1]})"));
  EXPECT_EQ(table[4]["hosts"]["i"],
            Json::parse(R"({"k:fd000000000000000000000000000001":[8443]})"));
  EXPECT_EQ(table[4]["hosts"]["c"],
            Json::parse(R"([[4,112,{"k:00000000000000000000ffffc0a80000":1}]])"));
  // Parent credentials and mirror URLs are the proxy's business only.
  EXPECT_EQ(pac.find("s3cret"), std::string::npos);
  EXPECT_EQ(pac.find("mirror.test"), std::string::npos);
}

TEST(PacTest, RuleNamesAreEscapedAsciiJson) {
  std::vector<RuleConfig> rules;
  rules.push_back(hostRule("quote\" back\\ nl\n ls\u2028 u\u00e9", "a.test", Action::kDeny));
  rules.push_back(hostRule(std::string("bad-utf8-\xff\xfe"), "b.test", Action::kDirect));
  std::string pac;
  ASSERT_NO_THROW(pac = generatePac(*snapshot("", std::move(rules)), kProxy));
  for (unsigned char c : pac) {
    EXPECT_LT(c, 0x80);
  }
  const Json table = tableOf(pac, "SY_RULES");
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[0]["rule"], "quote\" back\\ nl\n ls\u2028 u\u00e9");
  EXPECT_EQ(table[1]["hosts"]["n"], Json::parse(R"({"k:b.test":[-1]})"));
}

TEST(PacTest, NoRulesGivesAnEmptyArray) {
  EXPECT_EQ(tableOf(generatePac(*snapshot(""), kProxy), "SY_RULES"), Json::array());
}

// ---------------------------------------------------------------------------
// Differential: node evaluates the PAC, decide() is the reference.

std::string findNode() {
  for (const char* path : {"/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"}) {
    if (::access(path, X_OK) == 0) {
      return path;
    }
  }
  return "";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "sy_pac_XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) {
      path_ = tmpl;
    }
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string runCommand(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    out.append(buf, n);
  }
  *status = ::pclose(p);
  return out;
}

TEST(PacNodeTest, AgreesWithDecideForManyUrls) {
  const std::string node = findNode();
  if (node.empty()) {
    GTEST_SKIP() << "node is not installed";
  }
  std::vector<RuleConfig> rules;
  rules.push_back(hostRule("ok-tracker", "ok.tracker.test", Action::kDirect));
  rules.push_back(hostRule("trackers", ".tracker.test,198.18.0.0/15", Action::kDeny));
  rules.push_back(hostRule("corp-up", "up.corp.test:8443", Action::kUpstream));
  rules.push_back(hostRule("lab", "lab.test,[fd00::7],fd00::8,127.0.0.2", Action::kDirect));
  rules.push_back(hostRule("mirror", "proxy.golang.org", Action::kMirror));
  RuleConfig both = hostRule("both", "both.test", Action::kDirect);
  both.modules = value("both.test/*");
  rules.push_back(both);
  auto snap = snapshot(
      ".corp.test,*.wild.test,bare.test,port.test:8080,port80.test:80,p443.test:443,"
      "zero.test:08080,10.0.0.0/8,172.16.0.0/12,::ffff:100.64.0.0/106,2001:db8:a::/48,"
      "fe80::/10,1.2.3.4,9.9.9.9:8443,2001:db8::1,[2001:db8::2]:80,fqdn.test.,2.1,"
      "[2001:db8::3],bücher.test,:9999,upper.TEST",
      std::move(rules));
  // A second snapshot without parent proxies: "direct (default)" must still
  // send the browser to us. Its "::/8" shares its prefix with every
  // IPv4-mapped address, yet must not contain them.
  auto bare = snapshot("*.wild.test,.,::/8", {}, "");

  // Hosts as a browser hands them over: already in punycode (the script
  // does not convert Unicode names; switchyard does, for what it sees).
  const std::vector<std::string> hosts = {"localhost",
                                          "LOCALHOST",
                                          "localhost.",
                                          "x.localhost",
                                          "127.0.0.1",
                                          "127.9.9.9",
                                          "127.0.0.2",
                                          "[::1]",
                                          "[::ffff:127.0.0.1]",
                                          "[0:0:0:0:0:0:0:1]",
                                          "a.corp.test",
                                          "corp.test",
                                          "up.corp.test",
                                          "A.B.Corp.Test",
                                          "x.wild.test",
                                          "wild.test",
                                          "bare.test",
                                          "sub.bare.test",
                                          "notbare.test",
                                          "port.test",
                                          "s.port.test",
                                          "port80.test",
                                          "p443.test",
                                          "zero.test",
                                          "10.1.2.3",
                                          "10.255.255.255",
                                          "11.0.0.0",
                                          "[::ffff:10.0.0.1]",
                                          "[::ffff:a00:1]",
                                          "172.31.0.1",
                                          "172.32.0.1",
                                          "100.64.0.1",
                                          "100.127.255.255",
                                          "100.128.0.1",
                                          "[2001:db8:a::1]",
                                          "[2001:DB8:A:0::2]",
                                          "[2001:db8:b::1]",
                                          "[fe80::1]",
                                          "[fe80::1%25eth0]",
                                          "1.2.3.4",
                                          "[::ffff:1.2.3.4]",
                                          "1.2.3.5",
                                          "9.9.9.9",
                                          "[2001:db8::1]",
                                          "[2001:db8:0:0:0:0:0:1]",
                                          "[2001:db8::2]",
                                          "[2001:db8::3]",
                                          "fqdn.test.",
                                          "w.fqdn.test.",
                                          "fqdn.test",
                                          "4.3.2.1",
                                          "x.2.1",
                                          "xn--bcher-kva.test",
                                          "upper.test",
                                          "ok.tracker.test",
                                          "bad.tracker.test",
                                          "tracker.test",
                                          "198.19.1.1",
                                          "198.20.0.1",
                                          "lab.test",
                                          "w.lab.test",
                                          "[fd00::7]",
                                          "[fd00::8]",
                                          "both.test",
                                          "proxy.golang.org",
                                          "constructor",
                                          "__proto__",
                                          "toString",
                                          "010.1.2.3",
                                          "0x7f.0.0.1",
                                          "[::]",
                                          "[::2]",
                                          "[100::1]",
                                          "example.com",
                                          "example.com."};
  const std::vector<std::string> ports = {"", ":80", ":443", ":8080", ":8443", ":9999"};

  const std::vector<std::pair<std::string, ConfigSnapshotPtr>> snapshots = {{"parents", snap},
                                                                            {"bare", bare}};
  for (const auto& [label, snap_ptr] : snapshots) {
    SCOPED_TRACE(label);
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    std::vector<std::string> urls;
    std::vector<std::string> expected;
    for (const std::string& scheme : {"http", "https"}) {
      for (const std::string& host : hosts) {
        for (const std::string& port : ports) {
          const std::string url = scheme + "://" + host + port + "/p";
          ExplainTarget target;
          std::string error;
          ASSERT_TRUE(parseExplainTarget(url, "", &target, &error)) << url << ": " << error;
          const Decision d = decide(target.facts, *snap_ptr);
          const bool direct = d.action == Action::kDirect && d.rule != "default";
          urls.push_back(url);
          expected.push_back(direct ? "DIRECT" : std::string("PROXY ") + kProxy);
        }
      }
    }
    const std::string pac_path = dir.path() + "/proxy.pac";
    const std::string urls_path = dir.path() + "/urls.json";
    std::ofstream(pac_path) << generatePac(*snap_ptr, kProxy);
    std::ofstream(urls_path) << Json(urls).dump();
    int status = 0;
    const std::string out =
        runCommand(node + " '" + SY_SOURCE_DIR + "/tests/integration/pac_eval.js' '" + pac_path +
                       "' '" + urls_path + "'",
                   &status);
    ASSERT_EQ(status, 0) << out;
    const Json rows = Json::parse(out, nullptr, false);
    ASSERT_TRUE(rows.is_array()) << out.substr(0, 500);
    size_t checked = 0;
    size_t next = 0;
    for (const Json& row : rows) {
      // Rows come in URL order; IPv6 URLs have two (with and without brackets).
      while (next < urls.size() && urls[next] != row["url"]) {
        ++next;
      }
      ASSERT_LT(next, urls.size()) << row.dump();
      EXPECT_EQ(row["answer"], expected[next]) << row.dump();
      ++checked;
    }
    EXPECT_GE(checked, urls.size());
  }
}

}  // namespace
}  // namespace switchyard::rules
