// The destination policy, applied to resolved addresses (not names) so that
// DNS cannot point an allowed name at loopback, a metadata service or this
// proxy itself. Shared by tunnels and forwarded requests.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "daemon/connector.h"
#include "daemon/proxy_status.h"
#include "daemon/resolver.h"
#include "daemon/runtime.h"
#include "rules/decision.h"

namespace switchyard {

// Keeps the addresses of `result` we may connect to: never one of our own
// listeners, and no private address when `deny_private`. `host` is the name
// asked for; `hop_name` the next hop as shown to people (masked). When none
// is left, returns false with *error: 502 for a failed or empty lookup, 508
// when the name is this proxy, 403 when only private addresses remained.
bool usableDestinations(const Runtime& rt, const ResolveResult& result, bool deny_private,
                        const std::string& host, const std::string& hop_name,
                        std::vector<sockaddr_storage>* usable, ProxyError* error);

// For an `upstream` decision: the parent proxy from the rule's URL as the
// next hop, and the Proxy-Authorization its credentials give (empty when it
// has none). False with *error (502) when the URL is unusable.
bool parentHop(const rules::Decision& decision, Authority* hop, std::string* proxy_authorization,
               ProxyError* error);

// The answer to a failed connect to `hop_name`: 504 when the deadline
// (`connect_timeout`) passed, 502 when refused or otherwise unreachable.
ProxyError connectFailure(const ConnectResult& result, const std::string& hop_name,
                          std::chrono::milliseconds connect_timeout);

}  // namespace switchyard
