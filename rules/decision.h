// decide(): the one pure function that turns a request's facts and a config
// snapshot into what to do, with the full trace of why. The daemon, the
// `explain` command and the admin /explain endpoint all call it, so they can
// never disagree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "rules/config.h"

namespace switchyard::rules {

class ConfigSnapshot;

// How the request reached us; it decides which facts are visible (a CONNECT
// shows only host:port, a module-proxy request shows the module path).
enum class RequestKind {
  kConnect,      // CONNECT host:port
  kAbsolute,     // GET http://host/path (plain HTTP proxying)
  kIntercepted,  // an inner request of an intercepted (TLS-terminated) tunnel
  kModuleProxy,  // origin-form GET /<module>/@v/... (we are the GOPROXY)
};
const char* requestKindName(RequestKind kind);

struct RequestFacts {
  RequestKind kind = RequestKind::kConnect;
  std::string scheme = "https";       // "http" or "https"
  std::string host;                   // as received, IPv6 brackets removed
  uint16_t port = 443;                // effective port (explicit, else scheme default)
  std::string path;                   // path + query, when visible
  std::optional<std::string> module;  // module path (unescaped), when known
  // The module path comes from a checksum-database lookup
  // (`/lookup/<module>@<version>`), which GONOSUMDB guards, not GONOPROXY.
  bool sumdb_lookup = false;
};

// Which list entry made a rule or NO_PROXY match.
struct MatchedEntry {
  enum class Kind { kNone, kLoopback, kEntry };
  Kind kind = Kind::kNone;
  std::string list;   // "NO_PROXY", "rule:<name>"
  int index = -1;     // 0-based position in the comma split, empty pieces counted
  std::string entry;  // the piece, trimmed and lowercased (patterns: as written)
  std::string how;    // name | subdomain | ip | cidr | glob | any

  // `NO_PROXY entry ".corp.example.com" (subdomain)`, `loopback`, `none`.
  std::string describe() const;
};

struct Decision {
  Action action = Action::kDirect;
  std::string rule;  // rule name; implicit rules: "env:NO_PROXY", "env:HTTPS_PROXY",
                     // "env:HTTP_PROXY", "default"
  SourcePos source;  // where the rule (or the env value) was written
  MatchedEntry matched;
  std::string upstream;  // parent proxy URL for kUpstream (may carry credentials)
  std::string mirrors;   // GOPROXY-syntax list for kMirror
  bool intercept = false;
  bool cache = false;
  bool allow_private = false;
  // Go's NO_PROXY verdict for this host, even when no parent proxy is set.
  bool bypass = false;
  MatchedEntry no_proxy_match;  // what NO_PROXY matched (for explain)
  uint64_t config_gen = 0;

  // For requests that name a Go module: whether GONOPROXY / GONOSUMDB cover
  // it (the leak guard), and the first pattern that matched, as written.
  struct ModuleVerdict {
    bool gonoproxy = false;
    std::optional<std::string> gonoproxy_pattern;
    bool gonosumdb = false;
    std::optional<std::string> gonosumdb_pattern;
  };
  std::optional<ModuleVerdict> module;
  // Set when the leak guard stops the request whatever the rule says: a
  // module fetch for a GONOPROXY module, or a checksum lookup for a
  // GONOSUMDB one. The sentence says which pattern of which variable matched;
  // the daemon answers 404 with it and sends the request nowhere.
  std::optional<std::string> leak_guard;

  // One readable sentence: "direct by rule private-modules (cfg.yaml:12):
  // module pattern "git.company.com" (glob)".
  std::string describe() const;
};

Decision decide(const RequestFacts& facts, const ConfigSnapshot& snapshot);

// Fills facts->module and facts->sumdb_lookup from facts->host and
// facts->path when the path is GOPROXY-protocol traffic (moduleReferenceOf,
// with the snapshot's GOSUMDB name), so that the leak guard and module
// rules apply to absolute-form and intercepted requests too. Leaves module
// requests (kModuleProxy) and facts that already name a module alone.
void addModuleFacts(RequestFacts* facts, const ConfigSnapshot& snapshot);

// Masks credentials in a URL: "http://user:pass@h:1" -> "http://user:***@h:1",
// "http://token@h" -> "http://***@h". No credential reaches a log or a page.
std::string maskUrlCredentials(const std::string& url);

}  // namespace switchyard::rules
