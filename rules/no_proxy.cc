#include "rules/no_proxy.h"

namespace switchyard::rules {

bool isLoopbackShortcut(std::string_view host) {
  return HostKey::from(host).loopback;
}

NoProxyList NoProxyList::parse(std::string_view value) {
  NoProxyList list;
  list.value_ = std::string(value);
  list.matcher_.addList(0, value);
  return list;
}

NoProxyVerdict NoProxyList::evaluate(std::string_view host, uint16_t port) const {
  return evaluate(HostKey::from(host), port);
}

NoProxyVerdict NoProxyList::evaluate(const HostKey& host, uint16_t port) const {
  NoProxyVerdict verdict;
  if (host.loopback) {
    verdict.bypass = true;
    verdict.loopback = true;
    return verdict;
  }
  // Go joins host and port and splits them again; a host with '[' or ']'
  // does not survive that, and useProxy() then answers "no proxy".
  if (host.malformed) {
    verdict.bypass = true;
    verdict.malformed_host = true;
    return verdict;
  }
  verdict.match = matcher_.match(host, port);
  verdict.bypass = verdict.match.has_value();
  return verdict;
}

}  // namespace switchyard::rules
