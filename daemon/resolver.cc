// Resolver: c-ares on the libuv loop.
//
// c-ares owns its sockets and tells us through the socket-state callback which
// ones it wants watched; each gets a uv_poll_t. A single uv_timer_t drives
// c-ares' own retransmission timeouts (ares_timeout / ares_process_fd). Every
// answer, whatever its origin (IP literal, `resolve:` override, cache, /etc/hosts
// or DNS), is handed to its caller from a zero-delay timer, so no callback ever
// runs inside resolve() and none runs inside a c-ares callback either.
#include "daemon/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <unordered_map>

namespace switchyard {

namespace {

using Clock = std::chrono::steady_clock;

// How long "no such host" is remembered. The answer carries no usable TTL
// through ares_getaddrinfo (the SOA minimum is not exposed), so a short fixed
// time keeps typo storms off the DNS server without hiding a newly created name
// for long.
constexpr std::chrono::seconds kNegativeTtl{5};
// Upper bound on a positive TTL, so that a misconfigured zone cannot pin an
// address for weeks.
constexpr std::chrono::seconds kMaxTtl{24 * 3600};
// c-ares' defaults (5 s per try, 4 tries, doubling) can exceed any sensible
// connect timeout; a lookup that is not answered in a few seconds is dead.
constexpr int kAresTimeoutMs = 2500;
constexpr int kAresTries = 2;
// RFC 1035: a name is at most 253 characters in text form.
constexpr size_t kMaxNameLength = 253;

void freeHandle(uv_handle_t* handle) {
  delete reinterpret_cast<uv_any_handle*>(handle);
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  });
  return s;
}

// The cache and override key: lowercased, brackets and one trailing dot
// removed ("Example.COM." and "example.com" are the same name).
std::string normalizeName(const std::string& host) {
  std::string name = host;
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  if (name.size() > 1 && name.back() == '.') {
    name.pop_back();
  }
  return lowercase(name);
}

bool plausibleName(const std::string& name) {
  if (name.size() > kMaxNameLength) {
    return false;
  }
  return std::none_of(name.begin(), name.end(), [](unsigned char c) {
    return c <= ' ' || c == 0x7f || c == '/' || c == '\\' || c == '@';
  });
}

// Parses an IPv4 or IPv6 literal (IPv6 without brackets, optionally with a
// %zone) into `out` with the port set.
bool parseIpLiteral(const std::string& text, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (text.find(':') == std::string::npos) {
    return uv_ip4_addr(text.c_str(), port, v4) == 0;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  return uv_ip6_addr(text.c_str(), port, v6) == 0;
}

void setPort(sockaddr_storage* addr, uint16_t port) {
  if (addr->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  } else if (addr->ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
  }
}

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) {
    return false;
  }
  if (a.ss_family == AF_INET) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in&>(a).sin_addr,
                       &reinterpret_cast<const sockaddr_in&>(b).sin_addr, sizeof(in_addr)) == 0;
  }
  const auto& a6 = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& b6 = reinterpret_cast<const sockaddr_in6&>(b);
  return std::memcmp(&a6.sin6_addr, &b6.sin6_addr, sizeof(in6_addr)) == 0 &&
         a6.sin6_scope_id == b6.sin6_scope_id;
}

// Maps a failed c-ares status to a libuv code and a sentence for the log and
// the Proxy-Status details.
void describeFailure(int ares_status, const std::string& name, ResolveResult* result) {
  switch (ares_status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME:
      result->status = UV_EAI_NONAME;
      result->error = "no such host " + name;
      return;
    case ARES_ETIMEOUT:
      result->status = UV_EAI_AGAIN;
      result->error = "DNS lookup of " + name + " timed out";
      return;
    case ARES_ESERVFAIL:
      result->status = UV_EAI_AGAIN;
      result->error = "DNS server failure looking up " + name;
      return;
    case ARES_EREFUSED:
      result->status = UV_EAI_AGAIN;
      result->error = "DNS server refused the lookup of " + name;
      return;
    case ARES_ECONNREFUSED:
      result->status = UV_EAI_AGAIN;
      result->error = "cannot reach the DNS server to look up " + name;
      return;
    case ARES_EBADNAME:
      result->status = UV_EINVAL;
      result->error = "invalid host name " + name;
      return;
    case ARES_ENOMEM:
      result->status = UV_ENOMEM;
      result->error = "out of memory looking up " + name;
      return;
    default:
      result->status = UV_EAI_FAIL;
      result->error =
          std::string("DNS lookup of ") + name + " failed: " + ares_strerror(ares_status);
      return;
  }
}

void initAresLibraryOnce() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

}  // namespace

struct Resolver::Impl {
  // A caller waiting for its answer. Erased by cancel(); every delivery path
  // looks the id up again, so a cancelled request is simply not found.
  struct Request {
    uint16_t port = 0;
    Callback cb;
  };

  // One c-ares lookup, shared by every request for the same name while it is
  // in flight. Owned by the c-ares callback, which always runs exactly once
  // (with ARES_EDESTRUCTION when the channel is destroyed).
  struct Lookup {
    Impl* impl = nullptr;
    std::string name;
    std::vector<uint64_t> waiters;
  };

  // A cached answer: addresses with port 0, or a negative answer.
  struct CacheEntry {
    std::string name;
    int status = 0;
    std::string error;
    std::vector<sockaddr_storage> addresses;
    Clock::time_point expires;
  };

  struct Ready {
    uint64_t id = 0;
    ResolveResult result;
  };

  uv_loop_t* loop_;
  size_t max_entries_;
  ares_channel channel_ = nullptr;
  int init_status_ = ARES_SUCCESS;
  uv_timer_t* ares_timer_ = nullptr;     // c-ares retransmission timeouts
  uv_timer_t* deliver_timer_ = nullptr;  // zero-delay hand-off of answers
  std::unordered_map<ares_socket_t, uv_poll_t*> polls_;
  std::map<std::string, std::string> overrides_;  // normalized name -> IP literal
  std::unordered_map<uint64_t, Request> requests_;
  std::unordered_map<std::string, Lookup*> inflight_;
  std::deque<Ready> ready_;
  std::list<CacheEntry> lru_;  // front: most recently used
  std::unordered_map<std::string, std::list<CacheEntry>::iterator> cache_index_;
  std::function<Clock::time_point()> now_ = [] { return Clock::now(); };
  uint64_t next_id_ = 1;
  bool closed_ = false;
  // Shared with delivery loops so they notice when a callback closed us.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  Impl(uv_loop_t* loop, size_t max_entries) : loop_(loop), max_entries_(max_entries) {
    initAresLibraryOnce();
    ares_timer_ = new uv_timer_t;
    uv_timer_init(loop_, ares_timer_);
    ares_timer_->data = this;
    deliver_timer_ = new uv_timer_t;
    uv_timer_init(loop_, deliver_timer_);
    deliver_timer_->data = this;

    ares_options options{};
    // "f" then "b": /etc/hosts before DNS, as the system resolver does.
    static char lookups[] = "fb";
    options.lookups = lookups;
    options.sock_state_cb = &Impl::onSockState;
    options.sock_state_cb_data = this;
    options.timeout = kAresTimeoutMs;
    options.tries = kAresTries;
    int mask = ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    init_status_ = ares_init_options(&channel_, &options, mask);
    if (init_status_ != ARES_SUCCESS) {
      channel_ = nullptr;
    }
  }

  // --- c-ares socket and timer plumbing -----------------------------------

  static void onSockState(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Impl*>(data);
    auto it = self->polls_.find(fd);
    if (!readable && !writable) {
      // c-ares is about to close the socket: stop watching it now, because
      // the descriptor number may be reused by the very next socket.
      if (it != self->polls_.end()) {
        uv_close(reinterpret_cast<uv_handle_t*>(it->second), freeHandle);
        self->polls_.erase(it);
      }
      return;
    }
    if (self->closed_) {
      return;
    }
    uv_poll_t* poll = nullptr;
    if (it == self->polls_.end()) {
      poll = new uv_poll_t;
      if (uv_poll_init_socket(self->loop_, poll, fd) != 0) {
        // Without a watcher the query still ends through c-ares' timeout.
        delete poll;
        return;
      }
      poll->data = self;
      self->polls_.emplace(fd, poll);
    } else {
      poll = it->second;
    }
    int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(poll, events, &Impl::onPoll);
  }

  static void onPoll(uv_poll_t* poll, int status, int events) {
    auto* self = static_cast<Impl*>(poll->data);
    if (self->closed_ || self->channel_ == nullptr) {
      return;
    }
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(poll), &fd) != 0) {
      return;
    }
    ares_socket_t read_fd = ARES_SOCKET_BAD;
    ares_socket_t write_fd = ARES_SOCKET_BAD;
    // On a poll error let c-ares try both directions: it will see the socket
    // error and retry elsewhere.
    if (status < 0 || (events & UV_READABLE) != 0) {
      read_fd = fd;
    }
    if (status < 0 || (events & UV_WRITABLE) != 0) {
      write_fd = fd;
    }
    ares_process_fd(self->channel_, read_fd, write_fd);
    self->updateAresTimer();
  }

  static void onAresTimer(uv_timer_t* timer) {
    auto* self = static_cast<Impl*>(timer->data);
    if (self->closed_ || self->channel_ == nullptr) {
      return;
    }
    ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    self->updateAresTimer();
  }

  void updateAresTimer() {
    if (closed_ || channel_ == nullptr) {
      return;
    }
    timeval tv{};
    if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
      uv_timer_stop(ares_timer_);
      return;
    }
    uint64_t ms = static_cast<uint64_t>(tv.tv_sec) * 1000 + (tv.tv_usec + 999) / 1000;
    uv_timer_start(ares_timer_, &Impl::onAresTimer, ms, 0);
  }

  // --- answers ------------------------------------------------------------

  void queueResult(uint64_t id, ResolveResult result) {
    ready_.push_back(Ready{id, std::move(result)});
    if (!closed_) {
      uv_timer_start(deliver_timer_, &Impl::onDeliver, 0, 0);
    }
  }

  void queueFromEntry(uint64_t id, const CacheEntry& entry, bool from_cache) {
    auto it = requests_.find(id);
    if (it == requests_.end()) {
      return;
    }
    ResolveResult result;
    result.status = entry.status;
    result.error = entry.error;
    result.from_cache = from_cache;
    result.addresses = entry.addresses;
    for (sockaddr_storage& addr : result.addresses) {
      setPort(&addr, it->second.port);
    }
    queueResult(id, std::move(result));
  }

  static void onDeliver(uv_timer_t* timer) {
    auto* self = static_cast<Impl*>(timer->data);
    std::deque<Ready> batch;
    batch.swap(self->ready_);
    std::shared_ptr<bool> alive = self->alive_;
    for (Ready& ready : batch) {
      if (!*alive || self->closed_) {
        return;
      }
      auto it = self->requests_.find(ready.id);
      if (it == self->requests_.end()) {
        continue;  // cancelled
      }
      Callback cb = std::move(it->second.cb);
      self->requests_.erase(it);
      cb(ready.result);
    }
  }

  // --- cache --------------------------------------------------------------

  const CacheEntry* cacheFind(const std::string& name) {
    auto it = cache_index_.find(name);
    if (it == cache_index_.end()) {
      return nullptr;
    }
    if (now_() >= it->second->expires) {
      lru_.erase(it->second);
      cache_index_.erase(it);
      return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    return &*it->second;
  }

  void cacheStore(CacheEntry entry, std::chrono::seconds ttl) {
    if (max_entries_ == 0 || ttl.count() <= 0) {
      return;
    }
    entry.expires = now_() + std::min(ttl, kMaxTtl);
    auto it = cache_index_.find(entry.name);
    if (it != cache_index_.end()) {
      lru_.erase(it->second);
      cache_index_.erase(it);
    }
    lru_.push_front(std::move(entry));
    cache_index_[lru_.front().name] = lru_.begin();
    while (lru_.size() > max_entries_) {
      cache_index_.erase(lru_.back().name);
      lru_.pop_back();
    }
  }

  // --- lookups ------------------------------------------------------------

  void startLookup(const std::string& name, uint64_t id) {
    auto* lookup = new Lookup{this, name, {id}};
    inflight_.emplace(name, lookup);
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    // May call onAddrInfo before returning (an /etc/hosts hit): that is fine,
    // answers are only queued, never delivered, from there.
    ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints, &Impl::onAddrInfo, lookup);
    updateAresTimer();
  }

  static void onAddrInfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* info) {
    auto* lookup = static_cast<Lookup*>(arg);
    Impl* self = lookup->impl;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED || self->closed_) {
      if (info != nullptr) {
        ares_freeaddrinfo(info);
      }
      delete lookup;
      return;
    }
    auto it = self->inflight_.find(lookup->name);
    if (it != self->inflight_.end() && it->second == lookup) {
      self->inflight_.erase(it);
    }

    CacheEntry entry;
    entry.name = lookup->name;
    std::chrono::seconds ttl = kMaxTtl;
    if (status == ARES_SUCCESS && info != nullptr) {
      for (ares_addrinfo_node* node = info->nodes; node != nullptr; node = node->ai_next) {
        if (node->ai_addr == nullptr ||
            (node->ai_family != AF_INET && node->ai_family != AF_INET6)) {
          continue;
        }
        sockaddr_storage addr{};
        std::memcpy(&addr, node->ai_addr,
                    std::min<size_t>(node->ai_addrlen, sizeof(sockaddr_storage)));
        setPort(&addr, 0);
        bool duplicate =
            std::any_of(entry.addresses.begin(), entry.addresses.end(),
                        [&](const sockaddr_storage& a) { return sameAddress(a, addr); });
        if (!duplicate) {
          entry.addresses.push_back(addr);
        }
        ttl = std::min(ttl, std::chrono::seconds(std::max(node->ai_ttl, 0)));
      }
      for (ares_addrinfo_cname* cname = info->cnames; cname != nullptr; cname = cname->next) {
        ttl = std::min(ttl, std::chrono::seconds(std::max(cname->ttl, 0)));
      }
    }
    if (info != nullptr) {
      ares_freeaddrinfo(info);
    }
    if (status == ARES_SUCCESS && entry.addresses.empty()) {
      status = ARES_ENODATA;
    }
    if (status == ARES_SUCCESS) {
      self->cacheStore(entry, ttl);
    } else {
      ResolveResult failure;
      describeFailure(status, lookup->name, &failure);
      entry.status = failure.status;
      entry.error = failure.error;
      // Only "the name does not exist" is an answer worth remembering; a
      // timeout or server failure says nothing about the name.
      if (entry.status == UV_EAI_NONAME) {
        self->cacheStore(entry, kNegativeTtl);
      }
    }
    for (uint64_t id : lookup->waiters) {
      self->queueFromEntry(id, entry, false);
    }
    delete lookup;
  }

  uint64_t resolve(const std::string& host, uint16_t port, Callback cb) {
    uint64_t id = next_id_++;
    if (closed_) {
      return id;  // documented: nothing is delivered after close()
    }
    requests_.emplace(id, Request{port, std::move(cb)});
    std::string name = normalizeName(host);

    ResolveResult literal;
    sockaddr_storage addr;
    if (name.empty()) {
      literal.status = UV_EINVAL;
      literal.error = "empty host name";
      queueResult(id, std::move(literal));
      return id;
    }
    if (parseIpLiteral(name, port, &addr)) {
      literal.addresses.push_back(addr);
      queueResult(id, std::move(literal));
      return id;
    }
    if (auto it = overrides_.find(name); it != overrides_.end()) {
      if (parseIpLiteral(it->second, port, &addr)) {
        literal.addresses.push_back(addr);
      } else {
        literal.status = UV_EINVAL;
        literal.error = "resolve: override for " + name + " is not an IP address: " + it->second;
      }
      queueResult(id, std::move(literal));
      return id;
    }
    if (!plausibleName(name)) {
      literal.status = UV_EINVAL;
      literal.error = "invalid host name " + name;
      queueResult(id, std::move(literal));
      return id;
    }
    if (const CacheEntry* entry = cacheFind(name)) {
      queueFromEntry(id, *entry, true);
      return id;
    }
    if (auto it = inflight_.find(name); it != inflight_.end()) {
      it->second->waiters.push_back(id);
      return id;
    }
    if (channel_ == nullptr) {
      literal.status = UV_EAI_FAIL;
      literal.error = std::string("DNS resolver unavailable: ") + ares_strerror(init_status_);
      queueResult(id, std::move(literal));
      return id;
    }
    startLookup(name, id);
    return id;
  }

  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    *alive_ = false;
    requests_.clear();
    ready_.clear();
    // The lookups belong to their c-ares callbacks, which ares_destroy runs
    // with ARES_EDESTRUCTION; they free themselves there.
    inflight_.clear();
    if (channel_ != nullptr) {
      ares_destroy(channel_);
      channel_ = nullptr;
    }
    for (auto& [fd, poll] : polls_) {
      uv_close(reinterpret_cast<uv_handle_t*>(poll), freeHandle);
    }
    polls_.clear();
    uv_close(reinterpret_cast<uv_handle_t*>(ares_timer_), freeHandle);
    uv_close(reinterpret_cast<uv_handle_t*>(deliver_timer_), freeHandle);
    ares_timer_ = nullptr;
    deliver_timer_ = nullptr;
  }
};

Resolver::Resolver(uv_loop_t* loop, size_t max_entries)
    : impl_(std::make_unique<Impl>(loop, max_entries)) {}

Resolver::~Resolver() {
  assert(impl_->closed_ && "Resolver::close() must run before the destructor");
  // In release builds, still release c-ares and hand the handles to the loop.
  impl_->close();
}

void Resolver::setOverrides(std::map<std::string, std::string> overrides) {
  impl_->overrides_.clear();
  for (auto& [name, ip] : overrides) {
    impl_->overrides_[normalizeName(name)] = ip;
  }
}

uint64_t Resolver::resolve(const std::string& host, uint16_t port, Callback cb) {
  return impl_->resolve(host, port, std::move(cb));
}

void Resolver::cancel(uint64_t id) {
  impl_->requests_.erase(id);
}

void Resolver::close() {
  impl_->close();
}

void Resolver::setClockForTest(std::function<std::chrono::steady_clock::time_point()> now) {
  impl_->now_ = std::move(now);
}

bool Resolver::setServersForTest(const std::string& servers_csv) {
  if (impl_->channel_ == nullptr) {
    return false;
  }
  return ares_set_servers_ports_csv(impl_->channel_, servers_csv.c_str()) == ARES_SUCCESS;
}

}  // namespace switchyard
