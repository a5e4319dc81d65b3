// Resolver: asynchronous name resolution on the event loop (c-ares), with
// static `resolve:` overrides, /etc/hosts, and a bounded TTL cache.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace switchyard {

struct ResolveResult {
  int status = 0;     // 0, or a negative UV_E* code (UV_EAI_NONAME for NXDOMAIN)
  std::string error;  // readable reason when status != 0
  std::vector<sockaddr_storage> addresses;  // port already set; v6 and v4 mixed
  bool from_cache = false;
};

class Resolver {
 public:
  using Callback = std::function<void(const ResolveResult&)>;
  static constexpr size_t kDefaultMaxEntries = 10000;

  Resolver(uv_loop_t* loop, size_t max_entries = kDefaultMaxEntries);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Replaces the `resolve:` overrides (name -> IP literal); used at start and
  // on SIGHUP. Overrides win over /etc/hosts and DNS.
  void setOverrides(std::map<std::string, std::string> overrides);

  // Resolves `host` (a name or an IP literal) and calls `cb` exactly once,
  // always asynchronously (never from inside resolve()), unless cancelled.
  // Returns a request id for cancel().
  uint64_t resolve(const std::string& host, uint16_t port, Callback cb);

  // After cancel(id) the callback of that request is never called.
  void cancel(uint64_t id);

  // Closes every handle; pending callbacks are dropped. Call before the loop
  // ends; the destructor asserts it happened.
  void close();

  // For tests: the clock used for TTL expiry.
  void setClockForTest(std::function<std::chrono::steady_clock::time_point()> now);
  // For tests: DNS servers as "127.0.0.1:5353,[::1]:5353" instead of
  // /etc/resolv.conf's. Returns false when c-ares rejects the list.
  bool setServersForTest(const std::string& servers_csv);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard
