// Runtime: what every connection of one event loop shares (the current config
// snapshot, resolver, connector, decision log, upstream pool, the registry of
// open sessions), plus the small pieces of libuv plumbing that every file of
// the daemon uses the same way:
//
//  - read buffers come from one pool of fixed-size blocks, taken when libuv
//    is about to read and given back when the last write that points into
//    them completes, so an idle connection holds no buffer at all;
//  - C callbacks reach member functions through exactly one idiom: the
//    handle's `data` holds the object, and a captureless lambda inside a
//    template (startRead / submitWrite / startTimer / closeHandle) recovers
//    it and calls the member named as a template argument.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "daemon/access.h"
#include "daemon/connector.h"
#include "daemon/proxy_auth.h"
#include "daemon/resolver.h"
#include "rules/decision.h"
#include "rules/snapshot.h"

namespace switchyard {

class DecisionLog;
class UpstreamTlsContexts;
struct DecisionRecord;
class Metrics;
class ModuleCache;
class UpstreamPool;

// ---------------------------------------------------------------------------
// Read buffers.

class BufferPool {
 public:
  // libuv suggests 64 KiB per read; a block is one read.
  static constexpr size_t kBlockSize = 64 * 1024;
  // Bulk tunnel reads: a read that filled a standard block is followed by
  // one into a large block. Fewer, larger reads moved a 1 GiB download at
  // 0.98-1.06x direct, against 0.56-0.68x with 64 KiB reads (BENCHMARKS.md).
  static constexpr size_t kLargeBlockSize = 1024 * 1024;
  // At most this many large blocks are handed out at once (32 MiB); beyond
  // that, take(true) gives a standard block, so that a thousand bulk
  // tunnels cost what they did before large blocks.
  static constexpr size_t kMaxLiveLarge = 32;
  // Free blocks kept for reuse (2 MiB + 8 MiB); beyond that they go back to
  // malloc so that a burst does not pin memory forever.
  static constexpr size_t kMaxFree = 32;
  static constexpr size_t kMaxFreeLarge = 8;

  // A header followed by the block's bytes (kBlockSize or kLargeBlockSize).
  struct Block {
    uint32_t refs;
    bool large;
    char* data() { return reinterpret_cast<char*>(this + 1); }
    size_t size() const { return large ? kLargeBlockSize : kBlockSize; }
  };

  // A large block when asked for and fewer than kMaxLiveLarge are out;
  // else a standard one (see Block::size()).
  static Block* take(bool large = false);
  static void release(Block* block);
  // For tests and /metrics: blocks handed out and not yet released.
  static size_t liveBlocks();
  static size_t liveLargeBlocks();
};

// A counted reference to a pool block. Copies share the block; the last
// reference gives it back.
class BufferRef {
 public:
  BufferRef() = default;
  // Takes over the reference libuv's alloc callback handed out for `buf`
  // (nullptr base: an empty ref).
  static BufferRef fromReadBuf(const uv_buf_t* buf);
  static BufferRef make(bool large = false);
  BufferRef(const BufferRef& other);
  BufferRef(BufferRef&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
  BufferRef& operator=(BufferRef other) noexcept;
  ~BufferRef();

  char* data() const { return block_->data(); }
  size_t size() const { return block_->size(); }
  bool large() const { return block_->large; }
  explicit operator bool() const { return block_ != nullptr; }

 private:
  BufferPool::Block* block_ = nullptr;
};

// The alloc callback of every stream: one pool block per read.
void allocReadBuffer(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
// The same with a large block (bulk tunnel reads).
void allocLargeReadBuffer(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);

// ---------------------------------------------------------------------------
// Writes: one uv_write of up to three pieces (owned text, bytes inside a
// read block, owned text), which is exactly what chunked re-framing needs.

struct WriteRequest {
  uv_write_t req;
  void* owner = nullptr;  // the object whose member the completion calls
  std::string head;       // owned bytes written first
  BufferRef block;        // keeps `middle` alive
  uv_buf_t middle{};      // bytes inside `block` (len 0: none)
  std::string tail;       // owned bytes written last
  size_t bytes() const { return head.size() + middle.len + tail.size(); }
  // The non-empty parts in order, for uv_write / uv_try_write; returns how
  // many of `out`'s three slots it filled.
  unsigned buffers(uv_buf_t out[3]);
};

WriteRequest* makeWrite(std::string text);
WriteRequest* makeWrite(std::string head, BufferRef block, const char* at, size_t len,
                        std::string tail);

// Writes `w` at once with uv_try_write (one write/writev) when nothing is
// queued on `stream`. True: all of it went out, and no completion will
// follow (the caller frees `w`). False: `w` holds what is still to write
// (possibly all of it), for submitWrite. This saves more than the queueing:
// in libuv 1.44 every completed uv_write costs an EPOLL_CTL_MOD (the drain
// "stops" POLLOUT and re-arms the descriptor).
bool writeNow(uv_stream_t* stream, WriteRequest* w);

// Starts `w` on `stream`; when it completes (or fails), calls
// `(owner->*Method)(int status, size_t bytes)` and frees `w`. Returns the
// uv_write error (then `w` is already freed and Method is not called).
template <auto Method, typename Owner>
int submitWrite(uv_stream_t* stream, Owner* owner, WriteRequest* w) {
  uv_buf_t bufs[3];
  unsigned n = w->buffers(bufs);
  w->owner = owner;
  w->req.data = w;
  int rc = uv_write(&w->req, stream, bufs, n, [](uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> done(static_cast<WriteRequest*>(req->data));
    (static_cast<Owner*>(done->owner)->*Method)(status, done->bytes());
  });
  if (rc != 0) {
    delete w;
  }
  return rc;
}

// Starts reading `stream` (whose data is the Owner); each read calls
// `(owner->*Method)(ssize_t nread, BufferRef block)`, the block holding the
// bytes (empty when nread <= 0).
template <auto Method, typename Owner>
int startRead(uv_stream_t* stream) {
  return uv_read_start(stream, &allocReadBuffer,
                       [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
                         BufferRef block = BufferRef::fromReadBuf(buf);
                         (static_cast<Owner*>(s->data)->*Method)(nread, std::move(block));
                       });
}

// (Re)arms `timer` (whose data is the Owner) to call `(owner->*Method)()`.
template <auto Method, typename Owner>
void startTimer(uv_timer_t* timer, uint64_t timeout_ms) {
  uv_timer_start(
      timer, [](uv_timer_t* t) { (static_cast<Owner*>(t->data)->*Method)(); }, timeout_ms, 0);
}

// Closes `handle` (whose data is the Owner); the close callback calls
// `(owner->*Method)(uv_handle_t*)`, the only place memory is freed.
template <auto Method, typename Owner>
void closeHandle(uv_handle_t* handle) {
  if (uv_is_closing(handle)) {
    return;
  }
  uv_close(handle, [](uv_handle_t* h) { (static_cast<Owner*>(h->data)->*Method)(h); });
}

// Closes a heap handle that nobody refers to any more and deletes it.
void closeAndDelete(uv_handle_t* handle);

template <typename H>
uv_handle_t* asHandle(H* h) {
  return reinterpret_cast<uv_handle_t*>(h);
}
template <typename H>
uv_stream_t* asStream(H* h) {
  return reinterpret_cast<uv_stream_t*>(h);
}

// ---------------------------------------------------------------------------
// Sessions and shared state.

// Anything that holds a client connection: a Connection reading requests,
// or a Tunnel relaying bytes. The Runtime keeps them to drain on SIGTERM.
class Session {
 public:
  virtual ~Session() = default;
  // Finish what is in flight, then close; an idle session closes now.
  virtual void drain() = 0;
  // Close now (the drain deadline passed).
  virtual void abort() = 0;
};

// A config snapshot plus what the daemon compiles from it for itself.
struct LiveConfig {
  rules::ConfigSnapshotPtr snapshot;
  ClientAcl allow_clients;
  ClientAcl admin_allow_clients;  // checked by the admin listener on accept
  // access.users_file, read when this config was loaded (at start and on
  // each SIGHUP); null when proxy authentication is off.
  UserDbPtr users;
  const rules::Config& config() const { return snapshot->config(); }
  uint64_t generation() const { return snapshot->generation(); }
};
using LiveConfigPtr = std::shared_ptr<const LiveConfig>;

// Builds a LiveConfig; false and *error when the daemon's own part of the
// config (the ACLs, the users file) does not compile or cannot be read.
bool buildLiveConfig(rules::ConfigSnapshotPtr snapshot, LiveConfigPtr* out, std::string* error);

class Runtime {
 public:
  explicit Runtime(uv_loop_t* loop) : loop_(loop) {}
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  uv_loop_t* loop() const { return loop_; }

  // The current snapshot; each connection copies it when it starts and keeps
  // its copy, so a reload never changes a connection midway.
  LiveConfigPtr config;
  Resolver* resolver = nullptr;
  Connector* connector = nullptr;
  DecisionLog* decisions = nullptr;  // null in tests: records are dropped
  UpstreamPool* pool = nullptr;
  Metrics* metrics = nullptr;           // null in tests that do not look at counters
  ModuleCache* module_cache = nullptr;  // null without cache.dir
  // Client TLS contexts for https mirrors, built on first use and dropped
  // when the config generation changes (see upstreamTlsContext()).
  std::shared_ptr<UpstreamTlsContexts> tls_contexts;
  uint64_t tls_contexts_generation = 0;
  bool draining = false;

  uint64_t nextConnectionId() { return next_conn_id_++; }

  void addSession(Session* session);
  void removeSession(Session* session);
  size_t sessionCount() const { return sessions_.size(); }
  std::vector<Session*> sessions() const { return {sessions_.begin(), sessions_.end()}; }
  // Called (once per time) when the last session leaves while draining.
  std::function<void()> on_drained;

  // Per-client connection counts for limits.max_connections_per_client,
  // keyed by the client's IP text. Called exactly when a client socket
  // starts and stops being ours (a Connection's, then its Tunnel's), so they
  // also drive the open-connections gauge.
  uint32_t clientConnections(const std::string& ip) const;
  void addClientConnection(const std::string& ip);
  void removeClientConnection(const std::string& ip);

  // The bound listener addresses: a target or parent that is one of them is
  // a loop (508).
  void addListener(const sockaddr_storage& addr) { listeners_.push_back(addr); }
  bool isOwnListener(const sockaddr* addr) const;

  // Writes the record to the decision log, when there is one, and counts it
  // in the metrics: both see exactly the same requests.
  void writeDecision(const DecisionRecord& record);

  // rules::decide(), timed for the decision-duration histogram. Every
  // request's decision goes through here.
  rules::Decision decide(const rules::RequestFacts& facts, const rules::ConfigSnapshot& snapshot);

 private:
  uv_loop_t* loop_;
  uint64_t next_conn_id_ = 1;
  std::unordered_set<Session*> sessions_;
  std::unordered_map<std::string, uint32_t> per_client_;
  std::vector<sockaddr_storage> listeners_;
};

// "ip" (no port) of a socket address, for per-client counting and logs.
std::string addressIp(const sockaddr* addr);

}  // namespace switchyard
