// explain: the decision for one target, as text or JSON, plus how other
// tools (curl, Python) would read the same NO_PROXY. Pure: the caller passes
// the environment in.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "rules/decision.h"
#include "rules/snapshot.h"

namespace switchyard::rules {

struct ExplainTarget {
  RequestFacts facts;
  std::optional<uint16_t> explicit_port;  // as written; Python ignores default ports
};

// Reads "http://host[:port]/path", "https://…" (a CONNECT through a proxy),
// or a bare "host[:port]" / "[v6]:port" CONNECT target (port 443 if absent),
// or, with `module` non-empty, a module-proxy request for that module.
bool parseExplainTarget(std::string_view text, std::string_view module, ExplainTarget* out,
                        std::string* error);

struct ExplainResult {
  Decision decision;
  nlohmann::json json;  // DESIGN.md's explain object
  std::string text;     // the same facts, for people
};

// `environment` is the merged environment the tools would see: the process
// environment (when inherit_env) with the config's `env:` keys over it.
ExplainResult explain(const ExplainTarget& target, const ConfigSnapshot& snapshot,
                      const std::map<std::string, std::string>& environment);

// The environment the other tools see for a config: process variables (when
// `inherit_env`) with the config's `env:` keys written over them.
std::map<std::string, std::string> mergedEnvironment(
    const Config& config, const std::map<std::string, std::string>& process_env);

}  // namespace switchyard::rules
