#include "rules/config_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace switchyard::rules {
namespace {

using std::chrono::milliseconds;

LoadResult load(const std::string& yaml, const EnvMap& env = {}) {
  return loadConfigString(yaml, "t.yaml", env);
}

std::string joinErrors(const std::vector<std::string>& errors) {
  std::string out;
  for (const std::string& e : errors) {
    out += "\n  " + e;
  }
  return out;
}

// Loads `yaml`, which must be valid, and returns the config.
Config loadOk(const std::string& yaml, const EnvMap& env = {}) {
  LoadResult result = load(yaml, env);
  EXPECT_TRUE(result.errors.empty()) << joinErrors(result.errors);
  EXPECT_TRUE(result.config.has_value());
  return result.config.value_or(Config{});
}

// The configuration of DESIGN.md, verbatim but for the paths.
const char* const kDesignExample = R"(listen: ["127.0.0.1:3128"]        # default
admin: "127.0.0.1:3129"           # optional
env:                               # Go / no_proxy semantics, verbatim strings.
  GOPROXY: "https://proxy.golang.org,direct"
  GOPRIVATE: "git.company.com,*.internal"
  GONOPROXY: ""
  GONOSUMDB: ""
  GOSUMDB: "sum.golang.org"
  NO_PROXY: "localhost,.corp.example.com,10.0.0.0/8"
  HTTPS_PROXY: ""
  HTTP_PROXY: ""
inherit_env: true
rules:
  - name: golang-via-mirror
    match: { hosts: "proxy.golang.org" }
    action: mirror
    mirrors: "https://goproxy.cn|https://goproxy.io,direct"
    intercept: true
    cache: true
  - name: private-modules
    match: { modules: "git.company.com,*.internal" }
    action: direct
  - name: no-ads
    match: { hosts: ".doubleclick.net" }
    action: deny
  - name: corp-parent
    match: { hosts: ".corp.example.com" }
    action: upstream
    upstream: "http://user:pass@parent.corp:8080"
  - name: metadata-ok
    match: { hosts: "169.254.169.254" }
    action: direct
    allow_private: true
resolve: { "mirror.test": "127.0.0.1" }
tls: { ca_dir: "/var/lib/switchyard/ca", upstream_ca_file: "" }
cache: { dir: "/var/cache/switchyard", max_size: "10GiB", mutable_ttl: "5m" }
access:
  allow_clients: ["127.0.0.0/8", "::1"]
  connect_ports: [443]
  deny_private_destinations: false
  users_file: ""
  admin_allow_clients: ["127.0.0.0/8", "::1"]
limits: { max_connections: 10000, header_timeout: "10s", idle_timeout: "5m",
          connect_timeout: "10s", response_timeout: "60s",   # upstream's first byte
          max_header_bytes: 65536, max_connections_per_client: 1000,
          drain_timeout: "30s" }
log: { level: info, format: text, decisions: stderr }   # format: text|json;
      # decisions: stderr | stdout | a file path (reopened on SIGUSR1 for logrotate)
)";

// ---------------------------------------------------------------------------
// Valid configurations.

TEST(ConfigLoaderTest, DesignExampleLoadsWithEveryValue) {
  Config c = loadOk(kDesignExample, {{"GOPRIVATE", "ignored"}, {"no_proxy", "proc"}});
  EXPECT_EQ(c.file, "t.yaml");
  EXPECT_EQ(c.listen, std::vector<std::string>{"127.0.0.1:3128"});
  EXPECT_EQ(c.admin, "127.0.0.1:3129");
  EXPECT_TRUE(c.inherit_env);
  EXPECT_EQ(c.env.goproxy.value, "https://proxy.golang.org,direct");
  EXPECT_EQ(c.env.goproxy.pos.line, 4);
  EXPECT_EQ(c.env.goproxy.pos.column, 12);
  EXPECT_EQ(c.env.goprivate.value, "git.company.com,*.internal");
  EXPECT_EQ(c.env.gonoproxy.value, "git.company.com,*.internal");  // "" -> GOPRIVATE
  EXPECT_EQ(c.env.gonoproxy.pos.line, 5);
  EXPECT_EQ(c.env.gonosumdb.value, "git.company.com,*.internal");
  EXPECT_EQ(c.env.gosumdb.value, "sum.golang.org");
  EXPECT_EQ(c.env.no_proxy.value, "localhost,.corp.example.com,10.0.0.0/8");
  EXPECT_EQ(c.env.no_proxy.pos.str(), "t.yaml:9");
  EXPECT_EQ(c.env.https_proxy.value, "");
  EXPECT_EQ(c.env.http_proxy.value, "");
  EXPECT_EQ(c.env_keys.size(), 8u);
  EXPECT_EQ(c.env_keys.at("GONOPROXY").value, "");

  ASSERT_EQ(c.rules.size(), 5u);
  const RuleConfig& mirror = c.rules[0];
  EXPECT_EQ(mirror.name, "golang-via-mirror");
  EXPECT_EQ(mirror.pos.line, 14);
  EXPECT_EQ(mirror.pos.column, 5);
  ASSERT_TRUE(mirror.hosts.has_value());
  EXPECT_EQ(mirror.hosts->value, "proxy.golang.org");
  EXPECT_EQ(mirror.hosts->pos.line, 15);
  EXPECT_EQ(mirror.hosts->pos.column, 21);
  EXPECT_FALSE(mirror.modules.has_value());
  EXPECT_EQ(mirror.action, Action::kMirror);
  EXPECT_EQ(mirror.mirrors.value, "https://goproxy.cn|https://goproxy.io,direct");
  EXPECT_EQ(mirror.mirrors.pos.line, 17);
  EXPECT_TRUE(mirror.intercept);
  EXPECT_TRUE(mirror.cache);
  EXPECT_FALSE(mirror.allow_private);
  EXPECT_EQ(c.rules[1].modules->value, "git.company.com,*.internal");
  EXPECT_FALSE(c.rules[1].hosts.has_value());
  EXPECT_EQ(c.rules[1].action, Action::kDirect);
  EXPECT_EQ(c.rules[2].action, Action::kDeny);
  EXPECT_EQ(c.rules[3].action, Action::kUpstream);
  EXPECT_EQ(c.rules[3].upstream.value, "http://user:pass@parent.corp:8080");
  EXPECT_EQ(c.rules[3].upstream.pos.line, 29);
  EXPECT_TRUE(c.rules[4].allow_private);

  EXPECT_EQ(c.resolve, (std::map<std::string, std::string>{{"mirror.test", "127.0.0.1"}}));
  EXPECT_EQ(c.tls.ca_dir, "/var/lib/switchyard/ca");
  EXPECT_EQ(c.tls.upstream_ca_file, "");
  EXPECT_EQ(c.cache.dir, "/var/cache/switchyard");
  EXPECT_EQ(c.cache.max_size, 10ull << 30);
  EXPECT_EQ(c.cache.mutable_ttl, milliseconds(300'000));
  EXPECT_EQ(c.access.allow_clients, (std::vector<std::string>{"127.0.0.0/8", "::1"}));
  EXPECT_EQ(c.access.connect_ports, std::vector<uint16_t>{443});
  EXPECT_FALSE(c.access.deny_private_destinations);
  EXPECT_EQ(c.access.users_file, "");
  EXPECT_EQ(c.access.admin_allow_clients, (std::vector<std::string>{"127.0.0.0/8", "::1"}));
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.header_timeout, milliseconds(10'000));
  EXPECT_EQ(c.limits.idle_timeout, milliseconds(300'000));
  EXPECT_EQ(c.limits.connect_timeout, milliseconds(10'000));
  EXPECT_EQ(c.limits.response_timeout, milliseconds(60'000));
  EXPECT_EQ(c.limits.max_header_bytes, 65536u);
  EXPECT_EQ(c.limits.max_connections_per_client, 1000u);
  EXPECT_EQ(c.limits.drain_timeout, milliseconds(30'000));
  EXPECT_EQ(c.limits.busy_poll, std::chrono::microseconds(200));
  EXPECT_TRUE(c.limits.splice);
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, "text");
  EXPECT_EQ(c.log.decisions, "stderr");
}

TEST(ConfigLoaderTest, EmptyMappingGivesEveryDefault) {
  Config c = loadOk("{}\n");
  Config d;  // the model's defaults
  EXPECT_EQ(c.listen, d.listen);
  EXPECT_EQ(c.listen, std::vector<std::string>{"127.0.0.1:3128"});
  EXPECT_EQ(c.admin, "");
  EXPECT_TRUE(c.inherit_env);
  EXPECT_TRUE(c.rules.empty());
  EXPECT_TRUE(c.resolve.empty());
  EXPECT_TRUE(c.env_keys.empty());
  EXPECT_EQ(c.tls.ca_dir, "");
  EXPECT_EQ(c.cache.dir, "");
  EXPECT_EQ(c.cache.max_size, 10ull << 30);
  EXPECT_EQ(c.cache.mutable_ttl, milliseconds(300'000));
  EXPECT_EQ(c.access.allow_clients, d.access.allow_clients);
  EXPECT_EQ(c.access.connect_ports, std::vector<uint16_t>{443});
  EXPECT_EQ(c.access.admin_allow_clients, d.access.admin_allow_clients);
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.header_timeout, milliseconds(10'000));
  EXPECT_EQ(c.limits.drain_timeout, milliseconds(30'000));
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, "text");
  EXPECT_EQ(c.log.decisions, "stderr");
  EXPECT_EQ(c.env.goproxy.value, "https://proxy.golang.org,direct");
  EXPECT_EQ(c.env.gosumdb.value, "sum.golang.org");
}

TEST(ConfigLoaderTest, EmptySectionsMeanDefaults) {
  Config c = loadOk("rules:\nenv:\ntls:\ncache:\naccess:\nlimits:\nlog:\nresolve:\n");
  EXPECT_TRUE(c.rules.empty());
  EXPECT_EQ(c.access.connect_ports, std::vector<uint16_t>{443});
  EXPECT_EQ(c.log.level, "info");
}

TEST(ConfigLoaderTest, ListsAsCommaStrings) {
  Config c = loadOk(
      "listen: \"127.0.0.1:3128, [::1]:3128,:8080\"\n"
      "access:\n"
      "  allow_clients: 10.0.0.0/8, 192.168.1.7\n"
      "  admin_allow_clients: \"::1\"\n"
      "  connect_ports: \"443, 8443\"\n");
  EXPECT_EQ(c.listen, (std::vector<std::string>{"127.0.0.1:3128", "[::1]:3128", ":8080"}));
  EXPECT_EQ(c.access.allow_clients, (std::vector<std::string>{"10.0.0.0/8", "192.168.1.7"}));
  EXPECT_EQ(c.access.admin_allow_clients, std::vector<std::string>{"::1"});
  EXPECT_EQ(c.access.connect_ports, (std::vector<uint16_t>{443, 8443}));
}

TEST(ConfigLoaderTest, ListsAsSequencesAndSingleValues) {
  Config c = loadOk(
      "listen:\n  - 127.0.0.1:0\n  - localhost:3129\n  - 127.0.0.1:0\n"
      "admin: 127.0.0.1:0\n"
      "access:\n  connect_ports: 8443\n  allow_clients: [\"0.0.0.0/0\", \"::/0\"]\n");
  EXPECT_EQ(c.listen, (std::vector<std::string>{"127.0.0.1:0", "localhost:3129", "127.0.0.1:0"}));
  EXPECT_EQ(c.access.connect_ports, std::vector<uint16_t>{8443});
  Config empty_ports = loadOk("access: { connect_ports: [] }\n");
  EXPECT_TRUE(empty_ports.access.connect_ports.empty());
}

TEST(ConfigLoaderTest, MatchListsAreJoinedWithCommas) {
  Config c = loadOk(
      "rules:\n"
      "  - name: a\n"
      "    match:\n"
      "      hosts: [\"a.com\", \".b.com\", \"10.0.0.0/8\"]\n"
      "      modules:\n"
      "        - example.com/x\n"
      "        - \"*.corp\"\n"
      "    action: direct\n");
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].hosts->value, "a.com,.b.com,10.0.0.0/8");
  EXPECT_EQ(c.rules[0].hosts->pos.line, 4);
  EXPECT_EQ(c.rules[0].hosts->pos.column, 14);
  EXPECT_EQ(c.rules[0].modules->value, "example.com/x,*.corp");
  EXPECT_EQ(c.rules[0].modules->pos.line, 6);
}

TEST(ConfigLoaderTest, Yaml12ScalarsStayStrings) {
  // YAML 1.1 would read off/yes/on as booleans; the config uses YAML 1.2.
  Config c = loadOk(
      "env: { GOPROXY: off, GOSUMDB: off, GONOPROXY: none }\n"
      "log: { level: off }\n");
  EXPECT_EQ(c.env.goproxy.value, "off");
  EXPECT_EQ(c.env.gosumdb.value, "off");
  EXPECT_EQ(c.env.gonoproxy.value, "none");
  EXPECT_EQ(c.log.level, "off");
}

TEST(ConfigLoaderTest, BooleanSpellings) {
  for (const char* yes : {"true", "True", "TRUE"}) {
    SCOPED_TRACE(yes);
    EXPECT_FALSE(loadOk(std::string("access: { deny_private_destinations: ") + yes + " }\n")
                     .access.deny_private_destinations == false);
  }
  for (const char* no : {"false", "False", "FALSE"}) {
    SCOPED_TRACE(no);
    EXPECT_FALSE(loadOk(std::string("inherit_env: ") + no + "\n").inherit_env);
  }
}

TEST(ConfigLoaderTest, UnitsAndNumbers) {
  Config c = loadOk(
      "cache: { max_size: 1073741824, mutable_ttl: 0 }\n"
      "limits:\n"
      "  header_timeout: 250ms\n"
      "  idle_timeout: 1h30m\n"
      "  connect_timeout: 1.5s\n"
      "  response_timeout: 2m\n"
      "  drain_timeout: 0s\n"
      "  busy_poll: 1ms500us\n"
      "  splice: false\n"
      "  max_header_bytes: 64KiB\n"
      "  max_connections: 1\n"
      "  max_connections_per_client: 4294967295\n");
  EXPECT_EQ(c.cache.max_size, 1ull << 30);
  EXPECT_EQ(c.cache.mutable_ttl, milliseconds(0));
  EXPECT_EQ(c.limits.header_timeout, milliseconds(250));
  EXPECT_EQ(c.limits.idle_timeout, milliseconds(5'400'000));
  EXPECT_EQ(c.limits.connect_timeout, milliseconds(1'500));
  EXPECT_EQ(c.limits.response_timeout, milliseconds(120'000));
  EXPECT_EQ(c.limits.drain_timeout, milliseconds(0));
  EXPECT_EQ(c.limits.busy_poll, std::chrono::microseconds(1500));
  EXPECT_FALSE(c.limits.splice);
  EXPECT_EQ(c.limits.max_header_bytes, 65536u);
  EXPECT_EQ(c.limits.max_connections, 1u);
  EXPECT_EQ(c.limits.max_connections_per_client, 4294967295u);
}

TEST(ConfigLoaderTest, RuleVariants) {
  Config c = loadOk(
      "tls: { ca_dir: /ca }\n"
      "rules:\n"
      "  - name: mods-mirror\n"  // modules only: module-proxy mode, no intercept
      "    match: { modules: \"example.com\" }\n"
      "    action: mirror\n"
      "    mirrors: \"http://127.0.0.1:9|off\"\n"
      "  - name: tls-parent\n"
      "    match: { hosts: a.com }\n"
      "    action: upstream\n"
      "    upstream: \"https://[::1]\"\n"
      "  - name: inspect.direct_1\n"
      "    match: { hosts: \"*\" }\n"
      "    action: direct\n"
      "    intercept: true\n"
      "    cache: false\n"
      "    allow_private: false\n");
  ASSERT_EQ(c.rules.size(), 3u);
  EXPECT_FALSE(c.rules[0].intercept);
  EXPECT_EQ(c.rules[1].upstream.value, "https://[::1]");
  EXPECT_TRUE(c.rules[2].intercept);
  EXPECT_EQ(c.rules[2].name, "inspect.direct_1");
}

TEST(ConfigLoaderTest, EnvFromConfigWithoutInheritance) {
  EnvMap process{{"NO_PROXY", "proc.example"}, {"GOPROXY", "https://proc"}};
  Config c = loadOk("inherit_env: false\nenv:\n  no_proxy: \".corp\"\n", process);
  EXPECT_FALSE(c.inherit_env);
  EXPECT_EQ(c.env.no_proxy.value, ".corp");
  EXPECT_EQ(c.env.no_proxy.pos.line, 3);
  EXPECT_EQ(c.env.goproxy.value, "https://proxy.golang.org,direct");
  EXPECT_EQ(c.env.goproxy.pos.str(), "builtin");
  // inherit_env after env in the file still applies to it.
  Config late = loadOk("env: { GOSUMDB: off }\ninherit_env: false\n", process);
  EXPECT_EQ(late.env.no_proxy.value, "");
  Config inherited = loadOk("env: { GOSUMDB: off }\n", process);
  EXPECT_EQ(inherited.env.no_proxy.value, "proc.example");
  EXPECT_EQ(inherited.env.no_proxy.pos.str(), "env:NO_PROXY");
}

TEST(ConfigLoaderTest, EnvProxyValuesMayOmitTheScheme) {
  Config c = loadOk("env: { HTTPS_PROXY: \"parent:8080\", http_proxy: \"http://p\" }\n");
  EXPECT_EQ(c.env.https_proxy.value, "parent:8080");
  EXPECT_EQ(c.env.http_proxy.value, "http://p");
}

TEST(ConfigLoaderTest, ResolveNamesAreLowercased) {
  Config c = loadOk("resolve:\n  Mirror.Test: \"::1\"\n  b.test: 10.1.2.3\n");
  EXPECT_EQ(c.resolve,
            (std::map<std::string, std::string>{{"mirror.test", "::1"}, {"b.test", "10.1.2.3"}}));
}

TEST(ConfigLoaderTest, DecisionsMayBeAFilePath) {
  EXPECT_EQ(loadOk("log: { decisions: /var/log/sy.log, format: json }\n").log.decisions,
            "/var/log/sy.log");
}

// ---------------------------------------------------------------------------
// Errors: each case gives every expected error as (line, column, text that
// the message must contain), in file order, and nothing else.

struct Expected {
  int line;
  int column;
  const char* text;
};

struct ErrorCase {
  const char* title;
  const char* yaml;
  std::vector<Expected> errors;
};

class ConfigErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, ReportsEveryErrorWithItsPosition) {
  const ErrorCase& c = GetParam();
  LoadResult result = load(c.yaml);
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), c.errors.size()) << joinErrors(result.errors);
  for (size_t i = 0; i < c.errors.size(); ++i) {
    const Expected& want = c.errors[i];
    std::string prefix =
        "t.yaml:" + std::to_string(want.line) + ":" + std::to_string(want.column) + ": ";
    EXPECT_EQ(result.errors[i].rfind(prefix, 0), 0u)
        << "want prefix " << prefix << " in" << joinErrors(result.errors);
    EXPECT_NE(result.errors[i].find(want.text), std::string::npos)
        << "want \"" << want.text << "\" in " << result.errors[i];
    EXPECT_EQ(result.errors[i].find('\n'), std::string::npos);
  }
}

const ErrorCase kErrorCases[] = {
    // Document shape and YAML syntax.
    {"syntax", "listen: [\"a\", \"b\"\n", {{2, 1, "YAML syntax error: end of sequence flow"}}},
    {"alias", "env:\n  NO_PROXY: *\n", {{2, 14, "YAML syntax error: alias not found"}}},
    {"bad_indent",
     "log:\n  level: info\n format: json\n",
     {{3, 2, "YAML syntax error: end of map not found"}}},
    {"sequence_document",
     "- a\n- b\n",
     {{1, 1, "the config must be a mapping of settings (listen, env, rules, ...), got a list"}}},
    {"scalar_document", "hello\n", {{1, 1, "got string \"hello\""}}},
    {"empty_document", "# nothing\n", {{1, 1, "empty config"}}},
    {"two_documents", "listen: [\":1\"]\n---\nadmin: \":2\"\n", {{2, 1, "only one YAML document"}}},
    {"stray_comma", ",\n", {{1, 1, "YAML syntax error: unexpected text here"}}},
    {"duplicate_key",
     "admin: \":1\"\nadmin: \":2\"\n",
     {{2, 1, "admin: duplicate key (first at line 1)"}}},
    {"non_scalar_key", "? [a]\n: b\n", {{1, 3, "a key must be a name, got a list"}}},
    // Unknown keys.
    {"unknown_top_suggest",
     "listn: []\n",
     {{1, 1, "unknown key \"listn\" (did you mean \"listen\"?)"}}},
    {"unknown_top_belongs",
     "max_size: 1GiB\n",
     {{1, 1, "unknown key \"max_size\" (\"max_size\" belongs in \"cache\")"}}},
    {"unknown_top_list", "zzz: 1\n", {{1, 1, "(valid keys: listen, admin, env,"}}},
    {"unknown_nested",
     "limits:\n  header_timout: 10s\n",
     {{2, 3, "limits: unknown key \"header_timout\" (did you mean \"header_timeout\"?)"}}},
    {"unknown_env_case",
     "env:\n  goproxy: x\n",
     {{2, 3, "env: unknown key \"goproxy\" (did you mean \"GOPROXY\"?)"}}},
    {"unknown_env_var", "env:\n  ALL_PROXY: x\n", {{2, 3, "env: unknown key \"ALL_PROXY\""}}},
    {"unknown_rule_key",
     "rules:\n  - name: a\n    hosts: x\n    action: direct\n",
     {{2, 5, "rules[0]: missing \"match\""},
      {3, 5, "rules[0]: unknown key \"hosts\" (\"hosts\" belongs in a rule's \"match\")"}}},
    {"unknown_match_key",
     "rules:\n  - {name: a, action: deny, match: {host: x}}\n",
     {{2, 37, "rules[0].match: unknown key \"host\" (did you mean \"hosts\"?)"}}},
    // Types.
    {"listen_int",
     "listen: 5\n",
     {{1, 9, "listen: expected a list or a comma-separated string, got integer 5"}}},
    {"inherit_env_quoted_yes",
     "inherit_env: \"yes\"\n",
     {{1, 14, "inherit_env: expected true or false, got string \"yes\""}}},
    {"inherit_env_plain_yes", "inherit_env: yes\n", {{1, 14, "got string \"yes\""}}},
    {"inherit_env_empty", "inherit_env:\n", {{1, 1, "expected true or false, got nothing"}}},
    {"admin_int",
     "admin: 3129\n",
     {{1, 8, "admin: expected a string, got integer 3129; quote it if you mean the text"}}},
    {"section_scalar", "tls: 5\n", {{1, 6, "tls: expected a mapping, got integer 5"}}},
    {"rules_mapping", "rules: {a: 1}\n", {{1, 8, "rules: expected a list of rules"}}},
    {"rule_scalar", "rules:\n  - foo\n", {{2, 5, "rules[0]: expected a rule"}}},
    {"tagged", "admin: !!int \"5\"\n", {{1, 8, "got a value tagged"}}},
    // Addresses.
    {"listen_bad_port",
     "listen: [\"127.0.0.1:99999\"]\n",
     {{1, 10, "listen[0]: bad address \"127.0.0.1:99999\": bad port \"99999\""}}},
    {"listen_no_port", "listen: \"127.0.0.1\"\n", {{1, 10, "expected host:port"}}},
    {"listen_v6_unbracketed", "listen: \"::1:80\"\n", {{1, 10, "must be in brackets"}}},
    {"listen_hostname",
     "listen: example.com:80\n",
     {{1, 9, "\"example.com\" is not an IP address"}}},
    {"listen_comma_second",
     "listen: \"127.0.0.1:1, [::1]:x\"\n",
     {{1, 23, "listen[1]: bad address \"[::1]:x\": bad port \"x\""}}},
    {"listen_empty_entry",
     "listen: \"127.0.0.1:1,,127.0.0.1:2\"\n",
     {{1, 22, "listen[1]: empty entry"}}},
    {"listen_twice", "listen: [\":1\", \":1\"]\n", {{1, 16, "listed twice"}}},
    {"listen_empty", "listen: []\n", {{1, 9, "needs at least one address"}}},
    {"admin_shares_listen",
     "listen: \":1\"\nadmin: \":1\"\n",
     {{2, 8, "cannot share the proxy address"}}},
    {"admin_bad", "admin: \"[fe80::1\"\n", {{1, 8, "admin: bad address"}}},
    // Rules.
    {"rule_missing_name",
     "rules:\n  - match: {hosts: a}\n    action: direct\n",
     {{2, 5, "rules[0]: missing \"name\""}}},
    {"rule_duplicate_name",
     "rules:\n  - {name: a, match: {hosts: a}, action: deny}\n"
     "  - {name: a, match: {hosts: b}, action: deny}\n",
     {{3, 12, "rules[1].name: duplicate rule name \"a\" (first at line 2)"}}},
    {"rule_name_chars",
     "rules:\n  - {name: \"a b\", match: {hosts: a}, action: deny}\n",
     {{2, 12, "may only use letters, digits"}}},
    {"rule_name_reserved",
     "rules:\n  - {name: default, match: {hosts: a}, action: deny}\n",
     {{2, 12, "reserved"}}},
    {"rule_missing_action",
     "rules:\n  - name: a\n    match: {hosts: a}\n",
     {{2, 5, "rules[0]: missing \"action\" (one of direct, upstream, mirror, deny)"}}},
    {"rule_bad_action",
     "rules:\n  - name: a\n    match: {hosts: a}\n    action: proxy\n",
     {{4, 13, "rules[0].action: must be one of direct, upstream, mirror, deny, got \"proxy\""}}},
    {"match_empty",
     "rules:\n  - name: a\n    match: {}\n    action: deny\n",
     {{3, 12, "rules[0].match: needs \"hosts\" and/or \"modules\""}}},
    {"match_hosts_empty",
     "rules:\n  - name: a\n    match: {hosts: \"\"}\n    action: deny\n",
     {{3, 20, "rules[0].match.hosts: is empty and would match nothing"}}},
    {"match_hosts_int",
     "rules:\n  - name: a\n    match: {hosts: 5}\n    action: deny\n",
     {{3, 20, "expected a string or a list of strings, got integer 5"}}},
    {"match_list_item_int",
     "rules:\n  - name: a\n    match: {modules: [a, 1]}\n    action: deny\n",
     {{3, 26, "rules[0].match.modules[1]: expected a string, got integer 1"}}},
    {"mirror_without_mirrors",
     "rules:\n  - name: a\n    match: {modules: a}\n    action: mirror\n",
     {{4, 13, "action mirror needs \"mirrors\""}}},
    {"upstream_without_upstream",
     "rules:\n  - name: a\n    match: {hosts: a}\n    action: upstream\n",
     {{4, 13, "action upstream needs \"upstream\""}}},
    {"mirrors_with_direct",
     "rules:\n  - name: a\n    match: {modules: a}\n    action: direct\n    mirrors: x\n",
     {{5, 14, "\"mirrors\" is only allowed with action mirror, not direct"}}},
    {"upstream_with_deny",
     "rules:\n  - name: a\n    match: {hosts: a}\n    action: deny\n    upstream: http://p\n",
     {{5, 15, "\"upstream\" is only allowed with action upstream, not deny"}}},
    {"upstream_socks",
     "rules:\n  - {name: a, match: {hosts: a}, action: upstream, upstream: \"socks5://p:1\"}\n",
     {{2, 62, "bad parent proxy URL: unsupported scheme \"socks5\""}}},
    {"upstream_no_scheme",
     "rules:\n  - {name: a, match: {hosts: a}, action: upstream, upstream: \"p:1\"}\n",
     {{2, 62, "missing scheme"}}},
    {"upstream_bad_port",
     "rules:\n  - {name: a, match: {hosts: a}, action: upstream, upstream: \"http://p:0\"}\n",
     {{2, 62, "bad port \"0\""}}},
    {"upstream_path",
     "rules:\n  - {name: a, match: {hosts: a}, action: upstream, upstream: \"http://p:1/x\"}\n",
     {{2, 62, "no path, query or fragment"}}},
    {"intercept_without_ca_dir",
     "rules:\n  - name: a\n    match: {hosts: a}\n    action: direct\n    intercept: true\n",
     {{5, 16, "intercept: true needs tls.ca_dir"}}},
    {"mirror_hosts_without_intercept",
     "rules:\n  - name: a\n    match: {hosts: proxy.golang.org}\n    action: mirror\n"
     "    mirrors: https://m\n",
     {{4, 13, "a mirror rule that matches hosts sees CONNECT tunnels and needs intercept: true"}}},
    {"allow_private_not_bool",
     "rules:\n  - {name: a, match: {hosts: a}, action: direct, allow_private: 1}\n",
     {{2, 65, "rules[0].allow_private: expected true or false, got integer 1"}}},
    {"cache_on_deny",
     "cache: {dir: /c}\nrules:\n  - {name: a, match: {hosts: a}, action: deny, cache: true}\n",
     {{3, 55, "cache: true is only allowed with action mirror or direct, not deny"}}},
    {"cache_without_dir",
     "rules:\n  - {name: a, match: {modules: a}, action: direct, cache: true}\n",
     {{2, 59, "cache: true needs cache.dir"}}},
    // resolve, access.
    {"resolve_not_ip",
     "resolve: { \"m.test\": \"example.com\" }\n",
     {{1, 22, "resolve.m.test: expected an IP address, got \"example.com\""}}},
    {"resolve_bracketed", "resolve:\n  m.test: \"[::1]\"\n", {{2, 11, "expected an IP address"}}},
    {"resolve_key_port",
     "resolve:\n  \"m.test:443\": 127.0.0.1\n",
     {{2, 3, "expected a host name without port"}}},
    {"cidr_prefix",
     "access: { allow_clients: [\"10.0.0.0/33\"] }\n",
     {{1, 27, "access.allow_clients[0]: bad address or CIDR \"10.0.0.0/33\": prefix length"}}},
    {"cidr_v6_prefix",
     "access:\n  allow_clients: \"::1, 2001:db8::/129\"\n",
     {{2, 24, "access.allow_clients[1]: bad address or CIDR \"2001:db8::/129\""}}},
    {"cidr_garbage",
     "access:\n  admin_allow_clients: [localhost]\n",
     {{2, 25, "\"localhost\" is not an IP address"}}},
    {"cidr_empty_list", "access: { allow_clients: [] }\n", {{1, 26, "no client could connect"}}},
    {"port_zero",
     "access: { connect_ports: [443, 0] }\n",
     {{1, 32, "access.connect_ports[1]: expected a port number from 1 to 65535, got \"0\""}}},
    {"port_too_big", "access: { connect_ports: \"443,70000\" }\n", {{1, 31, "got \"70000\""}}},
    {"port_string_in_sequence",
     "access: { connect_ports: [\"443\"] }\n",
     {{1, 27, "expected a port number, got string \"443\""}}},
    {"deny_private_string",
     "access: { deny_private_destinations: \"true\" }\n",
     {{1, 38, "expected true or false, got string \"true\""}}},
    // Durations, sizes, numbers.
    {"duration_unit",
     "limits: { header_timeout: 10x }\n",
     {{1, 27, "limits.header_timeout: unknown unit \"x\" in \"10x\""}}},
    {"duration_no_unit",
     "limits: { idle_timeout: 10 }\n",
     {{1, 25, "limits.idle_timeout: missing unit in \"10\""}}},
    {"duration_zero", "limits: { connect_timeout: 0s }\n", {{1, 28, "must be longer than 0"}}},
    {"duration_negative", "cache: { mutable_ttl: -5m }\n", {{1, 23, "negative duration"}}},
    {"duration_bool",
     "limits: { drain_timeout: true }\n",
     {{1, 26, "expected a duration such as \"10s\", got boolean true"}}},
    {"busy_poll_unit", "limits: { busy_poll: 50ns }\n", {{1, 22, "unknown unit \"ns\""}}},
    {"busy_poll_fraction",
     "limits: { busy_poll: 0.5us }\n",
     {{1, 22, "whole number of microseconds"}}},
    {"timeout_micro", "limits: { idle_timeout: 500us }\n", {{1, 25, "unknown unit \"us\""}}},
    {"splice_not_bool",
     "limits: { splice: 1 }\n",
     {{1, 19, "limits.splice: expected true or false, got integer 1"}}},
    {"busy_poll_too_long", "limits: { busy_poll: 2s }\n", {{1, 22, "must be at most 1s"}}},
    {"size_unit", "cache: { max_size: 10XB }\n", {{1, 20, "unknown unit \"XB\""}}},
    {"size_zero", "cache: { max_size: 0 }\n", {{1, 20, "must be from 1B to"}}},
    {"size_overflow", "cache: { max_size: 99999999999999999999 }\n", {{1, 20, "too large"}}},
    {"header_bytes_small",
     "limits: { max_header_bytes: 100 }\n",
     {{1, 29, "must be from 1KiB to 4294967295B"}}},
    {"header_bytes_big", "limits: { max_header_bytes: 8GiB }\n", {{1, 29, "must be from 1KiB"}}},
    {"count_negative",
     "limits: { max_connections: -1 }\n",
     {{1, 28,
       "limits.max_connections: expected a whole number from 1 to 4294967295, got integer -1"}}},
    {"count_string",
     "limits: { max_connections_per_client: \"10\" }\n",
     {{1, 39, "got string \"10\""}}},
    // log.
    {"log_level",
     "log: { level: verbose }\n",
     {{1, 15, "log.level: must be one of trace, debug, info, warn, error, off, got \"verbose\""}}},
    {"log_format", "log:\n  format: xml\n", {{2, 11, "must be one of text, json"}}},
    {"log_decisions_empty",
     "log: { decisions: \"\" }\n",
     {{1, 19, "log.decisions: must not be empty"}}},
    // env.
    {"env_int",
     "env:\n  GOPRIVATE: 123\n",
     {{2, 14, "env.GOPRIVATE: expected a string, got integer 123"}}},
    {"env_null",
     "env:\n  GONOPROXY:\n",
     {{2, 3, "env.GONOPROXY: expected a string, got nothing (an empty value); write \"\""}}},
    {"env_list", "env:\n  NO_PROXY: [a, b]\n", {{2, 13, "expected a string, got a list"}}},
    {"env_proxy_socks",
     "env: { HTTPS_PROXY: \"socks5://p:1\" }\n",
     {{1, 21, "env.HTTPS_PROXY: not a usable parent proxy: unsupported scheme"}}},
    {"env_proxy_path", "env: { http_proxy: \"http://p/x\" }\n", {{1, 20, "no path"}}},
    // Many errors at once, all reported, in file order.
    {"collects_all",
     "listen: 5\n"
     "bogus: 1\n"
     "limits: { header_timeout: 10x, max_connections: 0 }\n"
     "rules:\n"
     "  - name: a\n"
     "    match: {hosts: a}\n"
     "    action: mirror\n"
     "log: { level: loud }\n",
     {{1, 9, "listen: expected a list"},
      {2, 1, "unknown key \"bogus\""},
      {3, 27, "unknown unit"},
      {3, 49, "expected a whole number"},
      {7, 13, "action mirror needs \"mirrors\""},
      {7, 13, "needs intercept: true"},
      {8, 15, "got \"loud\""}}},
};

INSTANTIATE_TEST_SUITE_P(Cases, ConfigErrorTest, testing::ValuesIn(kErrorCases),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.title);
                         });

TEST(ConfigLoaderTest, ErrorsAreCappedButCounted) {
  std::string yaml;
  for (int i = 0; i < 300; ++i) {
    yaml += "k" + std::to_string(i) + ": 1\n";
  }
  LoadResult result = load(yaml);
  ASSERT_EQ(result.errors.size(), 201u);
  EXPECT_NE(result.errors.back().find("100 more errors not shown"), std::string::npos);
}

// yaml-cpp 0.7's LoadAll never returns on these (found by the fuzzer).
TEST(ConfigLoaderTest, InputsThatHangYamlCppLoadAllEndWithASyntaxError) {
  for (const std::string& yaml :
       {std::string("\0,limits\x7f@", 10), std::string("\n,\n"), std::string("a: 1\n,\n")}) {
    LoadResult result = load(yaml);
    ASSERT_FALSE(result.errors.empty());
    EXPECT_NE(result.errors[0].find("YAML syntax error"), std::string::npos) << result.errors[0];
  }
}

TEST(ConfigLoaderTest, ControlCharactersInValuesAreEscaped) {
  LoadResult result = load("log: { level: \"a\\nb\" }\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find("got \"a\\x0ab\""), std::string::npos) << result.errors[0];
}

// ---------------------------------------------------------------------------
// Files, defaults, summary.

TEST(ConfigLoaderTest, MissingFile) {
  LoadResult result = loadConfigFile("/nonexistent/sy.yaml", {});
  EXPECT_FALSE(result.config.has_value());
  EXPECT_EQ(result.errors, std::vector<std::string>{
                               "/nonexistent/sy.yaml: cannot open: No such file or directory"});
}

TEST(ConfigLoaderTest, DirectoryIsNotAConfig) {
  LoadResult result = loadConfigFile("/tmp", {});
  EXPECT_EQ(result.errors, std::vector<std::string>{"/tmp: cannot open: Is a directory"});
}

TEST(ConfigLoaderTest, FileErrorsNameTheFile) {
  char path[] = "/tmp/sy-config-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = "listen: \":3128\"\nlog: { level: nope }\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  LoadResult result = loadConfigFile(path, {});
  unlink(path);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].rfind(std::string(path) + ":2:15: log.level", 0), 0u)
      << result.errors[0];
}

TEST(ConfigLoaderTest, DefaultConfigUsesTheEnvironment) {
  Config c = defaultConfig({{"no_proxy", "a.com"}, {"HTTPS_PROXY", "http://p:1"}});
  EXPECT_EQ(c.file, "");
  EXPECT_EQ(c.listen, std::vector<std::string>{"127.0.0.1:3128"});
  EXPECT_TRUE(c.rules.empty());
  EXPECT_EQ(c.env.no_proxy.value, "a.com");
  EXPECT_EQ(c.env.no_proxy.pos.str(), "env:no_proxy");
  EXPECT_EQ(c.env.https_proxy.value, "http://p:1");
  EXPECT_EQ(c.env.goproxy.value, "https://proxy.golang.org,direct");
}

TEST(ConfigLoaderTest, Summary) {
  const struct {
    const char* yaml;
    EnvMap env;
    const char* summary;
  } kCases[] = {
      {"listen: [\":1\", \":2\"]\n"
       "env: { GOPROXY: off, NO_PROXY: a }\n"
       "rules:\n"
       "  - {name: a, match: {hosts: a}, action: deny}\n",
       {{"GOPRIVATE", "p"}},
       "ok: 2 listeners, 1 rule, env from config (GOPROXY, NO_PROXY) and process (GOPRIVATE)"},
      {"{}\n", {}, "ok: 1 listener, 0 rules, env: built-in defaults only"},
      {"env: { no_proxy: x }\n", {}, "ok: 1 listener, 0 rules, env from config (no_proxy)"},
      {"{}\n",
       {{"https_proxy", "http://p:1"}, {"GONOSUMDB", "x"}},
       "ok: 1 listener, 0 rules, env from process (GONOSUMDB, https_proxy)"},
      {"inherit_env: false\n",
       {{"GOPROXY", "x"}},
       "ok: 1 listener, 0 rules, env: built-in defaults only"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_EQ(summarizeConfig(loadOk(c.yaml, c.env)), c.summary);
  }
}

// ---------------------------------------------------------------------------
// The validators on their own.

TEST(ConfigLoaderTest, ListenAddresses) {
  for (const char* ok : {"127.0.0.1:3128", "[::1]:3128", ":3128", "localhost:0", "0.0.0.0:65535",
                         "[2001:db8::1]:80"}) {
    EXPECT_TRUE(validateListenAddress(ok, nullptr)) << ok;
  }
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:80", "[::1]", "[::1]80",
        "[127.0.0.1]:80", "host:80", "1.2.3:80", "127.0.0.1:-1", "127.0.0.1: 80"}) {
    std::string error;
    EXPECT_FALSE(validateListenAddress(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(ConfigLoaderTest, Cidrs) {
  for (const char* ok : {"10.0.0.0/8", "10.1.2.3/8", "0.0.0.0/0", "192.168.1.1", "::1",
                         "2001:db8::/32", "::/0", "::ffff:0:0/96", "1.2.3.4/32", "::1/128"}) {
    EXPECT_TRUE(validateCidr(ok, nullptr)) << ok;
  }
  for (const char* bad :
       {"", "10.0.0.0/", "10.0.0.0/33", "::1/129", "10.0.0.0/8/8", "10.0.0.0/255.0.0.0", "10.0.0/8",
        "fe80::1%eth0", "[::1]", "a.com", "10.0.0.0/+8", "10.0.0.0/0008"}) {
    EXPECT_FALSE(validateCidr(bad, nullptr)) << bad;
  }
}

TEST(ConfigLoaderTest, ProxyUrls) {
  std::optional<ProxyUrl> url =
      parseProxyUrl("http://user:p%40ss@parent.corp:8080/", false, nullptr);
  ASSERT_TRUE(url.has_value());
  EXPECT_EQ(url->scheme, "http");
  EXPECT_EQ(url->user, "user");
  EXPECT_EQ(url->password, "p@ss");
  EXPECT_TRUE(url->has_credentials);
  EXPECT_EQ(url->host, "parent.corp");
  EXPECT_EQ(url->port, 8080);

  url = parseProxyUrl("HTTPS://[2001:db8::1]", false, nullptr);
  ASSERT_TRUE(url.has_value());
  EXPECT_EQ(url->scheme, "https");
  EXPECT_EQ(url->host, "2001:db8::1");
  EXPECT_EQ(url->port, 443);
  EXPECT_FALSE(url->has_credentials);

  url = parseProxyUrl("proxy.local:3128", true, nullptr);  // Go assumes http://
  ASSERT_TRUE(url.has_value());
  EXPECT_EQ(url->scheme, "http");
  EXPECT_EQ(url->port, 3128);
  EXPECT_EQ(parseProxyUrl("http://p", false, nullptr)->port, 80);
  EXPECT_EQ(parseProxyUrl("http://bücher.example", false, nullptr)->host, "bücher.example");
  EXPECT_EQ(parseProxyUrl("http://u:a@b@p:1", false, nullptr)->password, "a@b");  // last '@'

  for (const char* bad :
       {"p:1", "ftp://p:1", "socks5://p:1", "http://", "http://:80", "http://p:0", "http://p:65536",
        "http://p:x", "http://p/path", "http://p?q=1", "http://@p", "http://u:%zz@p",
        "http://::1:80", "http://[::1", "http://p q:1", "http://[a.com]:1"}) {
    std::string error;
    EXPECT_FALSE(parseProxyUrl(bad, false, &error).has_value()) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace switchyard::rules
