#include "rules/explain.h"

#include <charconv>

#include "rules/proxy_dialects.h"

namespace switchyard::rules {

namespace {

bool parsePort(std::string_view text, uint16_t* port) {
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// Splits "host[:port]" / "[v6][:port]" into host (brackets removed) and port.
bool splitAuthority(std::string_view authority, std::string* host, std::optional<uint16_t>* port,
                    std::string* error) {
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *error = "missing ']' in IPv6 address";
      return false;
    }
    *host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *error = "unexpected text after ']'";
        return false;
      }
      port_text = rest.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':') != colon) {
        *error = "an IPv6 address needs brackets: [" + std::string(authority) + "]";
        return false;
      }
      port_text = authority.substr(colon + 1);
      has_port = true;
      authority = authority.substr(0, colon);
    }
    *host = std::string(authority);
  }
  if (host->empty()) {
    *error = "empty host";
    return false;
  }
  if (has_port) {
    uint16_t value = 0;
    if (!parsePort(port_text, &value)) {
      *error = "bad port '" + std::string(port_text) + "'";
      return false;
    }
    *port = value;
  }
  return true;
}

nlohmann::json matchedJson(const MatchedEntry& m) {
  switch (m.kind) {
    case MatchedEntry::Kind::kNone:
      return "none";
    case MatchedEntry::Kind::kLoopback:
      return "loopback";
    case MatchedEntry::Kind::kEntry:
      break;
  }
  return {{"list", m.list}, {"index", m.index}, {"entry", m.entry}, {"how", m.how}};
}

// Lowercase first, and a set-but-empty lowercase variable still wins: both
// curl 7.88.1 and CPython read no_proxy that way.
std::string lowercaseFirst(const std::map<std::string, std::string>& env) {
  if (auto it = env.find("no_proxy"); it != env.end()) {
    return it->second;
  }
  if (auto it = env.find("NO_PROXY"); it != env.end()) {
    return it->second;
  }
  return "";
}

const char* yesNo(bool b) {
  return b ? "yes" : "no";
}

}  // namespace

bool parseExplainTarget(std::string_view text, std::string_view module, ExplainTarget* out,
                        std::string* error) {
  *out = ExplainTarget{};
  RequestFacts& facts = out->facts;
  if (!module.empty()) {
    facts.kind = RequestKind::kModuleProxy;
    facts.scheme = "https";
    facts.port = 0;
    facts.module = std::string(module);
    return true;
  }
  std::string_view authority = text;
  size_t scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos) {
    std::string scheme(text.substr(0, scheme_end));
    for (char& c : scheme) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (scheme != "http" && scheme != "https") {
      *error = "unsupported scheme '" + scheme + "' (http or https)";
      return false;
    }
    facts.scheme = scheme;
    facts.kind = scheme == "http" ? RequestKind::kAbsolute : RequestKind::kConnect;
    std::string_view rest = text.substr(scheme_end + 3);
    size_t end = rest.find_first_of("/?#");
    authority = rest.substr(0, end);
    facts.path = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
    if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
      authority = authority.substr(at + 1);  // credentials never decide anything
    }
  } else {
    facts.kind = RequestKind::kConnect;
    facts.scheme = "https";
  }
  if (!splitAuthority(authority, &facts.host, &out->explicit_port, error)) {
    return false;
  }
  facts.port = out->explicit_port.value_or(facts.scheme == "http" ? 80 : 443);
  return true;
}

std::map<std::string, std::string> mergedEnvironment(
    const Config& config, const std::map<std::string, std::string>& process_env) {
  std::map<std::string, std::string> env;
  if (config.inherit_env) {
    env = process_env;
  }
  for (const auto& [name, value] : config.env_keys) {
    env[name] = value.value;
  }
  return env;
}

ExplainResult explain(const ExplainTarget& target, const ConfigSnapshot& snapshot,
                      const std::map<std::string, std::string>& environment) {
  ExplainResult result;
  RequestFacts facts = target.facts;
  addModuleFacts(&facts, snapshot);
  result.decision = decide(facts, snapshot);
  const Decision& d = result.decision;

  nlohmann::json j;
  j["action"] = actionName(d.action);
  j["rule"] = d.rule;
  j["source"] = d.source.str();
  j["matched"] = matchedJson(d.matched);
  if (d.action == Action::kUpstream) {
    j["upstream"] = maskUrlCredentials(d.upstream);
  }
  if (d.action == Action::kMirror) {
    j["mirrors"] = d.mirrors;
  }
  j["bypass"] = d.bypass;
  j["no_proxy_matched"] = matchedJson(d.no_proxy_match);
  j["intercept"] = d.intercept;
  j["cache"] = d.cache;
  j["kind"] = requestKindName(facts.kind);
  j["config_gen"] = d.config_gen;
  j["module"] = facts.module ? nlohmann::json(*facts.module) : nlohmann::json(nullptr);
  if (!facts.host.empty()) {
    j["host"] = facts.host;
    j["port"] = facts.port;
  }

  nlohmann::json others = nlohmann::json::object();
  std::string curl_text;
  std::string python_text;
  if (facts.kind != RequestKind::kModuleProxy) {
    std::string value = lowercaseFirst(environment);
    bool curl = curlBypass(value, facts.host, facts.port);
    bool python = pythonBypass(value, facts.host, target.explicit_port);
    if (curl != d.bypass) {
      others["curl"] = {{"bypass", curl}};
    }
    if (python != d.bypass) {
      others["python"] = {{"bypass", python}};
    }
    curl_text = curl == d.bypass ? "agrees" : (curl ? "would bypass" : "would not bypass");
    python_text = python == d.bypass ? "agrees" : (python ? "would bypass" : "would not bypass");
  }
  j["others"] = others;

  std::string text;
  text += "target:   " + std::string(requestKindName(facts.kind));
  if (!facts.host.empty()) {
    text += " " + facts.host + ":" + std::to_string(facts.port);
  }
  if (facts.module) {
    text += " module " + *facts.module;
  }
  text += "\naction:   " + std::string(actionName(d.action));
  if (d.action == Action::kUpstream) {
    text += " via " + maskUrlCredentials(d.upstream);
  } else if (d.action == Action::kMirror) {
    text += " to " + d.mirrors;
  }
  text += "\nrule:     " + d.rule + " (" + d.source.str() + ")";
  text += "\nmatched:  " + d.matched.describe();
  if (facts.kind != RequestKind::kModuleProxy) {
    text += "\nNO_PROXY: " + std::string(d.bypass ? "bypass" : "no bypass") +
            " (Go: " + d.no_proxy_match.describe() + "); curl " + curl_text + ", python " +
            python_text;
  }
  if (d.module) {
    const auto& m = *d.module;
    j["gonoproxy"] = m.gonoproxy;
    j["leak_guard"] = d.leak_guard ? nlohmann::json(*d.leak_guard) : nlohmann::json(nullptr);
    j["gonosumdb"] = m.gonosumdb;
    j["gonoproxy_pattern"] =
        m.gonoproxy_pattern ? nlohmann::json(*m.gonoproxy_pattern) : nlohmann::json(nullptr);
    j["gonosumdb_pattern"] =
        m.gonosumdb_pattern ? nlohmann::json(*m.gonosumdb_pattern) : nlohmann::json(nullptr);
    text += "\nmodule:   gonoproxy=" + std::string(yesNo(m.gonoproxy));
    if (m.gonoproxy_pattern) {
      text += " (pattern \"" + *m.gonoproxy_pattern + "\")";
    }
    text += " gonosumdb=" + std::string(yesNo(m.gonosumdb));
    if (m.gonosumdb_pattern) {
      text += " (pattern \"" + *m.gonosumdb_pattern + "\")";
    }
    if (d.leak_guard) {
      text += "\nleak guard: " + *d.leak_guard;
    }
  }
  text += "\n";
  result.json = std::move(j);
  result.text = std::move(text);
  return result;
}

}  // namespace switchyard::rules
