// Connector: Happy Eyeballs (RFC 8305 section 5) over libuv.
//
// One Job per connect() call owns two timers (the overall deadline and the
// 250 ms stagger) and the list of attempts still in flight. Each Attempt owns
// one uv_connect_t and, until it wins or is closed, one uv_tcp_t. The rules
// that keep every handle on exactly one close path:
//  * a losing or failed attempt's tcp handle is uv_close()d by the Job, and
//    the attempt is detached (attempt->job = nullptr);
//  * an Attempt is deleted only in its connect callback, which libuv always
//    runs exactly once (with UV_ECANCELED after its handle was closed);
//  * the winning tcp handle is handed to the caller and never touched again;
//  * a Job's timers are closed when the job ends (result delivered or
//    cancelled), and their close callbacks only free memory.
// Close callbacks never touch the Connector, so it may be destroyed as soon as
// close() returned, while the loop still runs those callbacks.
#include "daemon/connector.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "daemon/net_address.h"

namespace switchyard {

namespace {

void freeHandle(uv_handle_t* handle) {
  delete reinterpret_cast<uv_any_handle*>(handle);
}

void freeTcp(uv_handle_t* handle) {
  delete reinterpret_cast<uv_tcp_t*>(handle);
}

// RFC 8305 section 4: alternate address families, starting with IPv6,
// keeping the resolver's order (RFC 6724) within each family.
std::vector<sockaddr_storage> interleave(const std::vector<sockaddr_storage>& addresses) {
  std::vector<sockaddr_storage> v6;
  std::vector<sockaddr_storage> v4;
  for (const sockaddr_storage& addr : addresses) {
    if (addr.ss_family == AF_INET6) {
      v6.push_back(addr);
    } else if (addr.ss_family == AF_INET) {
      v4.push_back(addr);
    }
  }
  std::vector<sockaddr_storage> out;
  out.reserve(v6.size() + v4.size());
  for (size_t i = 0; i < std::max(v6.size(), v4.size()); ++i) {
    if (i < v6.size()) {
      out.push_back(v6[i]);
    }
    if (i < v4.size()) {
      out.push_back(v4[i]);
    }
  }
  return out;
}

bool inV4Net(uint32_t addr, uint32_t net, int prefix) {
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return (addr & mask) == (net & mask);
}

// `addr` in host byte order.
bool isPrivateV4(uint32_t addr) {
  struct Net {
    uint32_t net;
    int prefix;
  };
  static constexpr Net kPrivate[] = {
      {0x00000000, 8},   // 0.0.0.0/8: "this network", 0.0.0.0 reaches the local host
      {0x0a000000, 8},   // 10/8 (RFC 1918)
      {0x64400000, 10},  // 100.64/10 (CGNAT, RFC 6598)
      {0x7f000000, 8},   // 127/8 loopback
      {0xa9fe0000, 16},  // 169.254/16 link-local (cloud metadata lives here)
      {0xac100000, 12},  // 172.16/12 (RFC 1918)
      {0xc0a80000, 16},  // 192.168/16 (RFC 1918)
      {0xe0000000, 4},   // 224/4 multicast
      {0xffffffff, 32},  // limited broadcast
  };
  return std::any_of(std::begin(kPrivate), std::end(kPrivate),
                     [&](const Net& n) { return inV4Net(addr, n.net, n.prefix); });
}

}  // namespace

bool isPrivateDestination(const sockaddr* addr) {
  if (addr == nullptr) {
    return false;
  }
  if (addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    return isPrivateV4(ntohl(v4->sin_addr.s_addr));
  }
  if (addr->sa_family != AF_INET6) {
    return false;
  }
  const uint8_t* b = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr.s6_addr;
  auto embeddedV4 = [b] {
    return (uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) | (uint32_t{b[14]} << 8) | b[15];
  };
  static constexpr uint8_t kZero[10] = {};
  bool first80Zero = std::memcmp(b, kZero, 10) == 0;
  // ::ffff:a.b.c.d (IPv4-mapped) reaches the IPv4 address on a dual-stack socket.
  if (first80Zero && b[10] == 0xff && b[11] == 0xff) {
    return isPrivateV4(embeddedV4());
  }
  // 64:ff9b::/96 (RFC 6052 NAT64) reaches the embedded IPv4 address through
  // a translator, so an internal address behind it is just as private.
  static constexpr uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (std::memcmp(b, kNat64, 12) == 0) {
    return isPrivateV4(embeddedV4());
  }
  if (first80Zero && b[10] == 0 && b[11] == 0 && b[12] == 0 && b[13] == 0 && b[14] == 0 &&
      b[15] <= 1) {
    return true;  // :: (unspecified) and ::1 (loopback)
  }
  if ((b[0] & 0xfe) == 0xfc) {
    return true;  // fc00::/7 unique-local
  }
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
    return true;  // fe80::/10 link-local
  }
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) {
    return true;  // fec0::/10, the deprecated site-local range
  }
  if (b[0] == 0xff) {
    return true;  // ff00::/8 multicast
  }
  return false;
}

struct Connector::Impl {
  struct Job;

  struct Attempt {
    Job* job = nullptr;  // nullptr once detached: the callback only frees
    uv_tcp_t* tcp = nullptr;
    uv_connect_t req{};
    sockaddr_storage addr{};
    bool reading = false;
  };

  struct Job {
    Impl* impl = nullptr;
    uint64_t id = 0;
    std::vector<sockaddr_storage> addresses;  // interleaved
    size_t next = 0;                          // index of the next address to try
    std::vector<Attempt*> pending;            // attempts whose connect is in flight
    uv_timer_t* deadline = nullptr;
    uv_timer_t* stagger = nullptr;  // next attempt; also the zero-delay delivery
    std::chrono::milliseconds timeout{0};
    Callback cb;
    EarlyRead early_read;
    int last_status = 0;
    std::string last_error;
    bool done = false;  // a result exists (possibly not delivered yet)
    ConnectResult result;
  };

  uv_loop_t* loop_;
  std::unordered_map<uint64_t, Job*> jobs_;
  uint64_t next_id_ = 1;
  bool closed_ = false;
  // True while connect() runs, so that a synchronous failure is delivered
  // from the loop instead of from inside connect().
  bool starting_ = false;

  explicit Impl(uv_loop_t* loop) : loop_(loop) {}

  uint64_t connect(std::vector<sockaddr_storage> addresses, std::chrono::milliseconds timeout,
                   Callback cb, EarlyRead early_read) {
    uint64_t id = next_id_++;
    if (closed_) {
      return id;
    }
    auto* job = new Job;
    job->impl = this;
    job->id = id;
    job->addresses = interleave(addresses);
    job->timeout = timeout;
    job->cb = std::move(cb);
    job->early_read = early_read;
    job->deadline = new uv_timer_t;
    uv_timer_init(loop_, job->deadline);
    job->deadline->data = job;
    job->stagger = new uv_timer_t;
    uv_timer_init(loop_, job->stagger);
    job->stagger->data = job;
    jobs_.emplace(id, job);

    // The loop's cached time may be stale by however long the current
    // callback has run; the deadline and the stagger count from now.
    uv_update_time(loop_);
    starting_ = true;
    if (job->addresses.empty()) {
      job->last_status = UV_EINVAL;
      job->last_error = "no address to connect to";
      fail(job);
    } else {
      // A timeout of zero or less means no deadline of our own; the kernel's
      // SYN retries still end a hopeless attempt eventually.
      if (timeout.count() > 0) {
        uv_timer_start(job->deadline, &Impl::onDeadline, static_cast<uint64_t>(timeout.count()), 0);
      }
      startNextAttempt(job);
    }
    starting_ = false;
    if (job->done) {
      uv_timer_start(job->stagger, &Impl::onDeliver, 0, 0);
    }
    return id;
  }

  // Starts attempts until one is in flight or the list is exhausted, then arms
  // the stagger timer for the one after.
  void startNextAttempt(Job* job) {
    while (!job->done && job->next < job->addresses.size()) {
      const sockaddr_storage& addr = job->addresses[job->next++];
      auto* attempt = new Attempt;
      attempt->job = job;
      attempt->addr = addr;
      attempt->tcp = new uv_tcp_t;
      attempt->req.data = attempt;
      int rc = uv_tcp_init(loop_, attempt->tcp);
      if (rc != 0) {
        delete attempt->tcp;
        delete attempt;
        recordFailure(job, addr, rc);
        continue;
      }
      attempt->tcp->data = nullptr;
      rc = uv_tcp_connect(&attempt->req, attempt->tcp, reinterpret_cast<const sockaddr*>(&addr),
                          &Impl::onConnect);
      if (rc != 0) {
        // No connect callback will come: close and free right here.
        uv_close(reinterpret_cast<uv_handle_t*>(attempt->tcp), freeTcp);
        delete attempt;
        recordFailure(job, addr, rc);
        continue;
      }
      if (job->early_read.alloc != nullptr) {
        attempt->reading = uv_read_start(reinterpret_cast<uv_stream_t*>(attempt->tcp),
                                         job->early_read.alloc, job->early_read.read) == 0;
      }
      job->pending.push_back(attempt);
      if (job->next < job->addresses.size()) {
        uv_timer_start(job->stagger, &Impl::onStagger,
                       static_cast<uint64_t>(Connector::kAttemptDelay.count()), 0);
      }
      return;
    }
    if (!job->done && job->pending.empty()) {
      fail(job);
    }
  }

  void recordFailure(Job* job, const sockaddr_storage& addr, int status) {
    job->last_status = status;
    job->last_error = "connect to " + formatAddress(reinterpret_cast<const sockaddr*>(&addr)) +
                      ": " + uv_strerror(status);
  }

  static void onStagger(uv_timer_t* timer) {
    auto* job = static_cast<Job*>(timer->data);
    job->impl->startNextAttempt(job);
  }

  static void onDeadline(uv_timer_t* timer) {
    auto* job = static_cast<Job*>(timer->data);
    Impl* self = job->impl;
    ConnectResult result;
    result.status = UV_ETIMEDOUT;
    result.timed_out = true;
    result.error = "connect timed out after " + std::to_string(job->timeout.count()) + " ms";
    if (!job->last_error.empty()) {
      result.error += " (last error: " + job->last_error + ")";
    }
    self->finish(job, std::move(result));
  }

  static void onConnect(uv_connect_t* req, int status) {
    auto* attempt = static_cast<Attempt*>(req->data);
    Job* job = attempt->job;
    if (job == nullptr) {
      delete attempt;  // detached: its handle is already closing
      return;
    }
    Impl* self = job->impl;
    job->pending.erase(std::remove(job->pending.begin(), job->pending.end(), attempt),
                       job->pending.end());
    if (status == 0) {
      ConnectResult result;
      result.tcp = attempt->tcp;
      result.peer = attempt->addr;
      result.reading = attempt->reading;
      delete attempt;
      self->finish(job, std::move(result));
      return;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(attempt->tcp), freeTcp);
    self->recordFailure(job, attempt->addr, status);
    delete attempt;
    // RFC 8305 section 5: a failure starts the next attempt at once.
    uv_timer_stop(job->stagger);
    self->startNextAttempt(job);
  }

  void fail(Job* job) {
    ConnectResult result;
    result.status = job->last_status != 0 ? job->last_status : UV_ECONNREFUSED;
    result.error = job->last_error;
    finish(job, std::move(result));
  }

  // Ends the job with `result`: closes every other attempt and delivers (from
  // the loop when we are still inside connect()).
  void finish(Job* job, ConnectResult result) {
    if (job->done) {
      return;
    }
    job->done = true;
    job->result = std::move(result);
    uv_timer_stop(job->deadline);
    uv_timer_stop(job->stagger);
    detachAttempts(job);
    if (!starting_) {
      deliver(job);
    }
  }

  void detachAttempts(Job* job) {
    for (Attempt* attempt : job->pending) {
      attempt->job = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(attempt->tcp), freeTcp);
      attempt->tcp = nullptr;
    }
    job->pending.clear();
  }

  static void onDeliver(uv_timer_t* timer) {
    auto* job = static_cast<Job*>(timer->data);
    job->impl->deliver(job);
  }

  void deliver(Job* job) {
    Callback cb = std::move(job->cb);
    ConnectResult result = std::move(job->result);
    destroy(job);
    cb(std::move(result));
  }

  void destroy(Job* job) {
    jobs_.erase(job->id);
    uv_close(reinterpret_cast<uv_handle_t*>(job->deadline), freeHandle);
    uv_close(reinterpret_cast<uv_handle_t*>(job->stagger), freeHandle);
    delete job;
  }

  void cancel(uint64_t id) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      return;
    }
    Job* job = it->second;
    detachAttempts(job);
    // A result that was won but not yet delivered carries a connected handle
    // nobody else will close.
    if (job->result.tcp != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(job->result.tcp), freeTcp);
      job->result.tcp = nullptr;
    }
    destroy(job);
  }

  void close() {
    closed_ = true;
    std::vector<uint64_t> ids;
    ids.reserve(jobs_.size());
    for (const auto& [id, job] : jobs_) {
      ids.push_back(id);
    }
    for (uint64_t id : ids) {
      cancel(id);
    }
  }
};

Connector::Connector(uv_loop_t* loop) : impl_(std::make_unique<Impl>(loop)) {}

Connector::~Connector() {
  impl_->close();
}

uint64_t Connector::connect(std::vector<sockaddr_storage> addresses,
                            std::chrono::milliseconds timeout, Callback cb, EarlyRead early_read) {
  return impl_->connect(std::move(addresses), timeout, std::move(cb), early_read);
}

void Connector::cancel(uint64_t id) {
  impl_->cancel(id);
}

void Connector::close() {
  impl_->close();
}

}  // namespace switchyard
