// A bounded, thread-safe LRU cache of minted leaf certificates keyed by host.
//
// Minting costs a signature; a busy gateway intercepts the same few hosts
// over and over, so leaves are kept in memory until they near their end of
// validity or are pushed out by newer hosts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "certs/ca.h"

namespace switchyard::certs {

class LeafCache {
 public:
  using LeafPtr = std::shared_ptr<const CertificateAuthority::Leaf>;

  // Enough for every host a large site intercepts; each entry is ~1 KiB.
  static constexpr size_t kDefaultCapacity = 1024;
  // A cached leaf this close to its notAfter counts as a miss, so a long-lived
  // connection never receives a certificate that expires while it is in use.
  static constexpr std::time_t kRenewBeforeSeconds = 24 * 3600;

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;     // absent or due for renewal
    uint64_t evictions = 0;  // pushed out by capacity
  };

  // Capacity 0 disables the cache: put() keeps nothing, get() always misses.
  explicit LeafCache(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}
  LeafCache(const LeafCache&) = delete;
  LeafCache& operator=(const LeafCache&) = delete;

  // The cached leaf for `host` (exactly as given to put(); callers use the
  // canonical form from canonicalLeafHost()), or nullptr. A hit makes the
  // entry the most recently used. An entry within kRenewBeforeSeconds of its
  // end (judged against `now`) is dropped and reported as a miss.
  LeafPtr get(const std::string& host) { return get(host, std::time(nullptr)); }
  LeafPtr get(const std::string& host, std::time_t now);

  // Inserts or replaces the entry for `host` as the most recently used,
  // evicting the least recently used one when full. Null leaves are ignored.
  void put(const std::string& host, LeafPtr leaf);

  size_t size() const;
  size_t capacity() const { return capacity_; }
  Stats stats() const;

 private:
  using Entry = std::pair<std::string, LeafPtr>;

  const size_t capacity_;
  mutable std::mutex mutex_;
  // Front = most recently used. The map points into the list so that a hit
  // moves its entry with splice(), without copying or reallocating.
  std::list<Entry> lru_;
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  Stats stats_;
};

}  // namespace switchyard::certs
