// The GOPROXY-server door (DESIGN.md front door 3): an origin-form request
// on the proxy port ("GET /github.com/x/y/@v/list") is one for switchyard as
// a module proxy. This file turns such a request into either an answer of
// our own (not a GOPROXY path, wrong method, leak guard, deny, unknown
// checksum database) or a ResponseSource that serves it: the module cache
// when cache.dir is set, otherwise a MirrorFetch along our own GOPROXY list
// (or a matching mirror rule's mirrors) where `direct` ends the walk as
// not-found — switchyard has no version control, so the client's own list
// continues.
#pragma once

#include <functional>
#include <optional>

#include "daemon/decision_log.h"
#include "daemon/http_message.h"
#include "daemon/proxy_status.h"
#include "daemon/response_source.h"
#include "daemon/runtime.h"
#include "rules/goproxy_request.h"

namespace switchyard {

struct GoproxyDoor {
  // Answer this and stop (no source), or ...
  std::optional<ProxyError> answer;
  // ... start this source for the client.
  std::function<ResponseSource*(ResponseSink*)> source;
};

// Decides an origin-form request read from a client; fills `record` (module,
// rule, action, next hop) on the way.
// `via_token` is our Via received-by, added to upstream requests.
GoproxyDoor openGoproxyDoor(Runtime* rt, const LiveConfigPtr& live, const RequestHead& head,
                            const std::string& via_token, DecisionRecord* record);

// The content type a GOPROXY server sends for each endpoint (SEMANTICS.md
// E.1); the go command does not check it, but people and caches do.
const char* goproxyContentType(rules::GoproxyRequest::Kind kind);

// A response made by switchyard itself (the empty 200 of /sumdb/<db>/
// supported), delivered to the sink on the next loop turn.
ResponseSource* startLocalResponse(Runtime* rt, int status, HeaderList headers, std::string body,
                                   bool head_only, ResponseSink* sink);

}  // namespace switchyard
