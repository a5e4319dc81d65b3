// Loading and validating the YAML config (DESIGN.md "Config (YAML)").
//
// The loader reports every problem it finds, not just the first, each as
// "file:line:col: message" with 1-based positions, and yields a Config only
// when there were none. Unknown keys are errors. yaml-cpp exceptions are
// caught here and nowhere else; none escape.
//
// What is validated here: structure, types, addresses, URLs, CIDRs, ports,
// durations, sizes and the rules' internal consistency. What is not: the
// content of GOPROXY / `mirrors` lists and of NO_PROXY / GOPRIVATE patterns,
// which only need to be strings here (ConfigSnapshot::build compiles them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/config.h"
#include "rules/environment.h"

namespace switchyard::rules {

struct LoadResult {
  std::optional<Config> config;     // set iff errors is empty
  std::vector<std::string> errors;  // "file:line:col: message", in file order
};

// Reads and loads `path`. A file that cannot be read gives the single error
// "path: cannot open: <reason>". `process_env` is used for the variables the
// config's `env:` leaves out (when inherit_env).
LoadResult loadConfigFile(const std::string& path, const EnvMap& process_env);

// Loads YAML text; `file_name` is used in errors and SourcePos.
LoadResult loadConfigString(const std::string& yaml, const std::string& file_name,
                            const EnvMap& process_env);

// The built-in default (no config file): listen 127.0.0.1:3128, no explicit
// rules, the environment from `process_env`.
Config defaultConfig(const EnvMap& process_env);

// One line for `switchyard check`, e.g. "ok: 2 listeners, 5 rules, env from
// config (GOPROXY, NO_PROXY) and process (GOPRIVATE)".
std::string summarizeConfig(const Config& config);

// The validators the loader uses, for other inputs of the same kinds
// (--listen, the process's HTTPS_PROXY). Each returns false / nullopt and
// sets *error (when not null) to a reason without position.

// "host:port" or "[v6]:port"; host an IP literal, "localhost" or empty (all
// IPv4 interfaces); port 0..65535 (0 = any free port, for tests).
bool validateListenAddress(std::string_view text, std::string* error);

// An IP address or a CIDR ("10.0.0.0/8", "::1", "2001:db8::/32").
bool validateCidr(std::string_view text, std::string* error);

// An IP literal without brackets.
bool isIpLiteral(std::string_view text);

// A parent proxy URL: http:// or https://, optional user:pass (percent-
// decoded here), a host name, IPv4 or [IPv6], optional port (default 80 for
// http, 443 for https, as Go's net/http does), no path beyond "/", no query.
struct ProxyUrl {
  std::string scheme;  // "http" or "https", lowercased
  std::string user;    // percent-decoded; empty when absent
  std::string password;
  bool has_credentials = false;
  std::string host;  // IPv6 without brackets
  uint16_t port = 0;
};
// With scheme_optional, a value without "://" is read as "http://" + value,
// as Go does for HTTPS_PROXY / HTTP_PROXY.
std::optional<ProxyUrl> parseProxyUrl(std::string_view text, bool scheme_optional,
                                      std::string* error);

}  // namespace switchyard::rules
