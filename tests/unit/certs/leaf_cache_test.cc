// LeafCache: LRU order, capacity, renewal before expiry, counters, threads.
#include "certs/leaf_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::certs {
namespace {

constexpr std::time_t kNow = 1'700'000'000;

// Leaves without certificates: the cache only looks at host and not_after.
LeafCache::LeafPtr fakeLeaf(const std::string& host, std::time_t not_after = kNow + 7 * 86400) {
  auto leaf = std::make_shared<CertificateAuthority::Leaf>();
  leaf->host = host;
  leaf->not_after = not_after;
  return leaf;
}

// One step of a scripted scenario against a cache of capacity 3.
struct Step {
  char op;           // 'p' put, 'g' get
  const char* host;  // key
  bool hit;          // for 'g': expected hit
};

struct Scenario {
  const char* name;
  std::vector<Step> steps;
  size_t size;
  LeafCache::Stats stats;
};

TEST(LeafCache, ScriptedLruScenarios) {
  const std::vector<Scenario> scenarios = {
      {"empty cache misses", {{'g', "a", false}}, 0, {0, 1, 0}},
      {"put then get hits", {{'p', "a", false}, {'g', "a", true}, {'g', "a", true}}, 1, {2, 0, 0}},
      {"keys are exact",
       {{'p', "a.example", false}, {'g', "A.example", false}, {'g', "a.example.", false}},
       1,
       {0, 2, 0}},
      {"fourth put evicts the least recently put",
       {{'p', "a", false},
        {'p', "b", false},
        {'p', "c", false},
        {'p', "d", false},
        {'g', "a", false},
        {'g', "b", true},
        {'g', "c", true},
        {'g', "d", true}},
       3,
       {3, 1, 1}},
      {"a get protects an entry from eviction",
       {{'p', "a", false},
        {'p', "b", false},
        {'p', "c", false},
        {'g', "a", true},
        {'p', "d", false},
        {'g', "b", false},
        {'g', "a", true},
        {'g', "c", true},
        {'g', "d", true}},
       3,
       {4, 1, 1}},
      {"re-putting a key refreshes it without evicting",
       {{'p', "a", false},
        {'p', "b", false},
        {'p', "c", false},
        {'p', "a", false},
        {'p', "d", false},
        {'g', "b", false},
        {'g', "a", true},
        {'g', "c", true}},
       3,
       {2, 1, 1}},
      {"a miss does not insert",
       {{'g', "x", false}, {'p', "a", false}, {'g', "x", false}},
       1,
       {0, 2, 0}},
      {"eviction keeps going round",
       {{'p', "a", false},
        {'p', "b", false},
        {'p', "c", false},
        {'p', "d", false},
        {'p', "e", false},
        {'p', "f", false},
        {'p', "g", false},
        {'g', "d", false},
        {'g', "e", true},
        {'g', "f", true},
        {'g', "g", true}},
       3,
       {3, 1, 4}},
  };
  for (const Scenario& s : scenarios) {
    SCOPED_TRACE(s.name);
    LeafCache cache(3);
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const Step& step = s.steps[i];
      SCOPED_TRACE(i);
      if (step.op == 'p') {
        cache.put(step.host, fakeLeaf(step.host));
      } else {
        LeafCache::LeafPtr got = cache.get(step.host, kNow);
        EXPECT_EQ(got != nullptr, step.hit) << step.host;
        if (got) {
          EXPECT_EQ(got->host, step.host);
        }
      }
      EXPECT_LE(cache.size(), cache.capacity());
    }
    EXPECT_EQ(cache.size(), s.size);
    LeafCache::Stats stats = cache.stats();
    EXPECT_EQ(stats.hits, s.stats.hits);
    EXPECT_EQ(stats.misses, s.stats.misses);
    EXPECT_EQ(stats.evictions, s.stats.evictions);
  }
}

TEST(LeafCache, ReplacingReturnsTheNewLeaf) {
  LeafCache cache(2);
  auto first = fakeLeaf("a");
  auto second = fakeLeaf("a");
  cache.put("a", first);
  cache.put("a", second);
  EXPECT_EQ(cache.get("a", kNow), second);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(LeafCache, CapacityOneAndZero) {
  LeafCache one(1);
  one.put("a", fakeLeaf("a"));
  one.put("b", fakeLeaf("b"));
  EXPECT_EQ(one.get("a", kNow), nullptr);
  EXPECT_NE(one.get("b", kNow), nullptr);
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one.stats().evictions, 1u);

  LeafCache off(0);
  off.put("a", fakeLeaf("a"));
  EXPECT_EQ(off.size(), 0u);
  EXPECT_EQ(off.get("a", kNow), nullptr);
  EXPECT_EQ(off.stats().misses, 1u);
  EXPECT_EQ(off.stats().evictions, 0u);
}

TEST(LeafCache, IgnoresNullLeaves) {
  LeafCache cache(2);
  cache.put("a", nullptr);
  EXPECT_EQ(cache.size(), 0u);
  cache.put("a", fakeLeaf("a"));
  cache.put("a", nullptr);
  EXPECT_NE(cache.get("a", kNow), nullptr);
}

TEST(LeafCache, DefaultCapacity) {
  LeafCache cache;
  EXPECT_EQ(cache.capacity(), LeafCache::kDefaultCapacity);
  for (size_t i = 0; i < LeafCache::kDefaultCapacity + 10; ++i) {
    cache.put("h" + std::to_string(i), fakeLeaf("h"));
  }
  EXPECT_EQ(cache.size(), LeafCache::kDefaultCapacity);
  EXPECT_EQ(cache.stats().evictions, 10u);
  EXPECT_EQ(cache.get("h9", kNow), nullptr);
  EXPECT_NE(cache.get("h10", kNow), nullptr);
}

TEST(LeafCache, LeavesNearTheirEndAreRenewed) {
  const std::time_t renew = LeafCache::kRenewBeforeSeconds;
  struct Case {
    const char* name;
    std::time_t not_after;
    bool hit;
  };
  const Case cases[] = {
      {"fresh", kNow + 7 * 86400, true},
      {"just outside the renewal window", kNow + renew, true},
      {"just inside the renewal window", kNow + renew - 1, false},
      {"expiring now", kNow, false},
      {"already expired", kNow - 86400, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    LeafCache cache(4);
    cache.put("a", fakeLeaf("a", c.not_after));
    EXPECT_EQ(cache.get("a", kNow) != nullptr, c.hit);
    // A stale entry is dropped, so it no longer takes a slot.
    EXPECT_EQ(cache.size(), c.hit ? 1u : 0u);
    EXPECT_EQ(cache.stats().hits, c.hit ? 1u : 0u);
    EXPECT_EQ(cache.stats().misses, c.hit ? 0u : 1u);
  }
  // The same entry ages out as the clock moves.
  LeafCache cache(4);
  cache.put("a", fakeLeaf("a", kNow + 2 * 86400));
  EXPECT_NE(cache.get("a", kNow), nullptr);
  EXPECT_NE(cache.get("a", kNow + 86400), nullptr);
  EXPECT_EQ(cache.get("a", kNow + 86401), nullptr);
}

TEST(LeafCache, UsesTheWallClockByDefault) {
  LeafCache cache(2);
  cache.put("fresh", fakeLeaf("fresh", std::time(nullptr) + 7 * 86400));
  cache.put("stale", fakeLeaf("stale", std::time(nullptr) + 60));
  EXPECT_NE(cache.get("fresh"), nullptr);
  EXPECT_EQ(cache.get("stale"), nullptr);
}

TEST(LeafCache, ConcurrentGetsAndPuts) {
  LeafCache cache(16);
  const int kThreads = 4;
  const int kOps = 5000;
  std::atomic<uint64_t> gets{0};
  std::atomic<uint64_t> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        std::string host = "h" + std::to_string((i * 7 + t) % 40);
        if (i % 3 == 0) {
          cache.put(host, fakeLeaf(host));
        } else {
          ++gets;
          LeafCache::LeafPtr leaf = cache.get(host, kNow);
          if (leaf && leaf->host != host) {
            ++wrong;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_LE(cache.size(), 16u);
  LeafCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits + stats.misses, gets.load());
  EXPECT_GT(stats.hits, 0u);
  EXPECT_GT(stats.evictions, 0u);
}

}  // namespace
}  // namespace switchyard::certs
