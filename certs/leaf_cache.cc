#include "certs/leaf_cache.h"

namespace switchyard::certs {

LeafCache::LeafPtr LeafCache::get(const std::string& host, std::time_t now) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(host);
  if (it == index_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  const LeafPtr& leaf = it->second->second;
  if (leaf->not_after - now < kRenewBeforeSeconds) {
    lru_.erase(it->second);
    index_.erase(it);
    ++stats_.misses;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.hits;
  return leaf;
}

void LeafCache::put(const std::string& host, LeafPtr leaf) {
  if (!leaf || capacity_ == 0) {
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(host);
  if (it != index_.end()) {
    it->second->second = std::move(leaf);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
    ++stats_.evictions;
  }
  lru_.emplace_front(host, std::move(leaf));
  index_.emplace(host, lru_.begin());
}

size_t LeafCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

LeafCache::Stats LeafCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace switchyard::certs
