// decide(): explicit rules first (first match wins), then the implicit
// environment rules of DESIGN.md; the trace names rule, source and entry.
#include <gtest/gtest.h>

#include "rules/decision.h"
#include "rules/snapshot.h"

namespace switchyard::rules {
namespace {

Sourced fromFile(std::string value, int line) {
  return {std::move(value), {"gw.yaml", line, 5, ""}};
}

RuleConfig rule(std::string name, int line, Action action) {
  RuleConfig r;
  r.name = std::move(name);
  r.pos = {"gw.yaml", line, 5, ""};
  r.action = action;
  return r;
}

Config testConfig() {
  Config c;
  c.file = "gw.yaml";
  RuleConfig mirror = rule("golang-via-mirror", 10, Action::kMirror);
  mirror.hosts = fromFile("proxy.golang.org", 11);
  mirror.mirrors = fromFile("https://goproxy.cn|https://goproxy.io,direct", 13);
  mirror.intercept = true;
  mirror.cache = true;
  c.rules.push_back(mirror);
  RuleConfig priv = rule("private-modules", 16, Action::kDirect);
  priv.modules = fromFile("git.company.com,*.internal", 17);
  c.rules.push_back(priv);
  RuleConfig ads = rule("no-ads", 19, Action::kDeny);
  ads.hosts = fromFile(".doubleclick.net", 20);
  c.rules.push_back(ads);
  RuleConfig corp = rule("corp-parent", 22, Action::kUpstream);
  corp.hosts = fromFile(".corp.example.com, build.corp.example.com:8443", 23);
  corp.upstream = fromFile("http://user:pass@parent.corp:8080", 25);
  c.rules.push_back(corp);
  RuleConfig both = rule("both", 27, Action::kDeny);
  both.hosts = fromFile("both.example", 28);
  both.modules = fromFile("example.org/both", 28);
  c.rules.push_back(both);
  RuleConfig meta = rule("metadata-ok", 30, Action::kDirect);
  meta.hosts = fromFile("169.254.169.254", 31);
  meta.allow_private = true;
  c.rules.push_back(meta);

  c.env.goproxy = {"https://proxy.golang.org,direct", {}};
  c.env.goprivate = fromFile("git.company.com", 40);
  c.env.gonoproxy = c.env.goprivate;
  c.env.gonosumdb = c.env.goprivate;
  c.env.gosumdb = {"sum.golang.org", {}};
  c.env.no_proxy = {"localhost,.local.test,10.0.0.0/8,*.svc:8080", {"", 0, 0, "NO_PROXY"}};
  c.env.https_proxy = {"http://parent.example:3128", {"", 0, 0, "HTTPS_PROXY"}};
  return c;
}

struct Case {
  const char* name;
  RequestKind kind;
  const char* scheme;
  const char* host;
  uint16_t port;
  const char* module;  // nullptr: none
  Action action;
  const char* rule;
  const char* source;
  const char* matched;  // MatchedEntry::describe()
  bool bypass;
};

class DecideTest : public ::testing::TestWithParam<Case> {};

TEST_P(DecideTest, Table) {
  static ConfigSnapshotPtr snap = [] {
    std::vector<std::string> errors;
    auto s = ConfigSnapshot::build(testConfig(), 7, &errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    return s;
  }();
  ASSERT_NE(snap, nullptr);
  const Case& c = GetParam();
  RequestFacts facts;
  facts.kind = c.kind;
  facts.scheme = c.scheme;
  facts.host = c.host;
  facts.port = c.port;
  if (c.module) {
    facts.module = c.module;
  }
  Decision d = decide(facts, *snap);
  EXPECT_EQ(actionName(d.action), std::string(actionName(c.action)));
  EXPECT_EQ(d.rule, c.rule);
  EXPECT_EQ(d.source.str(), c.source);
  EXPECT_EQ(d.matched.describe(), c.matched);
  EXPECT_EQ(d.bypass, c.bypass);
  EXPECT_EQ(d.config_gen, 7u);
}

constexpr auto kC = RequestKind::kConnect;
constexpr auto kA = RequestKind::kAbsolute;
constexpr auto kI = RequestKind::kIntercepted;
constexpr auto kM = RequestKind::kModuleProxy;

const Case kCases[] = {
    {"mirror_exact", kC, "https", "proxy.golang.org", 443, nullptr, Action::kMirror,
     "golang-via-mirror", "gw.yaml:10", "rule:golang-via-mirror entry \"proxy.golang.org\" (name)",
     false},
    {"mirror_subdomain_of_bare_entry", kC, "https", "eu.proxy.golang.org", 443, nullptr,
     Action::kMirror, "golang-via-mirror", "gw.yaml:10",
     "rule:golang-via-mirror entry \"proxy.golang.org\" (name)", false},
    {"mirror_case_insensitive", kC, "https", "PROXY.golang.ORG", 443, nullptr, Action::kMirror,
     "golang-via-mirror", "gw.yaml:10", "rule:golang-via-mirror entry \"proxy.golang.org\" (name)",
     false},
    {"deny_subdomain", kC, "https", "ads.doubleclick.net", 443, nullptr, Action::kDeny, "no-ads",
     "gw.yaml:19", "rule:no-ads entry \".doubleclick.net\" (subdomain)", false},
    {"dot_entry_not_apex_falls_to_parent", kC, "https", "doubleclick.net", 443, nullptr,
     Action::kUpstream, "env:HTTPS_PROXY", "env:HTTPS_PROXY", "none", false},
    {"upstream_rule", kC, "https", "git.corp.example.com", 443, nullptr, Action::kUpstream,
     "corp-parent", "gw.yaml:22", "rule:corp-parent entry \".corp.example.com\" (subdomain)",
     false},
    {"port_entry_matches_its_port", kC, "https", "build.corp.example.com", 8443, nullptr,
     Action::kUpstream, "corp-parent", "gw.yaml:22",
     "rule:corp-parent entry \".corp.example.com\" (subdomain)", false},
    {"no_proxy_cidr", kC, "https", "10.1.2.3", 443, nullptr, Action::kDirect, "env:NO_PROXY",
     "env:NO_PROXY", "NO_PROXY entry \"10.0.0.0/8\" (cidr)", true},
    {"no_proxy_subdomain", kC, "https", "db.local.test", 443, nullptr, Action::kDirect,
     "env:NO_PROXY", "env:NO_PROXY", "NO_PROXY entry \".local.test\" (subdomain)", true},
    {"no_proxy_dot_entry_not_apex", kC, "https", "local.test", 443, nullptr, Action::kUpstream,
     "env:HTTPS_PROXY", "env:HTTPS_PROXY", "none", false},
    {"no_proxy_port_entry", kA, "http", "api.svc", 8080, nullptr, Action::kDirect, "env:NO_PROXY",
     "env:NO_PROXY", "NO_PROXY entry \"*.svc:8080\" (subdomain)", true},
    {"no_proxy_port_entry_other_port_http_no_parent", kA, "http", "api.svc", 80, nullptr,
     Action::kDirect, "default", "builtin", "none", false},
    {"loopback_v4", kC, "https", "127.0.0.1", 443, nullptr, Action::kDirect, "env:NO_PROXY",
     "env:NO_PROXY", "loopback", true},
    {"loopback_v6", kC, "https", "::1", 443, nullptr, Action::kDirect, "env:NO_PROXY",
     "env:NO_PROXY", "loopback", true},
    {"localhost_entry_and_shortcut", kC, "https", "localhost", 443, nullptr, Action::kDirect,
     "env:NO_PROXY", "env:NO_PROXY", "loopback", true},
    {"LOCALHOST_is_not_the_shortcut", kC, "https", "LOCALHOST", 443, nullptr, Action::kDirect,
     "env:NO_PROXY", "env:NO_PROXY", "NO_PROXY entry \"localhost\" (name)", true},
    {"http_without_parent_is_direct", kA, "http", "example.com", 80, nullptr, Action::kDirect,
     "default", "builtin", "none", false},
    {"https_absolute_uses_https_proxy", kA, "https", "example.com", 443, nullptr, Action::kUpstream,
     "env:HTTPS_PROXY", "env:HTTPS_PROXY", "none", false},
    {"loopback_is_not_for_rules", kC, "https", "127.0.0.1", 443, nullptr, Action::kDirect,
     "env:NO_PROXY", "env:NO_PROXY", "loopback", true},
    {"metadata_rule_ip", kA, "http", "169.254.169.254", 80, nullptr, Action::kDirect, "metadata-ok",
     "gw.yaml:30", "rule:metadata-ok entry \"169.254.169.254\" (ip)", false},
    {"module_rule", kM, "https", "", 0, "git.company.com/team/lib", Action::kDirect,
     "private-modules", "gw.yaml:16", "rule:private-modules entry \"git.company.com\" (glob)",
     false},
    {"module_rule_second_pattern", kM, "https", "", 0, "db.internal/x", Action::kDirect,
     "private-modules", "gw.yaml:16", "rule:private-modules entry \"*.internal\" (glob)", false},
    {"module_proxy_default_goproxy", kM, "https", "", 0, "github.com/pkg/errors", Action::kMirror,
     "env:GOPROXY", "builtin", "none", false},
    {"module_rule_before_later_host_rule", kI, "https", "x.corp.example.com", 443,
     "git.company.com/a", Action::kDirect, "private-modules", "gw.yaml:16",
     "rule:private-modules entry \"git.company.com\" (glob)", false},
    {"host_rule_before_later_module_rule", kI, "https", "proxy.golang.org", 443,
     "git.company.com/a", Action::kMirror, "golang-via-mirror", "gw.yaml:10",
     "rule:golang-via-mirror entry \"proxy.golang.org\" (name)", false},
    {"both_conditions_met", kI, "https", "both.example", 443, "example.org/both/v2", Action::kDeny,
     "both", "gw.yaml:27", "rule:both entry \"both.example\" (name)", false},
    {"both_host_only_is_not_enough", kC, "https", "both.example", 443, nullptr, Action::kUpstream,
     "env:HTTPS_PROXY", "env:HTTPS_PROXY", "none", false},
    {"both_module_mismatch", kI, "https", "both.example", 443, "example.org/other",
     Action::kUpstream, "env:HTTPS_PROXY", "env:HTTPS_PROXY", "none", false},
};

INSTANTIATE_TEST_SUITE_P(Cases, DecideTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Decide, ModuleVerdictForLeakGuard) {
  std::vector<std::string> errors;
  auto snap = ConfigSnapshot::build(testConfig(), 1, &errors);
  ASSERT_NE(snap, nullptr);
  RequestFacts facts;
  facts.kind = RequestKind::kModuleProxy;
  facts.module = "git.company.com/secret";
  Decision d = decide(facts, *snap);
  ASSERT_TRUE(d.module.has_value());
  EXPECT_TRUE(d.module->gonoproxy);
  EXPECT_EQ(d.module->gonoproxy_pattern.value_or(""), "git.company.com");
  EXPECT_TRUE(d.module->gonosumdb);
  facts.module = "github.com/public/x";
  d = decide(facts, *snap);
  ASSERT_TRUE(d.module.has_value());
  EXPECT_FALSE(d.module->gonoproxy);
  EXPECT_FALSE(d.module->gonoproxy_pattern.has_value());
}

// The leak guard holds whatever rule matched and whichever door the request
// came through: GONOPROXY stops module fetches, GONOSUMDB stops checksum
// lookups, and neither stops the other kind.
TEST(Decide, LeakGuardTable) {
  Config config = testConfig();
  config.env.gonosumdb = fromFile("sums.company.com", 41);
  std::vector<std::string> errors;
  auto snap = ConfigSnapshot::build(std::move(config), 1, &errors);
  ASSERT_NE(snap, nullptr);
  struct GuardCase {
    RequestKind kind;
    const char* host;
    const char* module;
    bool sumdb_lookup;
    const char* guard_has;  // nullptr: no guard
  };
  const GuardCase cases[] = {
      {RequestKind::kModuleProxy, "", "git.company.com/secret", false,
       "GONOPROXY pattern \"git.company.com\" (gw.yaml:40)"},
      {RequestKind::kModuleProxy, "", "git.company.com", false, "GONOPROXY"},
      {RequestKind::kModuleProxy, "", "git.company.com.evil/x", false, nullptr},
      {RequestKind::kModuleProxy, "", "github.com/public/x", false, nullptr},
      // The mirror rule for proxy.golang.org would send it on: the guard wins.
      {RequestKind::kIntercepted, "proxy.golang.org", "git.company.com/secret", false, "GONOPROXY"},
      {RequestKind::kAbsolute, "proxy.golang.org", "git.company.com/a/b", false, "GONOPROXY"},
      // GONOPROXY does not cover checksum lookups; GONOSUMDB does.
      {RequestKind::kIntercepted, "sum.golang.org", "git.company.com/secret", true, nullptr},
      {RequestKind::kIntercepted, "sum.golang.org", "sums.company.com/x", true,
       "GONOSUMDB pattern \"sums.company.com\" (gw.yaml:41)"},
      {RequestKind::kModuleProxy, "", "sums.company.com/x", true, "looked up in no database"},
      {RequestKind::kModuleProxy, "", "sums.company.com/x", false, nullptr},
      {RequestKind::kIntercepted, "proxy.golang.org", "github.com/x/y", true, nullptr},
  };
  for (const GuardCase& c : cases) {
    RequestFacts facts;
    facts.kind = c.kind;
    facts.host = c.host;
    facts.module = c.module;
    facts.sumdb_lookup = c.sumdb_lookup;
    Decision d = decide(facts, *snap);
    SCOPED_TRACE(std::string(c.host) + " " + c.module);
    if (c.guard_has == nullptr) {
      EXPECT_FALSE(d.leak_guard.has_value()) << *d.leak_guard;
    } else {
      ASSERT_TRUE(d.leak_guard.has_value());
      EXPECT_NE(d.leak_guard->find(c.guard_has), std::string::npos) << *d.leak_guard;
    }
  }
}

TEST(Decide, UpstreamCarriesRuleUrl) {
  std::vector<std::string> errors;
  auto snap = ConfigSnapshot::build(testConfig(), 1, &errors);
  ASSERT_NE(snap, nullptr);
  RequestFacts facts;
  facts.host = "a.corp.example.com";
  Decision d = decide(facts, *snap);
  EXPECT_EQ(d.upstream, "http://user:pass@parent.corp:8080");
  EXPECT_EQ(maskUrlCredentials(d.upstream), "http://user:***@parent.corp:8080");
  facts.host = "proxy.golang.org";
  d = decide(facts, *snap);
  EXPECT_TRUE(d.intercept);
  EXPECT_TRUE(d.cache);
  EXPECT_EQ(d.mirrors, "https://goproxy.cn|https://goproxy.io,direct");
}

TEST(Decide, BadMirrorListIsABuildError) {
  Config c = testConfig();
  c.rules[0].mirrors = fromFile(",", 13);
  std::vector<std::string> errors;
  EXPECT_EQ(ConfigSnapshot::build(c, 1, &errors), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("gw.yaml:13:5: rule golang-via-mirror: mirrors:", 0), 0u) << errors[0];
}

TEST(MaskUrlCredentials, Table) {
  EXPECT_EQ(maskUrlCredentials("http://u:p@h:1/x"), "http://u:***@h:1/x");
  EXPECT_EQ(maskUrlCredentials("http://u@h:1"), "http://***@h:1");
  EXPECT_EQ(maskUrlCredentials("https://token@h/x"), "https://***@h/x");
  EXPECT_EQ(maskUrlCredentials("https://a:b@c@h:1/p"), "https://a:***@h:1/p");
  EXPECT_EQ(maskUrlCredentials("https://h/x?u=a:b@c"), "https://h/x?u=a:b@c");
  EXPECT_EQ(maskUrlCredentials("https://h#a:b@c"), "https://h#a:b@c");
  EXPECT_EQ(maskUrlCredentials("https://h"), "https://h");
  EXPECT_EQ(maskUrlCredentials("direct"), "direct");
  EXPECT_EQ(maskUrlCredentials("h:1"), "h:1");
  EXPECT_EQ(maskUrlCredentials("http://h:1/a@b"), "http://h:1/a@b");
  EXPECT_EQ(maskUrlCredentials("u:p@h"), "u:***@h");
}

}  // namespace
}  // namespace switchyard::rules
