#include "rules/decision.h"

#include "rules/goproxy_request.h"

#include <limits>

#include "rules/snapshot_compiled.h"

namespace switchyard::rules {

namespace {

constexpr int kNoRule = std::numeric_limits<int>::max();

MatchedEntry fromHostMatch(const HostListMatch& m, std::string list) {
  MatchedEntry e;
  e.kind = MatchedEntry::Kind::kEntry;
  e.list = std::move(list);
  e.index = m.index;
  e.entry = m.entry;
  e.how = hostMatchHowName(m.how);
  return e;
}

MatchedEntry fromPatternMatch(const PatternMatch& m, std::string list) {
  MatchedEntry e;
  e.kind = MatchedEntry::Kind::kEntry;
  e.list = std::move(list);
  e.index = m.index;
  e.entry = m.pattern;
  e.how = "glob";
  return e;
}

// The first explicit rule that matches, with the entry that made it match.
// Host-only and module-only rules come from their indexes; rules that need
// both are few and checked in order, only while they could still win.
std::optional<std::pair<int, MatchedEntry>> firstMatchingRule(const RequestFacts& facts,
                                                              const HostKey* host,
                                                              const ConfigSnapshot& snap) {
  const auto& compiled = snap.compiled();
  const auto& rules = snap.config().rules;
  int best = kNoRule;
  MatchedEntry best_entry;
  if (host) {
    if (auto m = compiled.host_rules.match(*host, facts.port)) {
      best = m->list_id;
      best_entry = fromHostMatch(*m, "rule:" + rules[m->list_id].name);
    }
  }
  if (facts.module) {
    if (auto m = compiled.module_rules.match(*facts.module)) {
      if (m->list_id < best) {
        best = m->list_id;
        best_entry = fromPatternMatch(*m, "rule:" + rules[m->list_id].name);
      }
    }
  }
  if (host && facts.module) {
    for (const auto& both : compiled.both_rules) {
      if (both.index >= best) {
        break;
      }
      auto hm = both.hosts.match(*host, facts.port);
      if (hm && both.modules.match(*facts.module)) {
        best = both.index;
        best_entry = fromHostMatch(*hm, "rule:" + rules[both.index].name);
        break;
      }
    }
  }
  if (best == kNoRule) {
    return std::nullopt;
  }
  return std::make_pair(best, std::move(best_entry));
}

void applyRule(const RuleConfig& rule, Decision* d) {
  d->action = rule.action;
  d->rule = rule.name;
  d->source = rule.pos;
  d->intercept = rule.intercept;
  d->cache = rule.cache;
  d->allow_private = rule.allow_private;
  if (rule.action == Action::kUpstream) {
    d->upstream = rule.upstream.value;
  } else if (rule.action == Action::kMirror) {
    d->mirrors = rule.mirrors.value;
  }
}

}  // namespace

Decision decide(const RequestFacts& facts, const ConfigSnapshot& snapshot) {
  const Config& config = snapshot.config();
  const auto& compiled = snapshot.compiled();
  const EnvConfig& env = config.env;
  Decision d;
  d.config_gen = snapshot.generation();

  // Module-proxy requests are about a module, not a host we would connect to.
  std::optional<HostKey> host;
  if (facts.kind != RequestKind::kModuleProxy && !facts.host.empty()) {
    host = HostKey::from(facts.host);
    NoProxyVerdict verdict = compiled.no_proxy.evaluate(*host, facts.port);
    d.bypass = verdict.bypass;
    if (verdict.loopback) {
      d.no_proxy_match.kind = MatchedEntry::Kind::kLoopback;
    } else if (verdict.match) {
      d.no_proxy_match = fromHostMatch(*verdict.match, "NO_PROXY");
    }
  }
  if (facts.module) {
    Decision::ModuleVerdict mv;
    if (auto m = compiled.gonoproxy.match(*facts.module)) {
      mv.gonoproxy = true;
      mv.gonoproxy_pattern = m->pattern;
    }
    if (auto m = compiled.gonosumdb.match(*facts.module)) {
      mv.gonosumdb = true;
      mv.gonosumdb_pattern = m->pattern;
    }
    if (!facts.sumdb_lookup && mv.gonoproxy) {
      d.leak_guard = "module " + *facts.module + " matches GONOPROXY pattern \"" +
                     *mv.gonoproxy_pattern + "\" (" + env.gonoproxy.pos.str() +
                     "): it is sent to no proxy, mirror or origin";
    } else if (facts.sumdb_lookup && mv.gonosumdb) {
      d.leak_guard = "module " + *facts.module + " matches GONOSUMDB pattern \"" +
                     *mv.gonosumdb_pattern + "\" (" + env.gonosumdb.pos.str() +
                     "): its checksum is looked up in no database";
    }
    d.module = std::move(mv);
  }

  if (auto hit = firstMatchingRule(facts, host ? &*host : nullptr, snapshot)) {
    applyRule(config.rules[hit->first], &d);
    d.matched = std::move(hit->second);
    return d;
  }

  // Implicit rules, derived from the environment (DESIGN.md).
  if (facts.kind == RequestKind::kModuleProxy) {
    // We are the GOPROXY: fetch through our own GOPROXY list.
    d.action = Action::kMirror;
    d.rule = "env:GOPROXY";
    d.source = env.goproxy.pos;
    d.mirrors = compiled.goproxy.text;
    return d;
  }
  if (d.bypass) {
    d.action = Action::kDirect;
    d.rule = "env:NO_PROXY";
    d.source = env.no_proxy.pos;
    d.matched = d.no_proxy_match;
    return d;
  }
  const bool https = facts.kind == RequestKind::kConnect || facts.scheme == "https";
  const Sourced& parent = https ? env.https_proxy : env.http_proxy;
  if (!parent.value.empty()) {
    d.action = Action::kUpstream;
    d.rule = https ? "env:HTTPS_PROXY" : "env:HTTP_PROXY";
    d.source = parent.pos;
    d.upstream = parent.value;
    return d;
  }
  d.action = Action::kDirect;
  d.rule = "default";
  return d;
}

void addModuleFacts(RequestFacts* facts, const ConfigSnapshot& snapshot) {
  if (facts->kind == RequestKind::kModuleProxy || facts->module || facts->path.empty()) {
    return;
  }
  const GosumdbConfig& sumdb = snapshot.compiled().gosumdb;
  auto ref = moduleReferenceOf(facts->host, facts->path, sumdb.off ? "" : sumdb.name);
  if (ref) {
    facts->module = ref->request.module;
    facts->sumdb_lookup = ref->sumdb_lookup;
  }
}

}  // namespace switchyard::rules

namespace switchyard::rules {

std::string maskUrlCredentials(const std::string& url) {
  size_t sep = url.find("://");
  size_t start = sep == std::string::npos ? 0 : sep + 3;
  // The authority ends at the path, query or fragment; an '@' after that is
  // data, and the last '@' inside it ends the userinfo.
  size_t end = url.find_first_of("/?#", start);
  size_t at = url.rfind('@', end == std::string::npos ? std::string::npos : end - 1);
  if (at == std::string::npos || at < start || (end != std::string::npos && at > end)) {
    return url;
  }
  size_t colon = url.find(':', start);
  // "user:password@": the user stays readable. A lone "token@" (the form of
  // many API tokens) is all secret.
  if (colon == std::string::npos || colon > at) {
    return url.substr(0, start) + "***" + url.substr(at);
  }
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::string MatchedEntry::describe() const {
  switch (kind) {
    case Kind::kNone:
      return "none";
    case Kind::kLoopback:
      return "loopback";
    case Kind::kEntry:
      break;
  }
  return list + " entry \"" + entry + "\" (" + how + ")";
}

std::string Decision::describe() const {
  std::string out = std::string(actionName(action)) + " by rule " + rule + " (" + source.str() +
                    "): " + matched.describe();
  return out;
}

}  // namespace switchyard::rules

namespace switchyard::rules {

const char* requestKindName(RequestKind kind) {
  switch (kind) {
    case RequestKind::kConnect:
      return "connect";
    case RequestKind::kAbsolute:
      return "absolute";
    case RequestKind::kIntercepted:
      return "intercepted";
    case RequestKind::kModuleProxy:
      return "module-proxy";
  }
  return "?";
}

}  // namespace switchyard::rules
