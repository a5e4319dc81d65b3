// The admin listener's endpoints (`admin:` in the config), as a pure
// request -> response function, so that the daemon only has to parse the
// request line, call handleAdminRequest() and write what it returns:
//
//   GET /healthz             200 "ok" while the event loop runs
//   GET /readyz              200 when serving, 503 before that and while draining
//   GET /metrics             Prometheus text format 0.0.4 (daemon/metrics.h)
//   GET /explain?url=URL     the `switchyard explain --json` object for URL
//   GET /explain?module=PATH    ... or for a module-proxy request of PATH
//                            (add &format=text for the readable form)
//   GET /proxy.pac           the PAC file of rules/pac.h
//
// HEAD is answered like GET without a body; other methods get 405. Access
// control (access.admin_allow_clients) is checked by the listener when it
// accepts, with adminClientAllowed().
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/environment.h"
#include "rules/snapshot.h"

namespace switchyard {

class Metrics;

struct AdminResponse {
  int status = 200;
  std::string content_type;
  // What a GET carries. For HEAD it is kept too, so that Content-Length is
  // right; serializeAdminResponse() leaves it out of the bytes it writes.
  std::string body;
  // Extra headers (Allow, Cache-Control); never Content-Length/Type.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct AdminContext {
  // The current config snapshot (null before the first one: /explain and
  // /proxy.pac then answer 503).
  rules::ConfigSnapshotPtr snapshot;
  // The process environment, read once at start: explain's `others` (curl's
  // and Python's reading of no_proxy) needs the raw variables. Null: none.
  const rules::EnvMap* process_env = nullptr;
  // Null: /metrics answers 503.
  const Metrics* metrics = nullptr;
  // Every listener bound and the config loaded, and not draining.
  bool ready = false;
  // The proxy address browsers should use, "host:port" or "[v6]:port",
  // normally the first `listen:` address. A wildcard host ("0.0.0.0:3128",
  // "[::]:3128", ":3128") is replaced by the host the client used to reach
  // the admin listener (its Host header), since that name reaches us.
  std::string proxy_host_port;
  // The request's Host header ("" when absent).
  std::string host_header;
};

// `method` and `target` as in the request line (target in origin form,
// "/explain?url=https%3A%2F%2Fexample.com%2F").
AdminResponse handleAdminRequest(std::string_view method, std::string_view target,
                                 const AdminContext& ctx);

// The answer for a client outside access.admin_allow_clients, for listeners
// that prefer a readable refusal to closing the connection.
AdminResponse adminClientRefused();

// The HTTP/1.1 bytes of a response: status line, Content-Type,
// Content-Length, the extra headers, `Connection: close` unless keep_alive,
// then the body unless `head_request`.
std::string serializeAdminResponse(const AdminResponse& response, bool head_request,
                                   bool keep_alive);

// Whether a peer may use the admin listener: `cidrs` is
// access.admin_allow_clients ("127.0.0.0/8", "::1", ...). IPv4-mapped IPv6
// peers are checked as IPv4. A list that does not parse allows nobody (the
// config loader has already refused such lists; this is the safe default).
bool adminClientAllowed(const sockaddr* addr, const std::vector<std::string>& cidrs);

}  // namespace switchyard
