#include "rules/snapshot.h"

#include "rules/snapshot_compiled.h"

namespace switchyard::rules {

namespace {

// "file:line:col: " for a config value, "env:NAME: " for one from the process
// environment: the same shape as every other config error.
std::string errorPrefix(const SourcePos& pos) {
  if (!pos.file.empty()) {
    return pos.file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": ";
  }
  if (!pos.env.empty()) {
    return "env:" + pos.env + ": ";
  }
  return "builtin: ";
}

}  // namespace

ConfigSnapshotPtr ConfigSnapshot::build(Config config, uint64_t generation,
                                        std::vector<std::string>* errors) {
  std::shared_ptr<ConfigSnapshot> snap(new ConfigSnapshot());
  auto compiled = std::make_unique<Compiled>();
  size_t errors_before = errors->size();
  const EnvConfig& env = config.env;

  for (size_t i = 0; i < config.rules.size(); ++i) {
    const RuleConfig& rule = config.rules[i];
    int id = static_cast<int>(i);
    if (rule.hosts && rule.modules) {
      Compiled::BothRule both{id, {}, {}};
      both.hosts.addList(0, rule.hosts->value);
      both.modules.addList(0, rule.modules->value);
      compiled->both_rules.push_back(std::move(both));
    } else if (rule.hosts) {
      compiled->host_rules.addList(id, rule.hosts->value);
    } else if (rule.modules) {
      compiled->module_rules.addList(id, rule.modules->value);
    }
    std::optional<GoproxyList> mirrors;
    if (rule.action == Action::kMirror) {
      GoproxyList list;
      std::string error;
      // A rule's mirrors are walked for any module; GONOPROXY is enforced by
      // the leak guard before the walk, so no implicit noproxy step here.
      if (parseGoproxyList(rule.mirrors.value, false, &list, &error)) {
        mirrors = std::move(list);
      } else {
        errors->push_back(errorPrefix(rule.mirrors.pos) + "rule " + rule.name +
                          ": mirrors: " + error);
      }
    }
    compiled->rule_mirrors.push_back(std::move(mirrors));
  }

  compiled->no_proxy = NoProxyList::parse(env.no_proxy.value);
  compiled->gonoproxy.addList(0, env.gonoproxy.value);
  compiled->gonosumdb.addList(0, env.gonosumdb.value);
  std::string error;
  bool insert_noproxy = !env.gonoproxy.value.empty() && env.goproxy.value != "direct";
  if (!parseGoproxyList(env.goproxy.value, insert_noproxy, &compiled->goproxy, &error)) {
    errors->push_back(errorPrefix(env.goproxy.pos) + "GOPROXY: " + error);
  }
  if (!parseGosumdb(env.gosumdb.value, &compiled->gosumdb, &error)) {
    errors->push_back(errorPrefix(env.gosumdb.pos) + "GOSUMDB: " + error);
  }
  if (errors->size() != errors_before) {
    return nullptr;
  }
  snap->config_ = std::move(config);
  snap->generation_ = generation;
  snap->compiled_ = std::move(compiled);
  return snap;
}

ConfigSnapshot::~ConfigSnapshot() = default;

}  // namespace switchyard::rules
