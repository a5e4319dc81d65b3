// The configuration model: what a YAML file (or the built-in default plus the
// environment) says, with the source position of every value, so decisions
// and errors can name `file:line`. Loading lives in config_loader.h; the
// compiled, immutable form used by decide() is ConfigSnapshot (snapshot.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::rules {

// Where a value came from. `file` empty and `env` set: the process
// environment (`env:NAME`); both empty: the built-in default.
struct SourcePos {
  std::string file;
  int line = 0;  // 1-based; 0 = unknown
  int column = 0;
  std::string env;  // environment variable name when taken from the process

  // "file:line", "env:NAME" or "builtin".
  std::string str() const;
};

// A string value and where it was written.
struct Sourced {
  std::string value;
  SourcePos pos;
};

enum class Action { kDirect, kUpstream, kMirror, kDeny };
const char* actionName(Action action);

struct RuleConfig {
  std::string name;
  SourcePos pos;  // position of the rule's `- name:` item
  // match: both may be set; then both must match. Absent = not constrained.
  std::optional<Sourced> hosts;    // NO_PROXY syntax
  std::optional<Sourced> modules;  // GOPRIVATE syntax
  Action action = Action::kDirect;
  Sourced mirrors;   // GOPROXY syntax, for kMirror
  Sourced upstream;  // parent proxy URL, for kUpstream (may carry user:pass)
  bool intercept = false;
  bool cache = false;
  bool allow_private = false;
};

// The Go / no_proxy environment after merging `env:` over the process
// environment (when inherit_env) and applying Go's precedence: each field is
// the effective value, with where it came from. Unset = empty value.
struct EnvConfig {
  Sourced goproxy;  // after defaulting: "https://proxy.golang.org,direct"
  Sourced goprivate;
  Sourced gonoproxy;  // after defaulting to GOPRIVATE when unset or empty
  Sourced gonosumdb;  // likewise
  Sourced gosumdb;    // default "sum.golang.org"
  Sourced no_proxy;   // NO_PROXY, else no_proxy (empty = unset)
  Sourced https_proxy;
  Sourced http_proxy;
};

struct TlsConfig {
  std::string ca_dir;  // empty: no interception possible
  std::string upstream_ca_file;
};

struct CacheConfig {
  std::string dir;  // empty: no disk cache
  uint64_t max_size = 10ull << 30;
  std::chrono::milliseconds mutable_ttl{5 * 60 * 1000};
};

struct AccessConfig {
  std::vector<std::string> allow_clients{"127.0.0.0/8", "::1"};  // CIDRs or IPs
  std::vector<uint16_t> connect_ports{443};
  bool deny_private_destinations = false;
  std::string users_file;
  std::vector<std::string> admin_allow_clients{"127.0.0.0/8", "::1"};
};

struct LimitsConfig {
  uint32_t max_connections = 10000;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{5 * 60'000};
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds response_timeout{60'000};
  uint32_t max_header_bytes = 65536;
  uint32_t max_connections_per_client = 1000;
  std::chrono::milliseconds drain_timeout{30'000};
  // After activity, keep polling without sleeping for an adaptive window of
  // at most this long (0: off). See daemon/busy_poll.h.
  std::chrono::microseconds busy_poll{200};
  // Bulk tunnel bytes move socket to socket with splice(2), not through
  // memory. See daemon/splice_pipe.h.
  bool splice = true;
};

struct LogConfig {
  std::string level = "info";
  std::string format = "text";       // text | json
  std::string decisions = "stderr";  // stderr | stdout | file path
};

struct Config {
  std::string file;  // the YAML file, empty for the built-in default
  std::vector<std::string> listen{"127.0.0.1:3128"};
  std::string admin;  // empty: no admin listener
  bool inherit_env = true;
  // The `env:` keys exactly as written (name -> value), before merging. Other
  // tools read the variables with other precedence rules, so `explain` needs
  // the raw names, not only Go's effective values in `env`.
  std::map<std::string, Sourced> env_keys;
  EnvConfig env;
  std::vector<RuleConfig> rules;
  std::map<std::string, std::string> resolve;  // name -> IP literal
  TlsConfig tls;
  CacheConfig cache;
  AccessConfig access;
  LimitsConfig limits;
  LogConfig log;
};

}  // namespace switchyard::rules
