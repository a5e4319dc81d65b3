// ModuleCache: see module_cache.h. Three kinds of object live here, all on
// the loop thread, each touching the disk only through pool jobs:
//   CacheRead  serves a stored entry to one sink (hit, stale, or a waiter of
//              a fill once the fill is stored);
//   Fill       one MirrorFetch for a missing entry, written to a temp file
//              and streamed to its first sink (the leader) at the same time;
//   the Impl   index, fills in flight, eviction.
// An object with a pool job in flight is never deleted; it deletes itself
// when the job's completion finds it finished.
#include "daemon/module_cache.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "daemon/cache_store.h"
#include "daemon/goproxy_door.h"
#include "daemon/metrics.h"
#include "rules/snapshot_compiled.h"

namespace switchyard {

namespace {

using rules::GoproxyRequest;

int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Runs `work` on the libuv thread pool, then `done` on the loop thread.
struct PoolJob {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> done;
};

void runOnPool(uv_loop_t* loop, std::function<void()> work, std::function<void()> done) {
  auto* job = new PoolJob{uv_work_t{}, std::move(work), std::move(done)};
  job->req.data = job;
  int rc = uv_queue_work(
      loop, &job->req, [](uv_work_t* req) { static_cast<PoolJob*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<PoolJob> j(static_cast<PoolJob*>(req->data));
        j->done();
      });
  if (rc != 0) {
    // Only fails for a bad argument; run inline rather than lose the job.
    std::unique_ptr<PoolJob> j(job);
    j->work();
    j->done();
  }
}

// Reads per pool job: a few blocks at a time keeps the round trips down.
constexpr size_t kReadBlocksPerJob = 4;
// Body bytes queued for the disk above which the upstream is paused.
constexpr size_t kDiskHighWater = 4 << 20;
constexpr size_t kDiskLowWater = 1 << 20;
// The file mtime (the LRU clock that survives restarts) is refreshed at
// most this often per entry.
constexpr int64_t kTouchIntervalMs = 60'000;

}  // namespace

class CacheClient;
class Fill;

struct ModuleCache::Impl {
  Runtime* rt;
  cache::CacheStore store;
  cache::CacheIndex index;
  uint64_t max_size;
  std::chrono::milliseconds mutable_ttl;
  std::unordered_map<std::string, Fill*> fills;

  Impl(Runtime* r, std::string dir, uint64_t max, std::chrono::milliseconds ttl)
      : rt(r), store(std::move(dir)), max_size(max), mutable_ttl(ttl) {}

  bool fresh(const cache::EntryInfo& e) const {
    return e.meta.immutable || wallClockMs() - e.meta.stored_at_ms < mutable_ttl.count();
  }
  void touched(const std::string& key);
  void stored(cache::EntryInfo info);
  void forget(const std::string& key) {
    index.erase(key);
    publishSize();
  }
  void publishSize() {
    if (rt->metrics != nullptr) {
      rt->metrics->setCacheBytes(index.totalSize());
    }
  }
  // Makes `client` the leader of a new fill, or a waiter of the one in flight.
  void joinOrFill(CacheClient* client);
};

// ---------------------------------------------------------------------------
// CacheClient: the ResponseSource one client's sink holds, whatever serves
// it — the disk (hit, stale, a waiter once its fill stored the entry) or a
// fill it leads.

class CacheClient : public ResponseSource {
 public:
  enum class Mode { kIdle, kReading, kLeading, kWaiting };

  CacheClient(ModuleCache::Impl* cache, ModuleCache::Request request, ResponseSink* sink)
      : cache_(cache),
        request_(std::move(request)),
        key_(request_.request.cacheKey()),
        sink_(sink) {}

  const std::string& key() const { return key_; }
  ModuleCache::Request& request() { return request_; }

  // Serves the stored entry, labelled `label` in the decision log. A missing
  // or broken file, when nothing was sent yet, turns into a fill.
  void open(std::string label) {
    mode_ = Mode::kReading;
    label_ = std::move(label);
    ++jobs_;
    auto meta = std::make_shared<cache::EntryMeta>();
    auto fd = std::make_shared<int>(-1);
    auto error = std::make_shared<std::string>();
    const cache::CacheStore* store = &cache_->store;
    std::string key = key_;
    runOnPool(
        cache_->rt->loop(),
        [store, key, meta, fd, error] { *fd = store->openEntry(key, meta.get(), error.get()); },
        [this, meta, fd, error] {
          --jobs_;
          fd_ = *fd;
          if (cancelled_) {
            finish();
            return;
          }
          if (fd_ < 0) {
            spdlog::warn("cache: {}: {}; fetching it again", key_, *error);
            cache_->forget(key_);
            if (++reopens_ > 1) {
              failWith(internalFailure("the stored entry cannot be read: " + *error));
              return;
            }
            cache_->joinOrFill(this);
            return;
          }
          meta_ = std::move(*meta);
          sendHead();
        });
  }

  void lead(Fill* fill) {
    mode_ = Mode::kLeading;
    fill_ = fill;
  }
  void wait(Fill* fill) {
    mode_ = Mode::kWaiting;
    fill_ = fill;
  }

  // ---- From the fill this client leads.
  void fillHead(const ResponseHead& head, const MirrorResponseInfo& info) {
    head_sent_ = true;
    sink_->onMirrorHead(head, info);
  }
  void fillBody(const BufferRef& block, const char* data, size_t len) {
    sink_->onMirrorBody(block, data, len);
  }
  void fillComplete() {
    fill_ = nullptr;
    complete();
  }
  void fillAborted(const std::string& why) {
    fill_ = nullptr;
    ResponseSink* sink = sink_;
    sink_ = nullptr;
    sink->onMirrorAborted(why);
    finish();
  }
  // ---- From the fill this client leads or waits for.
  void fillStored() {
    fill_ = nullptr;
    open("miss");
  }
  void fillStale() {
    fill_ = nullptr;
    open("stale");
  }
  void failWith(const MirrorFailure& failure) {
    fill_ = nullptr;
    ResponseSink* sink = sink_;
    sink_ = nullptr;
    sink->onMirrorFailed(failure);
    finish();
  }
  bool headSent() const { return head_sent_; }
  void setAttempts(std::vector<AttemptRecord> a) { attempts_ = std::move(a); }

  // ResponseSource
  void pause() override;
  void resume() override;
  void cancel() override;
  const std::vector<AttemptRecord>& attempts() const override;
  bool abortedByProxy() const override { return aborted_by_proxy_; }
  void setAbortedByProxy() { aborted_by_proxy_ = true; }

  static MirrorFailure internalFailure(const std::string& why) {
    MirrorFailure f;
    f.status = 502;
    f.reason = "Cache failure";
    f.proxy_status_error = "proxy_internal_error";
    f.details = why;
    f.body = "502 Cache failure\n" + why + "\n";
    f.cache = "miss";
    return f;
  }

 private:
  void sendHead() {
    ResponseHead head;
    head.status = 200;
    head.http_major = 1;
    head.http_minor = 1;
    head.headers.add("Content-Type", meta_.content_type.empty()
                                         ? goproxyContentType(request_.request.kind)
                                         : meta_.content_type);
    head.headers.add("Content-Length", std::to_string(meta_.size));
    MirrorResponseInfo info;
    info.served_by = "cache";
    info.next_hop = "cache";
    info.cache = label_;
    info.has_body = !request_.head_only && meta_.size > 0;
    info.content_length = meta_.size;
    cache_->touched(key_);
    head_sent_ = true;
    sink_->onMirrorHead(head, info);
    if (cancelled_) {
      finish();
      return;
    }
    if (!info.has_body) {
      complete();
      return;
    }
    readMore();
  }

  void readMore() {
    reading_ = true;
    ++jobs_;
    auto blocks = std::make_shared<std::vector<std::pair<BufferRef, size_t>>>();
    for (size_t i = 0; i < kReadBlocksPerJob; ++i) {
      blocks->emplace_back(BufferRef::make(), 0);
    }
    auto error = std::make_shared<int>(0);
    int fd = fd_;
    uint64_t offset = offset_;
    uint64_t end = meta_.size;
    runOnPool(
        cache_->rt->loop(),
        [blocks, error, fd, offset, end] {
          uint64_t at = offset;
          for (auto& [block, n] : *blocks) {
            size_t want = static_cast<size_t>(std::min<uint64_t>(BufferPool::kBlockSize, end - at));
            if (want == 0) {
              break;
            }
            ssize_t got = ::pread(fd, block.data(), want, static_cast<off_t>(at));
            if (got <= 0) {
              *error = got < 0 ? errno : EIO;  // EIO: the file got shorter
              break;
            }
            n = static_cast<size_t>(got);
            at += n;
          }
        },
        [this, blocks, error] {
          --jobs_;
          reading_ = false;
          if (cancelled_) {
            finish();
            return;
          }
          for (auto& [block, n] : *blocks) {
            if (n == 0) {
              break;
            }
            offset_ += n;
            sink_->onMirrorBody(block, block.data(), n);
            if (cancelled_) {
              finish();
              return;
            }
          }
          if (*error != 0) {
            std::string why = std::string("reading the cached file: ") + std::strerror(*error);
            spdlog::warn("cache: {}: {}", key_, why);
            cache_->forget(key_);
            aborted_by_proxy_ = true;
            fillAborted(why);
            return;
          }
          if (offset_ >= meta_.size) {
            complete();
          } else if (!paused_) {
            readMore();
          }
        });
  }

  void complete() {
    ResponseSink* sink = sink_;
    sink_ = nullptr;
    sink->onMirrorComplete();
    finish();
  }

  // Deletes `this` once no pool job refers to it.
  void finish() {
    done_ = true;
    if (jobs_ > 0) {
      return;  // the job's completion calls finish() again
    }
    if (fd_ >= 0) {
      ::close(fd_);  // closing a regular file does not block
      fd_ = -1;
    }
    delete this;
  }

  ModuleCache::Impl* cache_;
  ModuleCache::Request request_;
  std::string key_;
  ResponseSink* sink_;
  Mode mode_ = Mode::kIdle;
  Fill* fill_ = nullptr;  // leading or waiting
  std::string label_;
  cache::EntryMeta meta_;
  std::vector<AttemptRecord> attempts_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  int jobs_ = 0;
  int reopens_ = 0;
  bool head_sent_ = false;
  bool aborted_by_proxy_ = false;
  bool reading_ = false;
  bool paused_ = false;
  bool cancelled_ = false;
  bool done_ = false;
};

// ---------------------------------------------------------------------------
// Fill

class Fill : public ResponseSink {
 public:
  Fill(ModuleCache::Impl* cache, CacheClient* leader)
      : cache_(cache), key_(leader->key()), request_(leader->request().request), leader_(leader) {
    leader->lead(this);
  }

  void start(MirrorFetch::Params params) {
    ++jobs_;
    auto writer = std::make_shared<std::unique_ptr<cache::CacheStore::Writer>>();
    auto why = std::make_shared<std::string>();
    const cache::CacheStore* store = &cache_->store;
    std::string key = key_;
    // The temp file is created on the pool while the fetch starts.
    runOnPool(
        cache_->rt->loop(), [store, key, writer, why] { *writer = store->begin(key, why.get()); },
        [this, writer, why] {
          --jobs_;
          writer_ = std::move(*writer);
          if (writer_ == nullptr) {
            spdlog::warn("cache: {}: cannot store: {}", key_, *why);
            storable_ = false;
          }
          writer_ready_ = true;
          pumpDisk();
          maybeFinish();
        });
    fetch_ = MirrorFetch::start(std::move(params), this);
  }

  void addWaiter(CacheClient* client) {
    client->wait(this);
    waiters_.push_back(client);
  }
  void removeWaiter(CacheClient* client) {
    waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), client), waiters_.end());
  }

  // ---- From the leader.
  void leaderPause() {
    leader_paused_ = true;
    updatePause();
  }
  void leaderResume() {
    leader_paused_ = false;
    updatePause();
  }
  // The leader's client went away; the fill goes on for the cache and the
  // waiters, unless nothing arrived yet and nobody waits.
  void leaderGone() {
    leader_ = nullptr;
    held_.reset();
    leader_paused_ = false;
    updatePause();
    if (waiters_.empty() && fetch_ != nullptr && !head_seen_) {
      attempts_ = fetch_->attempts();
      fetch_->cancel();
      fetch_ = nullptr;
      fetch_done_ = true;
      storable_ = false;
      maybeFinish();
    }
  }
  const std::vector<AttemptRecord>& attempts() const {
    return fetch_ != nullptr ? fetch_->attempts() : attempts_;
  }

  // ---- ResponseSink (from the MirrorFetch)
  void onMirrorHead(const ResponseHead& head, const MirrorResponseInfo& info) override {
    head_seen_ = true;
    source_ = info.served_by;
    expected_size_ = info.content_length;
    if (head.status != 200 || !info.has_body) {
      storable_ = false;  // redirects and the like pass through, unstored
    }
    if (leader_ != nullptr) {
      ResponseHead h = head;
      if (head.status == 200) {
        h.headers.remove("Content-Type");
        h.headers.add("Content-Type", goproxyContentType(request_.kind));
      }
      MirrorResponseInfo i = info;
      i.cache = "miss";
      leader_->fillHead(h, i);
    }
  }

  void onMirrorBody(const BufferRef& block, const char* data, size_t len) override {
    if (storable_) {
      disk_queue_.push_back(Piece{block, data, len});
      disk_queued_ += len;
      pumpDisk();
      updatePause();
    }
    if (leader_ != nullptr) {
      // The last piece waits until the entry passed its check, so a client
      // never sees a complete response that failed it.
      if (held_) {
        leader_->fillBody(held_->block, held_->data, held_->len);
        held_.reset();
      }
      if (storable_) {
        held_ = Piece{block, data, len};
      } else if (leader_ != nullptr) {
        leader_->fillBody(block, data, len);
      }
    }
  }

  void onMirrorComplete() override {
    attempts_ = fetch_->attempts();
    fetch_ = nullptr;
    fetch_done_ = true;
    upstream_ok_ = true;
    pumpDisk();
    maybeFinish();
  }

  void onMirrorFailed(const MirrorFailure& failure) override {
    attempts_ = fetch_->attempts();
    fetch_ = nullptr;
    fetch_done_ = true;
    storable_ = false;
    failure_ = failure;
    failure_->cache = "miss";
    maybeFinish();
  }

  void onMirrorAborted(const std::string& why) override {
    attempts_ = fetch_->attempts();
    aborted_by_proxy_ = fetch_->abortedByProxy();
    fetch_ = nullptr;
    fetch_done_ = true;
    storable_ = false;
    aborted_ = why;
    maybeFinish();
  }

 private:
  struct Piece {
    BufferRef block;
    const char* data;
    size_t len;
  };

  void updatePause() {
    if (disk_queued_ > kDiskHighWater) {
      disk_paused_ = true;
    } else if (disk_queued_ <= kDiskLowWater) {
      disk_paused_ = false;
    }
    bool want = leader_paused_ || disk_paused_;
    if (fetch_ != nullptr && want != fetch_paused_) {
      fetch_paused_ = want;
      if (want) {
        fetch_->pause();
      } else {
        fetch_->resume();
      }
    }
  }

  // Hands the queued body to one pool job at a time, in order.
  void pumpDisk() {
    if (!writer_ready_ || writing_ || disk_queue_.empty()) {
      return;
    }
    if (!storable_ || writer_ == nullptr) {
      disk_queue_.clear();
      disk_queued_ = 0;
      updatePause();
      return;
    }
    writing_ = true;
    ++jobs_;
    auto batch = std::make_shared<std::deque<Piece>>(std::move(disk_queue_));
    disk_queue_.clear();
    auto error = std::make_shared<std::string>();
    auto ok = std::make_shared<bool>(true);
    cache::CacheStore::Writer* writer = writer_.get();
    runOnPool(
        cache_->rt->loop(),
        [batch, writer, error, ok] {
          for (const Piece& p : *batch) {
            if (!writer->append(p.data, p.len, error.get())) {
              *ok = false;
              return;
            }
          }
        },
        [this, batch, error, ok] {
          --jobs_;
          writing_ = false;
          for (const Piece& p : *batch) {
            disk_queued_ -= std::min(disk_queued_, p.len);
          }
          batch->clear();  // gives the blocks back now
          if (!*ok) {
            spdlog::warn("cache: {}: write failed: {}", key_, *error);
            storable_ = false;
            write_failed_ = true;
          }
          updatePause();
          pumpDisk();
          maybeFinish();
        });
  }

  // Once the upstream is done and the disk caught up: commit or give up.
  void maybeFinish() {
    if (ended_) {
      maybeDelete();
      return;
    }
    if (!fetch_done_ || writing_ || !writer_ready_ || committing_) {
      return;
    }
    if (upstream_ok_ && storable_ && writer_ != nullptr) {
      commit();
      return;
    }
    endFill();
  }

  void commit() {
    committing_ = true;
    ++jobs_;
    cache::EntryMeta meta;
    meta.key = key_;
    meta.immutable = request_.immutable;
    meta.content_type = goproxyContentType(request_.kind);
    meta.source = source_;
    meta.stored_at_ms = wallClockMs();
    auto info = std::make_shared<cache::EntryInfo>();
    auto error = std::make_shared<std::string>();
    auto ok = std::make_shared<bool>(false);
    std::shared_ptr<cache::CacheStore::Writer> writer(std::move(writer_));
    std::optional<uint64_t> expected = expected_size_;
    runOnPool(
        cache_->rt->loop(),
        [writer, meta, expected, info, error, ok] {
          *ok = writer->commit(meta, expected, info.get(), error.get());
        },
        [this, writer, info, error, ok] {
          --jobs_;
          if (*ok) {
            info->last_access_ms = wallClockMs();
            cache_->stored(*info);
            stored_ = true;
          } else {
            spdlog::warn("cache: {}: not stored: {}", key_, *error);
            check_failed_ = *error;
          }
          endFill();
        });
  }

  // The outcome is known: answer the leader and the waiters.
  void endFill() {
    ended_ = true;
    cache_->fills.erase(key_);
    if (writer_ != nullptr) {
      // Abandoning unlinks the temp file: a pool job, not the loop's.
      std::shared_ptr<cache::CacheStore::Writer> w(std::move(writer_));
      ++jobs_;
      runOnPool(
          cache_->rt->loop(), [w]() mutable { w.reset(); },
          [this] {
            --jobs_;
            maybeDelete();
          });
    }
    const bool stale = failure_ && failure_->status != 404 && cache_->index.find(key_) != nullptr;
    if (stale) {
      spdlog::warn("cache: {}: every upstream failed ({}); serving the stale entry", key_,
                   failure_->details);
    }
    std::vector<CacheClient*> clients = std::move(waiters_);
    waiters_.clear();
    CacheClient* leader = leader_;
    leader_ = nullptr;
    std::optional<Piece> held = std::move(held_);
    held_.reset();
    if (leader != nullptr) {
      leader->setAttempts(attempts_);
      if (stale) {
        leader->fillStale();
      } else if (failure_) {
        leader->failWith(*failure_);
      } else if (!aborted_.empty()) {
        if (aborted_by_proxy_) {
          leader->setAbortedByProxy();
        }
        leader->fillAborted(aborted_);
      } else if (!check_failed_.empty() || write_failed_) {
        // The bytes already streamed are not trustworthy: an unclean end.
        leader->setAbortedByProxy();
        leader->fillAborted(
            "the response failed its check: " +
            (check_failed_.empty() ? std::string("disk write failed") : check_failed_));
      } else {
        if (held) {
          leader->fillBody(held->block, held->data, held->len);
        }
        leader->fillComplete();
      }
    }
    for (CacheClient* w : clients) {
      // A waiter's own log line shows no attempts: the leader's line has them.
      if (stored_) {
        w->fillStored();
      } else if (stale) {
        w->fillStale();
      } else if (failure_) {
        w->failWith(*failure_);
      } else {
        std::string why = !aborted_.empty()        ? aborted_
                          : !check_failed_.empty() ? check_failed_
                                                   : std::string("the response is not cacheable");
        w->failWith(CacheClient::internalFailure(key_ + ": " + why));
      }
    }
    maybeDelete();
  }

  void maybeDelete() {
    if (ended_ && jobs_ == 0 && fetch_ == nullptr) {
      delete this;
    }
  }

  ModuleCache::Impl* cache_;
  std::string key_;
  rules::GoproxyRequest request_;
  CacheClient* leader_;
  std::vector<CacheClient*> waiters_;
  MirrorFetch* fetch_ = nullptr;
  std::unique_ptr<cache::CacheStore::Writer> writer_;
  std::deque<Piece> disk_queue_;
  size_t disk_queued_ = 0;
  std::optional<Piece> held_;  // the leader's last body piece, until stored
  std::vector<AttemptRecord> attempts_;
  std::optional<MirrorFailure> failure_;
  std::optional<uint64_t> expected_size_;
  std::string source_;
  std::string aborted_;
  std::string check_failed_;
  int jobs_ = 0;
  bool head_seen_ = false;
  bool aborted_by_proxy_ = false;  // the fetch's own timer broke the body off
  bool storable_ = true;
  bool writer_ready_ = false;
  bool writing_ = false;
  bool write_failed_ = false;
  bool fetch_done_ = false;
  bool upstream_ok_ = false;
  bool committing_ = false;
  bool stored_ = false;
  bool ended_ = false;
  bool leader_paused_ = false;
  bool disk_paused_ = false;
  bool fetch_paused_ = false;
};

void CacheClient::pause() {
  paused_ = true;
  if (mode_ == Mode::kLeading && fill_ != nullptr) {
    fill_->leaderPause();
  }
}

void CacheClient::resume() {
  if (!paused_) {
    return;
  }
  paused_ = false;
  if (mode_ == Mode::kLeading && fill_ != nullptr) {
    fill_->leaderResume();
  } else if (mode_ == Mode::kReading && !reading_ && !done_ && fd_ >= 0 && offset_ < meta_.size) {
    readMore();
  }
}

void CacheClient::cancel() {
  cancelled_ = true;
  sink_ = nullptr;
  if (fill_ != nullptr) {
    Fill* fill = fill_;
    fill_ = nullptr;
    if (mode_ == Mode::kLeading) {
      fill->leaderGone();
    } else {
      fill->removeWaiter(this);
    }
  }
  finish();
}

const std::vector<AttemptRecord>& CacheClient::attempts() const {
  if (mode_ == Mode::kLeading && fill_ != nullptr) {
    return fill_->attempts();
  }
  return attempts_;
}

// ---------------------------------------------------------------------------
// Impl

void ModuleCache::Impl::touched(const std::string& key) {
  const cache::EntryInfo* e = index.find(key);
  if (e == nullptr) {
    return;
  }
  int64_t now = wallClockMs();
  bool persist = now - e->last_access_ms > kTouchIntervalMs;
  index.touch(key, now);
  if (persist) {
    const cache::CacheStore* s = &store;
    runOnPool(
        rt->loop(), [s, key, now] { s->touch(key, now); }, [] {});
  }
}

void ModuleCache::Impl::stored(cache::EntryInfo info) {
  std::string key = info.meta.key;
  index.put(std::move(info));
  std::vector<std::string> victims = index.victims(max_size, key);
  for (const std::string& victim : victims) {
    const cache::EntryInfo* e = index.find(victim);
    uint64_t size = e != nullptr ? e->meta.size : 0;
    spdlog::info("cache: evicted {} ({} bytes) to stay within max_size {}", victim, size, max_size);
    index.erase(victim);
    const cache::CacheStore* s = &store;
    runOnPool(
        rt->loop(), [s, victim] { s->remove(victim); }, [] {});
  }
  if (rt->metrics != nullptr && !victims.empty()) {
    rt->metrics->countCacheEvictions(victims.size());
  }
  publishSize();
}

void ModuleCache::Impl::joinOrFill(CacheClient* client) {
  if (auto it = fills.find(client->key()); it != fills.end()) {
    it->second->addWaiter(client);
    return;
  }
  auto* fill = new Fill(this, client);
  fills[client->key()] = fill;
  fill->start(std::move(client->request().fetch));
}

// ---------------------------------------------------------------------------
// ModuleCache

std::unique_ptr<ModuleCache> ModuleCache::open(Runtime* rt, const std::string& dir,
                                               uint64_t max_size,
                                               std::chrono::milliseconds mutable_ttl,
                                               std::string* error) {
  auto impl = std::make_unique<Impl>(rt, dir, max_size, mutable_ttl);
  if (!impl->store.open(error)) {
    return nullptr;
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<cache::VerifyProblem> broken;
  std::vector<cache::EntryInfo> entries = impl->store.scan(&broken);
  for (const cache::VerifyProblem& p : broken) {
    spdlog::warn("cache: removing broken entry {}: {}", p.key, p.why);
    impl->store.remove(p.key);
  }
  std::sort(entries.begin(), entries.end(),
            [](const cache::EntryInfo& a, const cache::EntryInfo& b) {
              return a.last_access_ms < b.last_access_ms;
            });
  for (cache::EntryInfo& e : entries) {
    impl->index.put(std::move(e));
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  started)
                .count();
  spdlog::info("cache: {} entries, {} bytes in {} (index rebuilt in {} ms)", impl->index.count(),
               impl->index.totalSize(), dir, ms);
  impl->publishSize();
  return std::unique_ptr<ModuleCache>(new ModuleCache(std::move(impl)));
}

ModuleCache::ModuleCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModuleCache::~ModuleCache() = default;

uint64_t ModuleCache::entries() const {
  return impl_->index.count();
}
uint64_t ModuleCache::bytes() const {
  return impl_->index.totalSize();
}

ResponseSource* ModuleCache::fetch(Request request, ResponseSink* sink) {
  std::string key = request.request.cacheKey();
  const cache::EntryInfo* entry = impl_->index.find(key);
  if (request.head_only && (entry == nullptr || !impl_->fresh(*entry))) {
    // HEAD is answered by the upstream and never stored.
    return MirrorFetch::start(std::move(request.fetch), sink);
  }
  auto* client = new CacheClient(impl_.get(), std::move(request), sink);
  if (entry != nullptr && impl_->fresh(*entry)) {
    client->open("hit");
  } else {
    impl_->joinOrFill(client);
  }
  return client;
}

ResponseSource* startMirrorSource(Runtime* rt, const LiveConfig& live,
                                  const rules::Decision& decision, std::string_view host,
                                  std::string_view path, MirrorFetch::Params params,
                                  ResponseSink* sink) {
  const bool head_only = params.method == "HEAD";
  if (decision.cache && rt->module_cache != nullptr && (head_only || params.method == "GET")) {
    const rules::GosumdbConfig& sumdb = live.snapshot->compiled().gosumdb;
    auto ref = rules::moduleReferenceOf(host, path, sumdb.off ? "" : sumdb.name);
    if (ref) {
      ModuleCache::Request r;
      r.request = std::move(ref->request);
      r.head_only = head_only;
      r.fetch = std::move(params);
      return rt->module_cache->fetch(std::move(r), sink);
    }
  }
  return MirrorFetch::start(std::move(params), sink);
}

}  // namespace switchyard
