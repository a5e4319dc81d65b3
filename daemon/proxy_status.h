// One function reports every refusal and failure to all its audiences at
// once: the client (status line whose reason names the rule, an RFC 9209
// `Proxy-Status` header, a plain-text body a person can read), the decision
// log (status and proxy_status fields) and the per-kind counters behind
// /metrics. Nothing else in the daemon builds an error response, so the
// three can never disagree.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "daemon/decision_log.h"
#include "daemon/http_message.h"
#include "rules/decision.h"

namespace switchyard {

// RFC 9209 section 2.3 error types we produce.
enum class ProxyErrorKind {
  kDnsError,                       // the name did not resolve
  kDestinationIpProhibited,        // every address was refused by deny_private_destinations
  kDestinationUnavailable,         // resolved, but no address could be reached
  kConnectionRefused,              // the destination answered with RST
  kConnectionTimeout,              // no connection within limits.connect_timeout
  kConnectionTerminated,           // the next hop closed before a complete response
  kConnectionReadTimeout,          // the next hop sent nothing within response_timeout
  kHttpRequestDenied,              // a rule, the ACL or the port policy refused it
  kHttpRequestError,               // the client's request was malformed or unsupported
  kHttpResponseHeaderSectionSize,  // the next hop's head exceeded our limit
  kHttpProtocolError,              // the next hop did not speak HTTP/1.1 correctly
  kProxyLoopDetected,              // the request came back to us
  kProxyInternalResponse,          // we answered ourselves (e.g. 501, 408)
  kProxyConfigurationError,        // the matching rule cannot be carried out
  kConnectionLimitReached,         // limits.max_connections
  kDestinationNotFound,            // no mirror had it (404/410 everywhere)
  kTlsCertificateError,            // the next hop's certificate did not verify
  kTlsProtocolError,               // the TLS handshake with the next hop failed
  kCount,
};

// The RFC 9209 token, e.g. "http_request_denied".
const char* proxyErrorToken(ProxyErrorKind kind);

// How much a kind says about the cause: when several attempts fail
// differently, the highest rank is reported (a refused private address says
// more than the DNS error of another name).
int proxyErrorRank(ProxyErrorKind kind);

struct ProxyError {
  int status = 502;
  // The reason phrase; it names what decided, e.g. "Denied by rule no-ads".
  // Empty: the standard phrase for `status`.
  std::string reason;
  ProxyErrorKind kind = ProxyErrorKind::kProxyInternalResponse;
  // One sentence for people: what happened and which rule or limit decided.
  // Also the Proxy-Status `details` parameter. Never carries credentials.
  std::string details;
  std::optional<int> received_status;  // the next hop's status, when it answered
  std::string next_hop;                // masked; the `next-hop` parameter
  // A parent's own Proxy-Status, listed before ours (RFC 9209 2: the member
  // closest to the origin comes first).
  std::string upstream_proxy_status;
  HeaderList extra_headers;  // e.g. Proxy-Authenticate
  // When set, the whole text/plain body instead of the status line plus
  // `details` (a mirror walk lists every attempt here).
  std::string body;
};

// The Proxy-Status field value, e.g. `switchyard; error=http_request_denied;
// details="rule no-ads"`.
std::string proxyStatusValue(const ProxyError& error);

// A limit as error texts name it: "10s", or "250ms" when not whole seconds.
std::string durationText(std::chrono::milliseconds ms);

// Fills record->status and record->proxy_status, counts the kind, and
// returns the complete response (head and body). `close` adds
// `Connection: close`; `head_only` (a HEAD request) leaves the body out
// while keeping its Content-Length.
std::string recordError(const ProxyError& error, bool close, bool head_only,
                        DecisionRecord* record);

// How many errors of `kind` recordError() has reported since start.
uint64_t proxyErrorCount(ProxyErrorKind kind);

// The decision's part of a log record: rule, source, matched entry, action,
// next hop, config generation, and the module and leak-guard verdict.
void applyDecision(const rules::Decision& d, DecisionRecord* record);

// 403 for action deny: the reason names the rule, the details add where it
// is written and what matched. `what` is the request ("CONNECT h:443").
ProxyError deniedByRule(const rules::Decision& d, const std::string& what);

// 404 for a request the leak guard stopped (d.leak_guard set): a not-found
// answer, so that the go command's own list goes on (to `direct`, where its
// GOPRIVATE settings apply), with the guard's sentence as the details.
ProxyError leakGuarded(const rules::Decision& d, const std::string& what);

}  // namespace switchyard
