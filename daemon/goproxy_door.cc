// The GOPROXY-server door: see goproxy_door.h.
#include "daemon/goproxy_door.h"

#include <utility>

#include "daemon/mirror_exchange.h"
#include "daemon/mirror_fetch.h"
#include "daemon/module_cache.h"
#include "rules/snapshot_compiled.h"

namespace switchyard {

namespace {

using Kind = rules::GoproxyRequest::Kind;

ProxyError notFound(std::string reason, std::string details) {
  ProxyError e;
  e.status = 404;
  e.reason = std::move(reason);
  e.kind = ProxyErrorKind::kDestinationNotFound;
  e.details = std::move(details);
  return e;
}

// Delivers a response made here: head, body, end, on the next loop turn.
class LocalResponse : public ResponseSource {
 public:
  LocalResponse(Runtime* rt, int status, HeaderList headers, std::string body, bool head_only,
                ResponseSink* sink)
      : sink_(sink), body_(std::move(body)), head_only_(head_only) {
    head_.status = status;
    head_.http_major = 1;
    head_.http_minor = 1;
    head_.headers = std::move(headers);
    head_.headers.add("Content-Length", std::to_string(body_.size()));
    uv_timer_init(rt->loop(), &timer_);
    timer_.data = this;
    startTimer<&LocalResponse::onTimer, LocalResponse>(&timer_, 0);
  }

  void pause() override {}
  void resume() override {}
  void cancel() override {
    sink_ = nullptr;
    closeHandle<&LocalResponse::onClosed, LocalResponse>(asHandle(&timer_));
  }
  const std::vector<AttemptRecord>& attempts() const override { return attempts_; }

 private:
  void onTimer() {
    ResponseSink* sink = sink_;
    sink_ = nullptr;
    closeHandle<&LocalResponse::onClosed, LocalResponse>(asHandle(&timer_));
    MirrorResponseInfo info;
    info.served_by = "switchyard";
    info.next_hop = "switchyard";
    info.has_body = !head_only_ && !body_.empty();
    info.content_length = body_.size();
    sink->onMirrorHead(head_, info);
    if (info.has_body) {
      BufferRef block = BufferRef::make();
      // Local answers are a few bytes; one block holds them.
      size_t n = std::min(body_.size(), BufferPool::kBlockSize);
      std::copy_n(body_.data(), n, block.data());
      sink->onMirrorBody(block, block.data(), n);
    }
    sink->onMirrorComplete();
  }
  void onClosed(uv_handle_t*) { delete this; }

  ResponseSink* sink_;
  ResponseHead head_;
  std::string body_;
  bool head_only_;
  uv_timer_t timer_;
  std::vector<AttemptRecord> attempts_;
};

}  // namespace

const char* goproxyContentType(Kind kind) {
  switch (kind) {
    case Kind::kInfo:
    case Kind::kLatest:
      return "application/json";
    case Kind::kZip:
      return "application/zip";
    case Kind::kSumdbTile:
      return "application/octet-stream";
    case Kind::kList:
    case Kind::kMod:
    case Kind::kSumdbSupported:
    case Kind::kSumdbLatest:
    case Kind::kSumdbLookup:
      return "text/plain; charset=utf-8";
  }
  return "application/octet-stream";
}

ResponseSource* startLocalResponse(Runtime* rt, int status, HeaderList headers, std::string body,
                                   bool head_only, ResponseSink* sink) {
  return new LocalResponse(rt, status, std::move(headers), std::move(body), head_only, sink);
}

GoproxyDoor openGoproxyDoor(Runtime* rt, const LiveConfigPtr& live, const RequestHead& head,
                            const std::string& via_token, DecisionRecord* record) {
  GoproxyDoor door;
  const bool head_only = head.method == "HEAD";
  if (head.method != "GET" && !head_only) {
    ProxyError e;
    e.status = 405;
    e.reason = "Method Not Allowed";
    e.kind = ProxyErrorKind::kHttpRequestError;
    e.details = head.method + " " + head.target + ": a GOPROXY server answers GET and HEAD only";
    e.extra_headers.add("Allow", "GET, HEAD");
    door.answer = std::move(e);
    return door;
  }
  rules::GoproxyRequest req;
  std::string why;
  if (!rules::parseGoproxyRequest(head.target, &req, &why)) {
    door.answer = notFound("Not a GOPROXY path",
                           head.target + ": " + why +
                               "; this port answers GOPROXY requests (<module>/@v/list, "
                               "<module>/@v/<version>.info|.mod|.zip, <module>/@latest, "
                               "sumdb/<name>/...) and proxy requests");
    return door;
  }
  const bool is_sumdb = req.kind == Kind::kSumdbSupported || req.kind == Kind::kSumdbLatest ||
                        req.kind == Kind::kSumdbLookup || req.kind == Kind::kSumdbTile;
  rules::RequestFacts facts;
  facts.kind = rules::RequestKind::kModuleProxy;
  facts.path = head.target;
  if (!is_sumdb || req.kind == Kind::kSumdbLookup) {
    facts.module = req.module;
    facts.sumdb_lookup = req.kind == Kind::kSumdbLookup;
  }
  record->module = facts.module.value_or("");
  rules::Decision decision = rt->decide(facts, *live->snapshot);
  applyDecision(decision, record);
  if (decision.leak_guard) {
    door.answer = leakGuarded(decision, head.target);
    return door;
  }
  if (decision.action == rules::Action::kDeny) {
    door.answer = deniedByRule(decision, head.target);
    return door;
  }
  if (decision.action == rules::Action::kUpstream) {
    ProxyError e;
    e.status = 502;
    e.reason = "Cannot carry out rule " + decision.rule;
    e.kind = ProxyErrorKind::kProxyConfigurationError;
    e.details = "rule " + decision.rule + " (" + decision.source.str() +
                ") says upstream, which has no meaning for a GOPROXY request; use mirror";
    door.answer = std::move(e);
    return door;
  }

  MirrorFetch::Params p;
  std::string error;
  const rules::GosumdbConfig& sumdb = live->snapshot->compiled().gosumdb;
  if (is_sumdb) {
    if (sumdb.off || req.sumdb_name != sumdb.name) {
      door.answer = notFound("Unknown checksum database",
                             "sumdb/" + req.sumdb_name + ": this proxy serves only the GOSUMDB " +
                                 (sumdb.off ? std::string("(off)") : sumdb.name));
      return door;
    }
    if (req.kind == Kind::kSumdbSupported) {
      door.source = [rt, head_only](ResponseSink* sink) {
        return startLocalResponse(rt, 200, HeaderList(), std::string(), head_only, sink);
      };
      record->next_hop = "switchyard";
      return door;
    }
  }
  if (auto failure = prepareMirrorFetch(rt, *live, decision, &p)) {
    door.answer = std::move(failure);
    return door;
  }
  p.rt = rt;
  p.method = head.method;
  p.headers = head.headers;
  // The client's credentials for us, and its idea of our host, are not the
  // upstream's business.
  p.headers.remove("Authorization");
  p.headers.remove("Host");
  p.http_major = head.http_major;
  p.http_minor = head.http_minor;
  p.via_token = via_token;
  p.url.scheme = "https";
  p.url.path = req.upstreamPath();
  p.direct_allowed = false;
  if (is_sumdb) {
    // SEMANTICS.md §d: a URL in GOSUMDB is the database itself, bypassing
    // GOPROXY; otherwise the proxies are asked for /sumdb/<name>/..., and
    // `direct` is https://<name>/...
    AbsoluteUrl db;
    std::string db_text = sumdb.url.value_or("https://" + sumdb.name);
    if (!parseAbsoluteUrl(db_text + (db_text.ends_with("/") ? "" : "/") + req.sumdb_rest, &db,
                          &error)) {
      ProxyError e;
      e.status = 502;
      e.reason = "Mirror misconfigured";
      e.kind = ProxyErrorKind::kProxyConfigurationError;
      e.details = "GOSUMDB " + db_text + ": " + error;
      door.answer = std::move(e);
      return door;
    }
    if (sumdb.url) {
      rules::parseGoproxyList("direct", false, &p.list, &error);
      p.url = db;
    }
    p.direct_url = db;
    p.direct_allowed = true;
  }
  record->next_hop = p.direct_url && sumdb.url ? sumdb.url.value() : decision.mirrors;
  ModuleCache* cache = rt->module_cache;
  auto params = std::make_shared<MirrorFetch::Params>(std::move(p));
  if (cache != nullptr && req.kind != Kind::kSumdbSupported) {
    door.source = [cache, req, head_only, params](ResponseSink* sink) {
      ModuleCache::Request r;
      r.request = req;
      r.head_only = head_only;
      r.fetch = std::move(*params);
      return cache->fetch(std::move(r), sink);
    };
  } else {
    door.source = [params](ResponseSink* sink) {
      return MirrorFetch::start(std::move(*params), sink);
    };
  }
  return door;
}

}  // namespace switchyard
