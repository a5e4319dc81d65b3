// NO_PROXY as Go (golang.org/x/net/http/httpproxy, master) reads it: the
// normative reading for switchyard's own upstream choice (SEMANTICS.md (a)).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rules/host_match.h"

namespace switchyard::rules {

// Go's rule 1, applied before NO_PROXY is looked at: the host is exactly
// "localhost" (case-sensitive: not "LOCALHOST", "localhost." or
// "foo.localhost") or a loopback IP (127.0.0.0/8, ::1, ::ffff:127.x.y.z).
// Non-ASCII hosts are converted to IDNA ASCII first, as Go does.
bool isLoopbackShortcut(std::string_view host);

struct NoProxyVerdict {
  bool bypass = false;    // true: go direct (never through the parent proxy)
  bool loopback = false;  // bypass because of rule 1, whatever NO_PROXY says
  // Bypass because the host contains '[' or ']': Go's useProxy() cannot split
  // it back out of host:port and answers "no proxy" (never the case for a
  // host taken from a valid URL or CONNECT authority with brackets removed).
  bool malformed_host = false;
  // The first matching entry in list order (list_id 0), when an entry decided.
  std::optional<HostListMatch> match;
};

// One NO_PROXY value, parsed once, evaluated per request.
class NoProxyList {
 public:
  // Never fails: like Go, pieces that mean nothing are kept as entries that
  // never match, or skipped.
  static NoProxyList parse(std::string_view value);

  // `host` is the request host without IPv6 brackets; `port` the effective
  // port (explicit, else the scheme's default).
  NoProxyVerdict evaluate(std::string_view host, uint16_t port) const;
  NoProxyVerdict evaluate(const HostKey& host, uint16_t port) const;

  const std::string& value() const { return value_; }
  size_t entryCount() const { return matcher_.entryCount(); }

 private:
  std::string value_;
  HostMatcher matcher_;
};

}  // namespace switchyard::rules
