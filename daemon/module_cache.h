// ModuleCache: the daemon's side of the module cache (issue 6). It keeps the
// CacheIndex on the loop thread, runs every CacheStore call on the libuv
// thread pool, and answers a GOPROXY-protocol request as a ResponseSource:
//
//   hit     a stored entry (immutable, or mutable and younger than
//           cache.mutable_ttl) is read from disk and served;
//   fill    a miss starts one MirrorFetch; its body streams to the first
//           client as it arrives while it is written to a temp file; at the
//           end the entry is checked (size, zip end record), fsync'd and
//           renamed into place — only then does that client see a clean end;
//           if the check fails its connection is aborted and nothing is kept;
//   join    requests for an entry being filled wait for the fill and are
//           then served from the stored file (one upstream fetch for all);
//   stale   when the fill fails with anything but not-found, a mutable entry
//           past its TTL is served anyway, logged `stale`.
//
// Eviction: after each store, least recently used entries go until the total
// is at most cache.max_size; each eviction is logged and counted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/mirror_fetch.h"
#include "daemon/response_source.h"
#include "rules/goproxy_request.h"

namespace switchyard {

class Metrics;

class ModuleCache {
 public:
  struct Request {
    rules::GoproxyRequest request;  // key, immutable, kind
    bool head_only = false;         // HEAD: hits answer the head only; misses are not stored
    MirrorFetch::Params fetch;      // how a miss is fetched
  };

  // Opens cache.dir (creating it), removes what a crash left in tmp/, and
  // rebuilds the index from the files. Null with *error when the directory
  // cannot be used. Runs before the loop serves anything.
  static std::unique_ptr<ModuleCache> open(Runtime* rt, const std::string& dir, uint64_t max_size,
                                           std::chrono::milliseconds mutable_ttl,
                                           std::string* error);
  ~ModuleCache();

  ResponseSource* fetch(Request request, ResponseSink* sink);

  // For /metrics and logs.
  uint64_t entries() const;
  uint64_t bytes() const;

  struct Impl;

 private:
  explicit ModuleCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Starts the source for a request a rule sends along a mirror list or to
// its origin (absolute-form, intercepted): through the module cache when the
// rule says `cache: true`, the cache is open, and the path is a cacheable
// GOPROXY-protocol request; otherwise a plain MirrorFetch.
ResponseSource* startMirrorSource(Runtime* rt, const LiveConfig& live,
                                  const rules::Decision& decision, std::string_view host,
                                  std::string_view path, MirrorFetch::Params params,
                                  ResponseSink* sink);

}  // namespace switchyard
