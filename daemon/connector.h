// Connector: opens a TCP connection to one of several resolved addresses,
// Happy Eyeballs style (RFC 8305: families interleaved, IPv6 first, a new
// attempt every 250 ms while earlier ones are pending), under one deadline.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace switchyard {

struct ConnectResult {
  int status = 0;          // 0, or a negative UV_E* code of the last failure
  bool timed_out = false;  // the overall deadline passed (-> 504)
  std::string error;       // readable reason when status != 0
  // On success the connected handle; ownership passes to the callback, which
  // must eventually uv_close() it and delete it (it was allocated with new).
  uv_tcp_t* tcp = nullptr;
  sockaddr_storage peer{};  // the address that answered
  bool reading = false;     // reads were started with the EarlyRead callbacks
};

// Callbacks to read with from the moment a socket starts connecting. libuv
// 1.44 re-registers a socket whose reads start after its connect completed
// with two epoll_ctl calls (ADD, failing with EEXIST, then MOD); started
// together with the connect it costs none. libuv runs neither callback before
// the connect callback, so the owner sets the handle's data in time; until
// then data is nullptr.
struct EarlyRead {
  uv_alloc_cb alloc = nullptr;
  uv_read_cb read = nullptr;
};

class Connector {
 public:
  using Callback = std::function<void(ConnectResult&&)>;
  static constexpr std::chrono::milliseconds kAttemptDelay{250};

  explicit Connector(uv_loop_t* loop);
  ~Connector();

  // Starts connecting; `cb` is called exactly once, asynchronously, unless
  // cancelled. Returns an id for cancel(). With `early_read`, each attempt's
  // socket reads with those callbacks while it connects (see EarlyRead).
  uint64_t connect(std::vector<sockaddr_storage> addresses, std::chrono::milliseconds timeout,
                   Callback cb, EarlyRead early_read = {});
  void cancel(uint64_t id);
  void close();  // cancels everything and closes all handles

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Destination policy for `deny_private_destinations`: loopback, RFC 1918,
// link-local (169.254/16, fe80::/10), unique-local (fc00::/7), CGNAT
// (100.64/10), unspecified, multicast, and IPv4-mapped forms of those; also
// 0.0.0.0/8, 255.255.255.255, the deprecated site-local fec0::/10, and NAT64
// (64:ff9b::/96) forms of private IPv4 addresses.
bool isPrivateDestination(const sockaddr* addr);

}  // namespace switchyard
