#include "daemon/destination.h"

#include "daemon/connector.h"
#include "rules/config_loader.h"

namespace switchyard {

bool usableDestinations(const Runtime& rt, const ResolveResult& result, bool deny_private,
                        const std::string& host, const std::string& hop_name,
                        std::vector<sockaddr_storage>* usable, ProxyError* error) {
  usable->clear();
  if (result.status != 0) {
    error->status = 502;
    error->reason = "Cannot resolve " + host;
    error->kind = ProxyErrorKind::kDnsError;
    error->details = "cannot resolve " + hop_name + ": " + result.error;
    return false;
  }
  bool loop = false;
  std::string refused;  // the private addresses, named in the 403
  for (const sockaddr_storage& addr : result.addresses) {
    const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
    if (rt.isOwnListener(sa)) {
      loop = true;
      continue;
    }
    if (deny_private && isPrivateDestination(sa)) {
      refused += (refused.empty() ? "" : ", ") + addressIp(sa);
      continue;
    }
    usable->push_back(addr);
  }
  if (!usable->empty()) {
    return true;
  }
  if (loop) {
    error->status = 508;
    error->reason = "Loop Detected";
    error->kind = ProxyErrorKind::kProxyLoopDetected;
    error->details = hop_name + " is this proxy itself";
  } else if (!refused.empty()) {
    error->status = 403;
    error->reason = "Destination not allowed";
    error->kind = ProxyErrorKind::kDestinationIpProhibited;
    error->details = host + " resolves only to private addresses (" + refused +
                     "), refused by access.deny_private_destinations";
  } else {
    error->status = 502;
    error->reason = "Cannot resolve " + host;
    error->kind = ProxyErrorKind::kDnsError;
    error->details = "no address for " + hop_name;
  }
  return false;
}

bool parentHop(const rules::Decision& decision, Authority* hop, std::string* proxy_authorization,
               ProxyError* error) {
  std::string why;
  std::optional<rules::ProxyUrl> parent =
      rules::parseProxyUrl(decision.upstream, /*scheme_optional=*/true, &why);
  if (!parent || parent->scheme != "http") {
    error->status = 502;
    error->reason = "Parent proxy unusable";
    error->kind = ProxyErrorKind::kProxyConfigurationError;
    error->details = "rule " + decision.rule + " (" + decision.source.str() + ") names parent " +
                     rules::maskUrlCredentials(decision.upstream) +
                     (parent ? ": only http:// parent proxies are supported" : ": " + why);
    return false;
  }
  hop->host = parent->host;
  hop->port = parent->port;
  hop->ipv6 = parent->host.find(':') != std::string::npos;
  proxy_authorization->clear();
  if (parent->has_credentials) {
    *proxy_authorization = "Basic " + base64Encode(parent->user + ":" + parent->password);
  }
  return true;
}

ProxyError connectFailure(const ConnectResult& result, const std::string& hop_name,
                          std::chrono::milliseconds connect_timeout) {
  ProxyError e;
  if (result.timed_out) {
    e.status = 504;
    e.reason = "Connect timeout";
    e.kind = ProxyErrorKind::kConnectionTimeout;
    e.details = "no connection to " + hop_name + " within limits.connect_timeout (" +
                durationText(connect_timeout) + ")";
  } else if (result.status == UV_ECONNREFUSED) {
    e.status = 502;
    e.reason = "Connection refused";
    e.kind = ProxyErrorKind::kConnectionRefused;
    e.details = hop_name + " refused the connection";
  } else {
    e.status = 502;
    e.reason = "Cannot connect";
    e.kind = ProxyErrorKind::kDestinationUnavailable;
    e.details = "cannot connect to " + hop_name + ": " + result.error;
  }
  return e;
}

}  // namespace switchyard
