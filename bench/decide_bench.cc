// decide() cost as the rule set grows: 100 vs 10,000 host entries (exact
// names, subdomain suffixes and CIDRs, one rule each) plus module-pattern
// rules. The ratio between sizes shows whether matching is indexed.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "rules/decision.h"
#include "rules/snapshot.h"

namespace {

using namespace switchyard::rules;

ConfigSnapshotPtr makeSnapshot(int host_entries, int module_patterns) {
  Config c;
  c.file = "bench.yaml";
  for (int i = 0; i < host_entries; ++i) {
    RuleConfig r;
    r.name = "h" + std::to_string(i);
    r.pos = {"bench.yaml", i + 1, 3, ""};
    r.action = i % 7 == 0 ? Action::kDeny : Action::kDirect;
    std::string entry;
    switch (i % 3) {
      case 0:
        entry = "host" + std::to_string(i) + ".example.com";
        break;
      case 1:
        entry = ".zone" + std::to_string(i) + ".example.net";
        break;
      default:
        entry = "10." + std::to_string((i / 256) % 256) + "." + std::to_string(i % 256) + ".0/24";
        break;
    }
    r.hosts = Sourced{entry, r.pos};
    c.rules.push_back(r);
  }
  for (int i = 0; i < module_patterns; ++i) {
    RuleConfig r;
    r.name = "m" + std::to_string(i);
    r.pos = {"bench.yaml", host_entries + i + 1, 3, ""};
    r.action = Action::kDirect;
    std::string pattern = i % 4 == 0 ? "*.corp" + std::to_string(i) + ".internal"
                                     : "github.com/org" + std::to_string(i);
    r.modules = Sourced{pattern, r.pos};
    c.rules.push_back(r);
  }
  c.env.goproxy = {"https://proxy.golang.org,direct", {}};
  c.env.gosumdb = {"sum.golang.org", {}};
  c.env.no_proxy = {"localhost,.internal.example,192.168.0.0/16", {}};
  c.env.https_proxy = {"http://parent:3128", {}};
  std::vector<std::string> errors;
  return ConfigSnapshot::build(std::move(c), 1, &errors);
}

std::vector<RequestFacts> queries(int n) {
  std::vector<RequestFacts> out;
  for (int i = 0; i < 64; ++i) {
    RequestFacts f;
    f.kind = RequestKind::kConnect;
    f.port = 443;
    int k = (i * 7919) % (n > 0 ? n : 1);
    switch (i % 5) {
      case 0:
        f.host = "host" + std::to_string(k - k % 3) + ".example.com";
        break;
      case 1:
        f.host = "a.b.zone" + std::to_string(k - k % 3 + 1) + ".example.net";
        break;
      case 2:
        f.host = "10." + std::to_string((k / 256) % 256) + "." + std::to_string(k % 256) + ".9";
        break;
      case 3:
        f.host = "miss" + std::to_string(i) + ".nowhere.org";
        break;
      default:
        f.kind = RequestKind::kModuleProxy;
        f.module = "github.com/org" + std::to_string(i % 40) + "/repo/v2";
        break;
    }
    out.push_back(f);
  }
  return out;
}

void BM_Decide(benchmark::State& state) {
  int hosts = static_cast<int>(state.range(0));
  int modules = static_cast<int>(state.range(1));
  ConfigSnapshotPtr snap = makeSnapshot(hosts, modules);
  if (!snap) {
    state.SkipWithError("snapshot failed");
    return;
  }
  std::vector<RequestFacts> qs = queries(hosts);
  size_t i = 0;
  for (auto _ : state) {
    Decision d = decide(qs[i++ & 63], *snap);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Decide)
    ->Args({100, 10})
    ->Args({10000, 0})
    ->Args({100, 1000})
    ->Args({10000, 1000})
    ->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
