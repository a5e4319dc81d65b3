#include "daemon/runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <new>

#include "daemon/busy_poll.h"
#include "daemon/decision_log.h"
#include "daemon/metrics.h"

namespace switchyard {

namespace {

// The pool is per process: the daemon runs one loop thread, and tests that
// run several loops do so on one thread too.
struct PoolState {
  std::vector<BufferPool::Block*> free;
  std::vector<BufferPool::Block*> free_large;
  size_t live = 0;
  size_t live_large = 0;
  ~PoolState() {
    for (auto* list : {&free, &free_large}) {
      for (BufferPool::Block* b : *list) {
        destroyBlock(b);
      }
    }
  }
  static void destroyBlock(BufferPool::Block* b) {
    b->~Block();
    ::operator delete(static_cast<void*>(b));
  }
};

PoolState& poolState() {
  static PoolState state;
  return state;
}

BufferPool::Block* blockOf(char* data) {
  return reinterpret_cast<BufferPool::Block*>(data) - 1;
}

}  // namespace

BufferPool::Block* BufferPool::take(bool large) {
  PoolState& state = poolState();
  large = large && state.live_large < kMaxLiveLarge;
  std::vector<Block*>& free = large ? state.free_large : state.free;
  Block* block;
  if (!free.empty()) {
    block = free.back();
    free.pop_back();
  } else {
    void* raw = ::operator new(sizeof(Block) + (large ? kLargeBlockSize : kBlockSize));
    block = new (raw) Block{0, large};
  }
  block->refs = 1;
  ++state.live;
  state.live_large += large ? 1 : 0;
  return block;
}

// A block comes back when its last reference goes: after the read that
// filled it was handled and every write pointing into it completed.
void BufferPool::release(Block* block) {
  assert(block->refs == 0);
  PoolState& state = poolState();
  --state.live;
  state.live_large -= block->large ? 1 : 0;
  std::vector<Block*>& free = block->large ? state.free_large : state.free;
  if (free.size() < (block->large ? kMaxFreeLarge : kMaxFree)) {
    free.push_back(block);
  } else {
    PoolState::destroyBlock(block);
  }
}

size_t BufferPool::liveBlocks() {
  return poolState().live;
}

size_t BufferPool::liveLargeBlocks() {
  return poolState().live_large;
}

BufferRef BufferRef::fromReadBuf(const uv_buf_t* buf) {
  BufferRef ref;
  if (buf != nullptr && buf->base != nullptr) {
    ref.block_ = blockOf(buf->base);
  }
  return ref;
}

BufferRef BufferRef::make(bool large) {
  BufferRef ref;
  ref.block_ = BufferPool::take(large);
  return ref;
}

BufferRef::BufferRef(const BufferRef& other) : block_(other.block_) {
  if (block_ != nullptr) {
    ++block_->refs;
  }
}

BufferRef& BufferRef::operator=(BufferRef other) noexcept {
  std::swap(block_, other.block_);
  return *this;
}

BufferRef::~BufferRef() {
  if (block_ != nullptr && --block_->refs == 0) {
    BufferPool::release(block_);
  }
}

void allocReadBuffer(uv_handle_t*, size_t, uv_buf_t* buf) {
  BusyPoll::noteActivity();
  BufferPool::Block* block = BufferPool::take();
  *buf = uv_buf_init(block->data(), BufferPool::kBlockSize);
}

void allocLargeReadBuffer(uv_handle_t*, size_t, uv_buf_t* buf) {
  BusyPoll::noteActivity();
  BufferPool::Block* block = BufferPool::take(/*large=*/true);
  *buf = uv_buf_init(block->data(), static_cast<unsigned>(block->size()));
}

WriteRequest* makeWrite(std::string text) {
  auto* w = new WriteRequest;
  w->head = std::move(text);
  return w;
}

WriteRequest* makeWrite(std::string head, BufferRef block, const char* at, size_t len,
                        std::string tail) {
  auto* w = new WriteRequest;
  w->head = std::move(head);
  if (len > 0) {
    w->block = std::move(block);
    w->middle = uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(len));
  }
  w->tail = std::move(tail);
  return w;
}

unsigned WriteRequest::buffers(uv_buf_t out[3]) {
  unsigned n = 0;
  if (!head.empty()) {
    out[n++] = uv_buf_init(head.data(), static_cast<unsigned>(head.size()));
  }
  if (middle.len > 0) {
    out[n++] = middle;
  }
  if (!tail.empty()) {
    out[n++] = uv_buf_init(tail.data(), static_cast<unsigned>(tail.size()));
  }
  return n;
}

bool writeNow(uv_stream_t* stream, WriteRequest* w) {
  uv_buf_t bufs[3];
  unsigned n = w->buffers(bufs);
  if (n == 0) {
    return true;
  }
  int written = uv_try_write(stream, bufs, n);
  if (written <= 0) {
    return false;  // EAGAIN, a queue ahead of us, or an error uv_write will report
  }
  auto left = static_cast<size_t>(written);
  size_t from_head = std::min(left, w->head.size());
  w->head.erase(0, from_head);
  left -= from_head;
  size_t from_middle = std::min(left, static_cast<size_t>(w->middle.len));
  w->middle.base += from_middle;
  w->middle.len -= from_middle;
  left -= from_middle;
  w->tail.erase(0, std::min(left, w->tail.size()));
  return w->bytes() == 0;
}

void closeAndDelete(uv_handle_t* handle) {
  if (uv_is_closing(handle)) {
    return;
  }
  uv_close(handle, [](uv_handle_t* h) { delete reinterpret_cast<uv_any_handle*>(h); });
}

bool buildLiveConfig(rules::ConfigSnapshotPtr snapshot, LiveConfigPtr* out, std::string* error) {
  auto live = std::make_shared<LiveConfig>();
  std::string acl_error;
  std::optional<ClientAcl> acl =
      ClientAcl::parse(snapshot->config().access.allow_clients, &acl_error);
  if (!acl) {
    *error = "access.allow_clients: " + acl_error;
    return false;
  }
  live->allow_clients = std::move(*acl);
  acl = ClientAcl::parse(snapshot->config().access.admin_allow_clients, &acl_error);
  if (!acl) {
    *error = "access.admin_allow_clients: " + acl_error;
    return false;
  }
  live->admin_allow_clients = std::move(*acl);
  // The users file is read here, with the rest of the config: a file that
  // does not load refuses the whole config (at start, or a reload keeps the
  // previous one), instead of locking every user out.
  if (const std::string& path = snapshot->config().access.users_file; !path.empty()) {
    std::vector<std::string> errors;
    live->users = UserDb::load(path, &errors);
    if (live->users == nullptr) {
      *error = "access.users_file: ";
      for (size_t i = 0; i < errors.size(); ++i) {
        *error += (i > 0 ? "; " : "") + errors[i];
      }
      return false;
    }
  }
  live->snapshot = std::move(snapshot);
  *out = std::move(live);
  return true;
}

void Runtime::addSession(Session* session) {
  sessions_.insert(session);
}

void Runtime::removeSession(Session* session) {
  sessions_.erase(session);
  if (draining && sessions_.empty() && on_drained) {
    on_drained();
  }
}

uint32_t Runtime::clientConnections(const std::string& ip) const {
  auto it = per_client_.find(ip);
  return it == per_client_.end() ? 0 : it->second;
}

void Runtime::addClientConnection(const std::string& ip) {
  ++per_client_[ip];
  if (metrics != nullptr) {
    metrics->connectionOpened();
  }
}

void Runtime::removeClientConnection(const std::string& ip) {
  auto it = per_client_.find(ip);
  if (it != per_client_.end() && --it->second == 0) {
    per_client_.erase(it);
  }
  if (metrics != nullptr) {
    metrics->connectionClosed();
  }
}

// Used on resolved addresses, after DNS: a name that resolves to one of our
// listeners is a loop however it was spelled.
bool Runtime::isOwnListener(const sockaddr* addr) const {
  for (const sockaddr_storage& own : listeners_) {
    if (own.ss_family == AF_INET && addr->sa_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&own);
      const auto* b = reinterpret_cast<const sockaddr_in*>(addr);
      bool any = a->sin_addr.s_addr == htonl(INADDR_ANY);
      bool same = a->sin_addr.s_addr == b->sin_addr.s_addr;
      // A wildcard listener is reachable on every local address; loopback is
      // the one we can recognise without enumerating interfaces.
      bool loopback = (ntohl(b->sin_addr.s_addr) >> 24) == 127;
      if (a->sin_port == b->sin_port && (same || (any && loopback))) {
        return true;
      }
    } else if (own.ss_family == AF_INET6 && addr->sa_family == AF_INET) {
      // A dual-stack wildcard listener ("[::]:3128" without IPV6_V6ONLY, as
      // systemd binds a bare ListenStream= port) also takes IPv4 loopback.
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&own);
      const auto* b = reinterpret_cast<const sockaddr_in*>(addr);
      bool loopback = (ntohl(b->sin_addr.s_addr) >> 24) == 127;
      if (a->sin6_port == b->sin_port && IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) && loopback) {
        return true;
      }
    } else if (own.ss_family == AF_INET6 && addr->sa_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&own);
      const auto* b = reinterpret_cast<const sockaddr_in6*>(addr);
      bool any = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
      bool same = std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(in6_addr)) == 0;
      bool loopback = IN6_IS_ADDR_LOOPBACK(&b->sin6_addr);
      if (a->sin6_port == b->sin6_port && (same || (any && loopback))) {
        return true;
      }
    }
  }
  return false;
}

void Runtime::writeDecision(const DecisionRecord& record) {
  if (decisions != nullptr) {
    decisions->write(record);
  }
  if (metrics != nullptr) {
    metrics->countRecord(record);
  }
}

rules::Decision Runtime::decide(const rules::RequestFacts& facts,
                                const rules::ConfigSnapshot& snapshot) {
  if (metrics == nullptr) {
    return rules::decide(facts, snapshot);
  }
  // uv_hrtime() is a clock_gettime(CLOCK_MONOTONIC) through the vDSO, a few
  // tens of nanoseconds: cheap next to decide() itself.
  uint64_t start = uv_hrtime();
  rules::Decision decision = rules::decide(facts, snapshot);
  metrics->observeDecisionMicros((uv_hrtime() - start) / 1000);
  return decision;
}

std::string addressIp(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, buf, sizeof(buf));
  } else if (addr->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

}  // namespace switchyard
