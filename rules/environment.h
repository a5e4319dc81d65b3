// The Go / no_proxy environment: which variables Switchyard reads, how the
// config's `env:` keys are merged over the process environment, and Go's
// precedence between them (SEMANTICS.md A.3, C.1, F.1). The process
// environment is read in exactly one place, processEnvironment(); everything
// else takes it as data so that tests and `explain` can pass their own.
#pragma once

#include <array>
#include <map>
#include <string>
#include <string_view>

#include "rules/config.h"
#include "rules/goproxy_list.h"  // kDefaultGoproxy
#include "rules/gosumdb.h"       // kDefaultGosumdb

namespace switchyard::rules {

// The process environment (or a test's stand-in for it): name -> value.
using EnvMap = std::map<std::string, std::string>;

// Every variable Switchyard reads, in the order `import-env` prints them.
// These are also the only keys allowed under `env:` in the config.
inline constexpr std::array<std::string_view, 11> kEnvNames{
    "GOPROXY",  "GOPRIVATE",   "GONOPROXY",   "GONOSUMDB",  "GOSUMDB",    "NO_PROXY",
    "no_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
};
bool isKnownEnvName(std::string_view name);

// The go command's defaults for an unset or empty variable.

// Reads `environ`. The only function in rules/ that looks at the process.
EnvMap processEnvironment();

// The raw variables after merging and before Go's precedence: the process's
// known variables (each with SourcePos.env = its name) when inherit_env, then
// every `env:` key of the config over them, "" included. Useful to tools that
// read the variables with other precedence rules (curl, Python).
std::map<std::string, Sourced> mergeEnvironment(const std::map<std::string, Sourced>& config_env,
                                                bool inherit_env, const EnvMap& process_env);

// mergeEnvironment(), then Go's precedence on the merged set:
//  - NO_PROXY before no_proxy, HTTPS_PROXY before https_proxy, HTTP_PROXY
//    before http_proxy; an empty value counts as unset (uppercase "" lets a
//    non-empty lowercase through). HTTPS never falls back to HTTP_PROXY.
//  - GOPROXY unset or empty -> kDefaultGoproxy; GOSUMDB likewise ->
//    kDefaultGosumdb (both with an empty SourcePos: built in).
//  - GONOPROXY / GONOSUMDB unset or empty -> GOPRIVATE (its value and its
//    SourcePos, since that is where the effective value was written).
// A result that stays empty keeps the SourcePos of the variable that made it
// empty (uppercase first), so `NO_PROXY: ""` in the config is attributed to
// the config; nothing set at all gives an empty SourcePos.
EnvConfig resolveEnvironment(const std::map<std::string, Sourced>& config_env, bool inherit_env,
                             const EnvMap& process_env);

}  // namespace switchyard::rules
