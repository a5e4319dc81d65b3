// HostMatcher cost per match with 100 and 10,000 entries spread over as many
// lists (one third exact names, one third ".suffix" entries, one third CIDRs
// of assorted prefix lengths). The index should make both sizes cost about
// the same: a lookup per host label, one per CIDR prefix length present.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "rules/host_match.h"
#include "rules/no_proxy.h"

namespace {

using switchyard::rules::HostKey;
using switchyard::rules::HostMatcher;

HostMatcher buildMatcher(int entries) {
  HostMatcher matcher;
  static const int kPrefixes[] = {8, 12, 16, 20, 24, 28, 32};
  for (int i = 0; i < entries; ++i) {
    std::string value;
    switch (i % 3) {
      case 0:
        value = "host" + std::to_string(i) + ".corp.example";
        break;
      case 1:
        value = ".team" + std::to_string(i) + ".internal.example";
        break;
      default: {
        const int prefix = kPrefixes[(i / 3) % 7];
        value = "10." + std::to_string((i / 256) % 256) + "." + std::to_string(i % 256) + ".0/" +
                std::to_string(prefix < 24 ? 24 : prefix);
        if (prefix < 24) {
          value = std::to_string(11 + (i % 100)) + ".0.0.0/" + std::to_string(prefix);
        }
        break;
      }
    }
    matcher.addList(i, value);
  }
  return matcher;
}

std::vector<HostKey> requestHosts(int entries) {
  std::vector<HostKey> keys;
  for (int i = 0; i < 64; ++i) {
    const int n = (i * 7919) % entries;
    keys.push_back(HostKey::from("host" + std::to_string(n - n % 3) + ".corp.example"));
    keys.push_back(HostKey::from("a.b.team" + std::to_string(n - n % 3 + 1) + ".internal.example"));
    keys.push_back(HostKey::from("10." + std::to_string((n / 256) % 256) + "." +
                                 std::to_string(n % 256) + ".9"));
    keys.push_back(HostKey::from("www.miss" + std::to_string(i) + ".example.org"));
    keys.push_back(HostKey::from("2001:db8::" + std::to_string(i + 1)));
  }
  return keys;
}

void hostMatch(benchmark::State& state) {
  const int entries = static_cast<int>(state.range(0));
  const HostMatcher matcher = buildMatcher(entries);
  const std::vector<HostKey> keys = requestHosts(entries);
  size_t i = 0;
  size_t hits = 0;
  for (auto _ : state) {
    auto match = matcher.match(keys[i], 443);
    hits += match.has_value();
    benchmark::DoNotOptimize(match);
    i = (i + 1) % keys.size();
  }
  state.counters["entries"] = static_cast<double>(matcher.entryCount());
  state.counters["hit_ratio"] =
      state.iterations() ? static_cast<double>(hits) / static_cast<double>(state.iterations()) : 0;
}
BENCHMARK(hostMatch)->Arg(100)->Arg(10000);

// The per-request preparation (IDNA only for non-ASCII names).
void hostKeyFrom(benchmark::State& state) {
  const std::string hosts[] = {"api.build.corp.example", "10.1.2.3", "2001:db8::1",
                               "www.b\xc3\xbc"
                               "cher.example"};
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(HostKey::from(hosts[i]));
    i = (i + 1) % 4;
  }
}
BENCHMARK(hostKeyFrom);

}  // namespace

BENCHMARK_MAIN();
