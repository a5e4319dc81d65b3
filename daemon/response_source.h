// ResponseSource / ResponseSink: what answers a GET for a client, whatever
// it comes from — a MirrorFetch walking a mirror list, the module cache
// serving a stored file, a cache fill shared by several clients, or a
// response switchyard makes itself. The consumers (MirrorExchange for
// plain-http clients, InterceptSession for intercepted tunnels) only talk
// to these two interfaces, so a new source needs no change in them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/decision_log.h"
#include "daemon/http_message.h"
#include "daemon/runtime.h"
#include "daemon/upstream_http.h"

namespace switchyard {

// The answer when no entry served the request.
struct MirrorFailure {
  int status = 502;  // 404 (not-found class), 504 (a timeout decided), 502
  // The reason phrase: "Not found on any mirror", "Mirror timeout",
  // "Mirror failed".
  std::string reason;
  // The RFC 9209 error type of the attempt that decided: destination_not_found,
  // destination_unavailable (an error status), dns_error, connection_refused,
  // connection_timeout, connection_read_timeout, connection_terminated,
  // tls_certificate_error, tls_protocol_error, http_protocol_error,
  // http_response_header_section_size, destination_ip_prohibited,
  // proxy_loop_detected, proxy_configuration_error.
  std::string proxy_status_error;
  std::optional<int> received_status;  // that attempt's HTTP status, if any
  std::string next_hop;                // that attempt's URL (credentials masked)
  // One line for Proxy-Status `details`: "<url>: <what happened>".
  std::string details;
  // The whole text/plain; charset=utf-8 body: the status line, then the
  // request and every attempt with its result and why the walk went on.
  std::string body;
  std::string cache = "none";  // the cache result for the decision log
};

// What the Sink learns with the head of the response that is served.
struct MirrorResponseInfo {
  std::string served_by;  // the URL fetched (credentials masked), or "cache"
  std::string next_hop;   // the list entry: mirror base URL (masked) or "direct"
  std::string resolved;   // "ip:port" that answered
  bool direct = false;    // the `direct` entry served it (the original origin)
  // False for a HEAD request and for 1xx/204/304: no body follows (but
  // onMirrorComplete() does).
  bool has_body = true;
  // The body length the upstream declared; absent when it was chunked or
  // delimited by the end of the connection, so the sink must re-frame
  // (chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0 ones).
  std::optional<uint64_t> content_length;
  std::string cache = "none";  // hit | miss | stale | none, for the decision log
};

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // A 2xx/3xx head was chosen. Hop-by-hop fields (Connection,
  // Transfer-Encoding, Keep-Alive, ...) are already removed; Content-Length
  // is kept when known.
  virtual void onMirrorHead(const ResponseHead& head, const MirrorResponseInfo& info) = 0;
  // A piece of the body; `data` lies inside `block`, which the sink may keep
  // referenced for a zero-copy write. May call pause() or cancel().
  virtual void onMirrorBody(const BufferRef& block, const char* data, size_t len) = 0;
  // The whole body arrived (and, for a cache fill, was stored and checked).
  virtual void onMirrorComplete() = 0;
  // Nothing was served; nothing was sent to the sink before.
  virtual void onMirrorFailed(const MirrorFailure& failure) = 0;
  // The served response broke off after its head: the client must see an
  // unclean end (no terminating chunk; close the connection).
  virtual void onMirrorAborted(const std::string& why) = 0;
};

// Exactly one terminal call (onMirrorComplete, onMirrorFailed or
// onMirrorAborted) ends every source that was not cancelled; none of them
// runs inside the call that created the source. The source stays readable
// (attempts()) until the terminal call returns, and must not be touched
// afterwards.
class ResponseSource {
 public:
  // Body backpressure: stop and restart delivering body pieces. A little
  // more may arrive after pause().
  virtual void pause() = 0;
  virtual void resume() = 0;
  // Stops everything; no Sink call follows, and the source frees itself.
  // The pointer must not be used afterwards (copy attempts() first).
  virtual void cancel() = 0;
  // Every upstream attempt so far, for the decision log.
  virtual const std::vector<AttemptRecord>& attempts() const = 0;
  // During onMirrorAborted: whether switchyard broke the response off (its
  // own timer, a failed cache check) rather than the upstream; the decision
  // log's closed_by says which.
  virtual bool abortedByProxy() const { return false; }

 protected:
  virtual ~ResponseSource() = default;
};

}  // namespace switchyard
