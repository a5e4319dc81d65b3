#include "rules/decision.h"
#include "rules/snapshot.h"

namespace switchyard::rules {

// TODO(lead): the real decision engine. Until then everything goes direct.
Decision decide(const RequestFacts&, const ConfigSnapshot& snapshot) {
  Decision d;
  d.action = Action::kDirect;
  d.rule = "default";
  d.config_gen = snapshot.generation();
  return d;
}

}  // namespace switchyard::rules

namespace switchyard::rules {

std::string maskUrlCredentials(const std::string& url) {
  size_t scheme_end = url.find("://");
  size_t start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  size_t at = url.find('@', start);
  size_t slash = url.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) {
    return url;
  }
  size_t colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) {
    return url;
  }
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::string MatchedEntry::describe() const {
  switch (kind) {
    case Kind::kNone:
      return "none";
    case Kind::kLoopback:
      return "loopback";
    case Kind::kEntry:
      break;
  }
  return list + " entry \"" + entry + "\" (" + how + ")";
}

std::string Decision::describe() const {
  std::string out = std::string(actionName(action)) + " by rule " + rule + " (" + source.str() +
                    "): " + matched.describe();
  return out;
}

}  // namespace switchyard::rules

namespace switchyard::rules {

const char* requestKindName(RequestKind kind) {
  switch (kind) {
    case RequestKind::kConnect:
      return "connect";
    case RequestKind::kAbsolute:
      return "absolute";
    case RequestKind::kIntercepted:
      return "intercepted";
    case RequestKind::kModuleProxy:
      return "module-proxy";
  }
  return "?";
}

}  // namespace switchyard::rules
