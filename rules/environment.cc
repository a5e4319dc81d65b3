#include "rules/environment.h"

#include <algorithm>

extern char** environ;  // POSIX; not declared by <unistd.h> without _GNU_SOURCE

namespace switchyard::rules {

namespace {

using SourcedMap = std::map<std::string, Sourced>;

const Sourced* find(const SourcedMap& vars, const char* name) {
  auto it = vars.find(name);
  return it == vars.end() ? nullptr : &it->second;
}

// Go's rule for a pair such as NO_PROXY / no_proxy: the first non-empty one
// wins; an empty value counts as unset.
Sourced pickPair(const SourcedMap& vars, const char* upper, const char* lower) {
  const Sourced* up = find(vars, upper);
  const Sourced* low = find(vars, lower);
  if (up != nullptr && !up->value.empty()) {
    return *up;
  }
  if (low != nullptr && !low->value.empty()) {
    return *low;
  }
  Sourced empty;
  if (up != nullptr) {
    empty.pos = up->pos;
  } else if (low != nullptr) {
    empty.pos = low->pos;
  }
  return empty;
}

// A single variable; unset or empty gives `fallback` (a built-in default or
// another variable's effective value).
Sourced pickOr(const SourcedMap& vars, const char* name, const Sourced& fallback) {
  const Sourced* var = find(vars, name);
  if (var != nullptr && !var->value.empty()) {
    return *var;
  }
  return fallback;
}

Sourced builtin(std::string_view value) {
  return Sourced{std::string(value), SourcePos{}};
}

}  // namespace

bool isKnownEnvName(std::string_view name) {
  return std::find(kEnvNames.begin(), kEnvNames.end(), name) != kEnvNames.end();
}

EnvMap processEnvironment() {
  EnvMap env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      continue;
    }
    // emplace keeps the first occurrence of a duplicated name, as getenv() does.
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

SourcedMap mergeEnvironment(const SourcedMap& config_env, bool inherit_env,
                            const EnvMap& process_env) {
  SourcedMap merged;
  if (inherit_env) {
    for (std::string_view name : kEnvNames) {
      auto it = process_env.find(std::string(name));
      if (it != process_env.end()) {
        SourcePos pos;
        pos.env = it->first;
        merged[it->first] = Sourced{it->second, pos};
      }
    }
  }
  for (const auto& [name, value] : config_env) {
    merged[name] = value;
  }
  return merged;
}

EnvConfig resolveEnvironment(const SourcedMap& config_env, bool inherit_env,
                             const EnvMap& process_env) {
  SourcedMap vars = mergeEnvironment(config_env, inherit_env, process_env);
  EnvConfig env;
  env.goproxy = pickOr(vars, "GOPROXY", builtin(kDefaultGoproxy));
  env.gosumdb = pickOr(vars, "GOSUMDB", builtin(kDefaultGosumdb));
  if (const Sourced* goprivate = find(vars, "GOPRIVATE")) {
    env.goprivate = *goprivate;
  }
  env.gonoproxy = pickOr(vars, "GONOPROXY", env.goprivate);
  env.gonosumdb = pickOr(vars, "GONOSUMDB", env.goprivate);
  env.no_proxy = pickPair(vars, "NO_PROXY", "no_proxy");
  env.https_proxy = pickPair(vars, "HTTPS_PROXY", "https_proxy");
  env.http_proxy = pickPair(vars, "HTTP_PROXY", "http_proxy");
  return env;
}

}  // namespace switchyard::rules
