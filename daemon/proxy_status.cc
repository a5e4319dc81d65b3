#include "daemon/proxy_status.h"

#include <array>

namespace switchyard {

namespace {

// Process-wide counters. The daemon runs one loop thread, so plain integers
// suffice; /metrics reads them on the same thread.
std::array<uint64_t, static_cast<size_t>(ProxyErrorKind::kCount)> g_counts{};

// An sf-string (RFC 8941 3.3.3) holds printable ASCII only; quotes and
// backslashes are escaped, anything else becomes '?'.
std::string sfString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      out.push_back('?');
    }
  }
  out.push_back('"');
  return out;
}

// A reason phrase is HTAB / SP / VCHAR / obs-text (RFC 9112 4); we keep to
// printable ASCII so that no client chokes on it.
std::string safeReason(const std::string& reason, int status) {
  std::string out;
  for (char c : reason) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  if (out.empty()) {
    out = reasonPhrase(status);
  }
  return out;
}

}  // namespace

const char* proxyErrorToken(ProxyErrorKind kind) {
  switch (kind) {
    case ProxyErrorKind::kDnsError:
      return "dns_error";
    case ProxyErrorKind::kDestinationIpProhibited:
      return "destination_ip_prohibited";
    case ProxyErrorKind::kDestinationUnavailable:
      return "destination_unavailable";
    case ProxyErrorKind::kConnectionRefused:
      return "connection_refused";
    case ProxyErrorKind::kConnectionTimeout:
      return "connection_timeout";
    case ProxyErrorKind::kConnectionTerminated:
      return "connection_terminated";
    case ProxyErrorKind::kConnectionReadTimeout:
      return "connection_read_timeout";
    case ProxyErrorKind::kHttpRequestDenied:
      return "http_request_denied";
    case ProxyErrorKind::kHttpRequestError:
      return "http_request_error";
    case ProxyErrorKind::kHttpResponseHeaderSectionSize:
      return "http_response_header_section_size";
    case ProxyErrorKind::kHttpProtocolError:
      return "http_protocol_error";
    case ProxyErrorKind::kProxyLoopDetected:
      return "proxy_loop_detected";
    case ProxyErrorKind::kProxyInternalResponse:
      return "proxy_internal_response";
    case ProxyErrorKind::kProxyConfigurationError:
      return "proxy_configuration_error";
    case ProxyErrorKind::kConnectionLimitReached:
      return "connection_limit_reached";
    case ProxyErrorKind::kDestinationNotFound:
      return "destination_not_found";
    case ProxyErrorKind::kTlsCertificateError:
      return "tls_certificate_error";
    case ProxyErrorKind::kTlsProtocolError:
      return "tls_protocol_error";
    case ProxyErrorKind::kCount:
      break;
  }
  return "proxy_internal_error";
}

int proxyErrorRank(ProxyErrorKind kind) {
  switch (kind) {
    case ProxyErrorKind::kDnsError:
      return 1;
    case ProxyErrorKind::kConnectionTimeout:
      return 2;
    case ProxyErrorKind::kDestinationUnavailable:
      return 3;
    case ProxyErrorKind::kConnectionRefused:
      return 4;
    case ProxyErrorKind::kDestinationIpProhibited:
      return 5;
    default:
      return 0;
  }
}

std::string durationText(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 == 0) {
    return std::to_string(ms.count() / 1000) + "s";
  }
  return std::to_string(ms.count()) + "ms";
}

std::string proxyStatusValue(const ProxyError& error) {
  std::string out = std::string(kViaPseudonym) + "; error=" + proxyErrorToken(error.kind);
  if (error.received_status) {
    out += "; received-status=" + std::to_string(*error.received_status);
  }
  if (!error.next_hop.empty()) {
    out += "; next-hop=" + sfString(error.next_hop);
  }
  if (!error.details.empty()) {
    out += "; details=" + sfString(error.details);
  }
  if (!error.upstream_proxy_status.empty()) {
    out = error.upstream_proxy_status + ", " + out;
  }
  return out;
}

std::string recordError(const ProxyError& error, bool close, bool head_only,
                        DecisionRecord* record) {
  std::string reason = safeReason(error.reason, error.status);
  std::string proxy_status = proxyStatusValue(error);
  std::string body = std::to_string(error.status) + " " + reason + "\n";
  if (!error.body.empty()) {
    body = error.body;
  } else if (!error.details.empty()) {
    body += "\n" + error.details + "\n";
  }
  HeaderList headers;
  headers.add("Content-Type", "text/plain; charset=utf-8");
  headers.add("Content-Length", std::to_string(body.size()));
  headers.add("Proxy-Status", proxy_status);
  headers.add("Cache-Control", "no-store");
  for (const HeaderField& f : error.extra_headers.fields()) {
    headers.add(f.name, f.value);
  }
  if (close) {
    headers.add("Connection", "close");
  }
  ++g_counts[static_cast<size_t>(error.kind)];
  if (record != nullptr) {
    record->status = error.status;
    record->proxy_status = proxy_status;
  }
  std::string response = serializeResponseHead(error.status, reason, headers);
  if (!head_only) {
    response += body;
  }
  return response;
}

uint64_t proxyErrorCount(ProxyErrorKind kind) {
  return g_counts[static_cast<size_t>(kind)];
}

// The decision's part of a log record.
void applyDecision(const rules::Decision& d, DecisionRecord* record) {
  record->rule = d.rule;
  record->source = d.source.str();
  record->matched = d.matched.describe();
  record->action = rules::actionName(d.action);
  switch (d.action) {
    case rules::Action::kDirect:
      record->next_hop = "direct";
      break;
    case rules::Action::kUpstream:
      record->next_hop = rules::maskUrlCredentials(d.upstream);
      break;
    case rules::Action::kMirror:
      record->next_hop = d.mirrors;
      break;
    case rules::Action::kDeny:
      record->next_hop.clear();
      break;
  }
  record->config_gen = d.config_gen;
}

ProxyError deniedByRule(const rules::Decision& d, const std::string& what) {
  ProxyError e;
  e.status = 403;
  e.reason = "Denied by rule " + d.rule;
  e.kind = ProxyErrorKind::kHttpRequestDenied;
  e.details =
      what + " denied by rule " + d.rule + " (" + d.source.str() + "): " + d.matched.describe();
  return e;
}

ProxyError leakGuarded(const rules::Decision& d, const std::string& what) {
  ProxyError e;
  e.status = 404;
  e.reason = "Private module, not fetched";
  e.kind = ProxyErrorKind::kHttpRequestDenied;
  e.details = what + ": " + d.leak_guard.value_or("leak guard");
  return e;
}

}  // namespace switchyard
