// The compiled half of a ConfigSnapshot. Only rules/ code that decides
// (decide.cc, explain.cc) includes this; everyone else sees snapshot.h.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rules/goproxy_list.h"
#include "rules/gosumdb.h"
#include "rules/host_match.h"
#include "rules/module_pattern.h"
#include "rules/no_proxy.h"
#include "rules/snapshot.h"

namespace switchyard::rules {

struct ConfigSnapshot::Compiled {
  // Rules whose match has only `hosts`, indexed together: list_id = rule
  // index, so the index returns the first such rule in config order.
  HostMatcher host_rules;
  // Rules whose match has only `modules`, likewise.
  ModulePatternMatcher module_rules;
  // Rules that constrain both host and module are rare; they are checked
  // one by one, each with its own small matchers.
  struct BothRule {
    int index;
    HostMatcher hosts;
    ModulePatternMatcher modules;
  };
  std::vector<BothRule> both_rules;

  NoProxyList no_proxy;
  ModulePatternMatcher gonoproxy;  // one list, id 0
  ModulePatternMatcher gonosumdb;
  GoproxyList goproxy;  // env GOPROXY, with the implicit noproxy step if due
  GosumdbConfig gosumdb;
  // Parsed `mirrors:` of each rule (nullopt for rules that are not mirrors).
  std::vector<std::optional<GoproxyList>> rule_mirrors;
};

}  // namespace switchyard::rules
