#include "rules/environment.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace switchyard::rules {
namespace {

// Which effective value a row checks.
enum class Var { kGoproxy, kGoprivate, kGonoproxy, kGonosumdb, kGosumdb, kNoProxy, kHttps, kHttp };

const Sourced& pick(const EnvConfig& env, Var var) {
  switch (var) {
    case Var::kGoproxy:
      return env.goproxy;
    case Var::kGoprivate:
      return env.goprivate;
    case Var::kGonoproxy:
      return env.gonoproxy;
    case Var::kGonosumdb:
      return env.gonosumdb;
    case Var::kGosumdb:
      return env.gosumdb;
    case Var::kNoProxy:
      return env.no_proxy;
    case Var::kHttps:
      return env.https_proxy;
    case Var::kHttp:
      return env.http_proxy;
  }
  return env.goproxy;
}

// "builtin", "env:NAME" or "cfg:LINE": where a value came from, compactly.
std::string where(const SourcePos& pos) {
  if (!pos.file.empty()) {
    return "cfg:" + std::to_string(pos.line);
  }
  if (!pos.env.empty()) {
    return "env:" + pos.env;
  }
  return "builtin";
}

struct ConfigVar {
  const char* name;
  const char* value;
  int line;
};

struct Case {
  const char* title;
  EnvMap process;
  std::vector<ConfigVar> config;
  bool inherit;
  Var var;
  const char* value;
  const char* source;
};

std::map<std::string, Sourced> configEnv(const std::vector<ConfigVar>& vars) {
  std::map<std::string, Sourced> out;
  for (const ConfigVar& var : vars) {
    SourcePos pos;
    pos.file = "cfg.yaml";
    pos.line = var.line;
    pos.column = 3;
    out[var.name] = Sourced{var.value, pos};
  }
  return out;
}

const char* const kGoDefault = "https://proxy.golang.org,direct";

TEST(EnvironmentTest, PrecedenceTable) {
  const Case kCases[] = {
      // NO_PROXY / no_proxy
      {"nothing set", {}, {}, true, Var::kNoProxy, "", "builtin"},
      {"upper only", {{"NO_PROXY", "a.com"}}, {}, true, Var::kNoProxy, "a.com", "env:NO_PROXY"},
      {"lower only", {{"no_proxy", "b.com"}}, {}, true, Var::kNoProxy, "b.com", "env:no_proxy"},
      {"upper wins over lower",
       {{"NO_PROXY", "a.com"}, {"no_proxy", "b.com"}},
       {},
       true,
       Var::kNoProxy,
       "a.com",
       "env:NO_PROXY"},
      {"empty upper = unset, lower used",
       {{"NO_PROXY", ""}, {"no_proxy", "b.com"}},
       {},
       true,
       Var::kNoProxy,
       "b.com",
       "env:no_proxy"},
      {"both empty: empty, attributed to upper",
       {{"NO_PROXY", ""}, {"no_proxy", ""}},
       {},
       true,
       Var::kNoProxy,
       "",
       "env:NO_PROXY"},
      {"config overrides process upper",
       {{"NO_PROXY", "a.com"}},
       {{"NO_PROXY", "c.com", 4}},
       true,
       Var::kNoProxy,
       "c.com",
       "cfg:4"},
      {"config \"\" overrides process upper, process lower then applies",
       {{"NO_PROXY", "a.com"}, {"no_proxy", "b.com"}},
       {{"NO_PROXY", "", 4}},
       true,
       Var::kNoProxy,
       "b.com",
       "env:no_proxy"},
      {"config \"\" in both spellings clears",
       {{"NO_PROXY", "a.com"}, {"no_proxy", "b.com"}},
       {{"NO_PROXY", "", 4}, {"no_proxy", "", 5}},
       true,
       Var::kNoProxy,
       "",
       "cfg:4"},
      {"config lower beats process lower, process upper still first",
       {{"NO_PROXY", "a.com"}, {"no_proxy", "b.com"}},
       {{"no_proxy", "c.com", 6}},
       true,
       Var::kNoProxy,
       "a.com",
       "env:NO_PROXY"},
      {"config lower used when upper unset",
       {{"no_proxy", "b.com"}},
       {{"no_proxy", "c.com", 6}},
       true,
       Var::kNoProxy,
       "c.com",
       "cfg:6"},
      {"inherit_env false ignores process",
       {{"NO_PROXY", "a.com"}},
       {},
       false,
       Var::kNoProxy,
       "",
       "builtin"},
      {"inherit_env false uses config only",
       {{"NO_PROXY", "a.com"}},
       {{"no_proxy", "c.com", 2}},
       false,
       Var::kNoProxy,
       "c.com",
       "cfg:2"},
      // Proxies
      {"HTTPS_PROXY before https_proxy",
       {{"HTTPS_PROXY", "http://u:1"}, {"https_proxy", "http://l:1"}},
       {},
       true,
       Var::kHttps,
       "http://u:1",
       "env:HTTPS_PROXY"},
      {"https_proxy when HTTPS_PROXY empty",
       {{"HTTPS_PROXY", ""}, {"https_proxy", "http://l:1"}},
       {},
       true,
       Var::kHttps,
       "http://l:1",
       "env:https_proxy"},
      {"https never falls back to HTTP_PROXY",
       {{"HTTP_PROXY", "http://h:1"}},
       {},
       true,
       Var::kHttps,
       "",
       "builtin"},
      {"HTTP_PROXY before http_proxy",
       {{"HTTP_PROXY", "http://u:2"}, {"http_proxy", "http://l:2"}},
       {},
       true,
       Var::kHttp,
       "http://u:2",
       "env:HTTP_PROXY"},
      {"http_proxy alone",
       {{"http_proxy", "http://l:2"}},
       {},
       true,
       Var::kHttp,
       "http://l:2",
       "env:http_proxy"},
      {"config HTTP_PROXY \"\" hides process HTTP_PROXY",
       {{"HTTP_PROXY", "http://u:2"}},
       {{"HTTP_PROXY", "", 9}},
       true,
       Var::kHttp,
       "",
       "cfg:9"},
      // GOPROXY / GOSUMDB defaults
      {"GOPROXY default", {}, {}, true, Var::kGoproxy, kGoDefault, "builtin"},
      {"GOPROXY empty = default",
       {{"GOPROXY", ""}},
       {},
       true,
       Var::kGoproxy,
       kGoDefault,
       "builtin"},
      {"GOPROXY from process", {{"GOPROXY", "off"}}, {}, true, Var::kGoproxy, "off", "env:GOPROXY"},
      {"GOPROXY config \"\" = default",
       {{"GOPROXY", "https://p"}},
       {{"GOPROXY", "", 3}},
       true,
       Var::kGoproxy,
       kGoDefault,
       "builtin"},
      {"GOPROXY from config",
       {},
       {{"GOPROXY", "https://m|direct", 3}},
       true,
       Var::kGoproxy,
       "https://m|direct",
       "cfg:3"},
      {"goproxy lowercase is not read",
       {{"goproxy", "x"}},
       {},
       true,
       Var::kGoproxy,
       kGoDefault,
       "builtin"},
      {"GOSUMDB default", {}, {}, true, Var::kGosumdb, "sum.golang.org", "builtin"},
      {"GOSUMDB empty = default",
       {{"GOSUMDB", ""}},
       {},
       true,
       Var::kGosumdb,
       "sum.golang.org",
       "builtin"},
      {"GOSUMDB off kept", {{"GOSUMDB", "off"}}, {}, true, Var::kGosumdb, "off", "env:GOSUMDB"},
      // GOPRIVATE defaulting
      {"GOPRIVATE unset", {}, {}, true, Var::kGoprivate, "", "builtin"},
      {"GONOPROXY defaults to GOPRIVATE",
       {{"GOPRIVATE", "*.corp"}},
       {},
       true,
       Var::kGonoproxy,
       "*.corp",
       "env:GOPRIVATE"},
      {"GONOPROXY empty defaults to GOPRIVATE",
       {{"GOPRIVATE", "*.corp"}, {"GONOPROXY", ""}},
       {},
       true,
       Var::kGonoproxy,
       "*.corp",
       "env:GOPRIVATE"},
      {"GONOPROXY set wins",
       {{"GOPRIVATE", "*.corp"}, {"GONOPROXY", "none"}},
       {},
       true,
       Var::kGonoproxy,
       "none",
       "env:GONOPROXY"},
      {"GONOSUMDB defaults to config GOPRIVATE",
       {{"GOPRIVATE", "a"}},
       {{"GOPRIVATE", "b", 7}},
       true,
       Var::kGonosumdb,
       "b",
       "cfg:7"},
      {"GONOSUMDB config \"\" defaults to GOPRIVATE",
       {{"GONOSUMDB", "x"}, {"GOPRIVATE", "a"}},
       {{"GONOSUMDB", "", 8}},
       true,
       Var::kGonosumdb,
       "a",
       "env:GOPRIVATE"},
      {"GONOSUMDB set, GOPRIVATE unset",
       {{"GONOSUMDB", "x"}},
       {},
       true,
       Var::kGonosumdb,
       "x",
       "env:GONOSUMDB"},
      {"GONOPROXY with nothing set", {}, {}, true, Var::kGonoproxy, "", "builtin"},
      {"values are verbatim (no trimming)",
       {{"GOPRIVATE", " a , b "}},
       {},
       true,
       Var::kGoprivate,
       " a , b ",
       "env:GOPRIVATE"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.title);
    EnvConfig env = resolveEnvironment(configEnv(c.config), c.inherit, c.process);
    const Sourced& got = pick(env, c.var);
    EXPECT_EQ(got.value, c.value);
    EXPECT_EQ(where(got.pos), c.source);
  }
}

TEST(EnvironmentTest, ConfigPositionsAreKept) {
  EnvConfig env = resolveEnvironment(configEnv({{"NO_PROXY", "a", 12}}), true, {});
  EXPECT_EQ(env.no_proxy.pos.file, "cfg.yaml");
  EXPECT_EQ(env.no_proxy.pos.line, 12);
  EXPECT_EQ(env.no_proxy.pos.column, 3);
  EXPECT_EQ(env.no_proxy.pos.str(), "cfg.yaml:12");
}

TEST(EnvironmentTest, MergeKeepsRawNamesAndIgnoresUnknownVariables) {
  EnvMap process{{"no_proxy", "p"}, {"PATH", "/bin"}, {"GOFLAGS", "-mod=mod"}};
  auto merged = mergeEnvironment(configEnv({{"NO_PROXY", "", 2}}), true, process);
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_EQ(merged.at("no_proxy").value, "p");
  EXPECT_EQ(merged.at("no_proxy").pos.env, "no_proxy");
  EXPECT_EQ(merged.at("NO_PROXY").value, "");
  EXPECT_EQ(merged.at("NO_PROXY").pos.line, 2);
  EXPECT_TRUE(mergeEnvironment({}, false, process).empty());
}

TEST(EnvironmentTest, KnownNames) {
  for (std::string_view name : kEnvNames) {
    EXPECT_TRUE(isKnownEnvName(name)) << name;
  }
  for (const char* name : {"goproxy", "No_Proxy", "ALL_PROXY", "GOINSECURE", ""}) {
    EXPECT_FALSE(isKnownEnvName(name)) << name;
  }
}

TEST(EnvironmentTest, ProcessEnvironmentReadsEnviron) {
  ASSERT_EQ(setenv("SWITCHYARD_ENV_TEST", "a=b", 1), 0);
  EnvMap env = processEnvironment();
  EXPECT_EQ(env["SWITCHYARD_ENV_TEST"], "a=b");  // only the first '=' separates
  ASSERT_EQ(unsetenv("SWITCHYARD_ENV_TEST"), 0);
  EXPECT_EQ(processEnvironment().count("SWITCHYARD_ENV_TEST"), 0u);
}

}  // namespace
}  // namespace switchyard::rules
