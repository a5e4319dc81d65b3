#include "daemon/admin.h"

#include <map>
#include <optional>

#include "daemon/access.h"
#include "daemon/metrics.h"
#include "rules/explain.h"
#include "rules/module_path.h"
#include "rules/pac.h"

namespace switchyard {

namespace {

constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";
constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kJsonType = "application/json";
constexpr std::string_view kPacType = "application/x-ns-proxy-autoconfig";

// Query strings longer than this are refused: an explain URL is short, and
// nothing here should copy megabytes per request.
constexpr size_t kMaxQueryBytes = 8192;

AdminResponse textResponse(int status, std::string body) {
  AdminResponse r;
  r.status = status;
  r.content_type = kTextPlain;
  r.body = std::move(body);
  r.body += '\n';
  return r;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return status >= 500 ? "Server Error" : "Unknown";
  }
}

// Splits "a=1&b=2" into decoded pairs. A repeated key, a bad %XX escape or a
// key without '=' is an error: these parameters are typed by people, and a
// silent guess would explain the wrong URL.
bool parseQuery(std::string_view query, std::map<std::string, std::string>* out,
                std::string* error) {
  size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) {
      amp = query.size();
    }
    const std::string_view piece = query.substr(start, amp - start);
    start = amp + 1;
    if (piece.empty()) {
      continue;
    }
    const size_t eq = piece.find('=');
    if (eq == std::string_view::npos) {
      *error = "parameter '" + std::string(piece) + "' has no value";
      return false;
    }
    auto key = rules::percentDecode(piece.substr(0, eq));
    auto value = rules::percentDecode(piece.substr(eq + 1));
    if (!key || !value) {
      *error = "bad percent-encoding in '" + std::string(piece) + "'";
      return false;
    }
    if (!out->emplace(std::move(*key), std::move(*value)).second) {
      *error = "parameter '" + std::string(piece.substr(0, eq)) + "' given twice";
      return false;
    }
  }
  return true;
}

AdminResponse explainResponse(std::string_view query, const AdminContext& ctx) {
  if (query.size() > kMaxQueryBytes) {
    return textResponse(400, "query too long");
  }
  std::map<std::string, std::string> params;
  std::string error;
  if (!parseQuery(query, &params, &error)) {
    return textResponse(400, error);
  }
  std::string url;
  std::string module;
  bool text = false;
  for (const auto& [key, value] : params) {
    if (key == "url") {
      url = value;
    } else if (key == "module") {
      module = value;
    } else if (key == "format" && (value == "json" || value == "text")) {
      text = value == "text";
    } else if (key == "format") {
      return textResponse(400, "format must be json or text");
    } else {
      return textResponse(400, "unknown parameter '" + key + "' (url, module, format)");
    }
  }
  if (url.empty() == module.empty()) {
    return textResponse(400, "give exactly one of url=URL or module=PATH (percent-encoded)");
  }
  if (!ctx.snapshot) {
    return textResponse(503, "no config loaded yet");
  }
  rules::ExplainTarget target;
  if (!rules::parseExplainTarget(url, module, &target, &error)) {
    return textResponse(400, "cannot explain '" + url + "': " + error);
  }
  static const rules::EnvMap kNoEnvironment;
  const rules::EnvMap& process_env = ctx.process_env ? *ctx.process_env : kNoEnvironment;
  rules::ExplainResult result = rules::explain(
      target, *ctx.snapshot, rules::mergedEnvironment(ctx.snapshot->config(), process_env));
  if (text) {
    AdminResponse r;
    r.content_type = kTextPlain;
    r.body = std::move(result.text);
    return r;
  }
  AdminResponse r;
  r.content_type = kJsonType;
  // Byte for byte what `switchyard explain --json` prints: one line.
  r.body = result.json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.body += '\n';
  return r;
}

// "host", "port" of "host:port" / "[v6]:port" / ":port"; the host keeps its
// brackets. nullopt when there is no port.
std::optional<std::pair<std::string_view, std::string_view>> splitHostPort(std::string_view hp) {
  if (!hp.empty() && hp.front() == '[') {
    const size_t close = hp.find(']');
    if (close == std::string_view::npos || close + 1 >= hp.size() || hp[close + 1] != ':') {
      return std::nullopt;
    }
    return std::make_pair(hp.substr(0, close + 1), hp.substr(close + 2));
  }
  const size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  return std::make_pair(hp.substr(0, colon), hp.substr(colon + 1));
}

// A Host header's host part, when it is something a PAC may name: a DNS
// name, an IPv4 literal or a bracketed IPv6 literal. Anything else (a header
// crafted to carry text into the script) is refused.
std::optional<std::string> hostFromHeader(std::string_view header) {
  std::string_view host = header;
  if (!header.empty() && header.front() == '[') {
    const size_t close = header.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    host = header.substr(0, close + 1);
    const std::string_view inner = host.substr(1, host.size() - 2);
    if (inner.empty()) {
      return std::nullopt;
    }
    for (char c : inner) {
      const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                      c == ':' || c == '.';
      if (!ok) {
        return std::nullopt;
      }
    }
    return std::string(host);
  }
  if (const size_t colon = header.rfind(':'); colon != std::string_view::npos) {
    host = header.substr(0, colon);
  }
  if (host.empty() || host.size() > 253) {
    return std::nullopt;
  }
  for (char c : host) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '.' || c == '-' || c == '_';
    if (!ok) {
      return std::nullopt;
    }
  }
  return std::string(host);
}

AdminResponse pacResponse(const AdminContext& ctx) {
  if (!ctx.snapshot) {
    return textResponse(503, "no config loaded yet");
  }
  std::string proxy = ctx.proxy_host_port;
  auto split = splitHostPort(proxy);
  if (!split) {
    return textResponse(503, "no proxy address configured for the PAC");
  }
  const std::string_view host = split->first;
  if (host.empty() || host == "0.0.0.0" || host == "[::]") {
    // A wildcard listener: the name the client used for us is the one that
    // reaches us from where it is.
    auto from_header = hostFromHeader(ctx.host_header);
    if (!from_header) {
      return textResponse(400,
                          "the proxy listens on a wildcard address; send a Host header naming "
                          "this gateway");
    }
    proxy = *from_header + ":" + std::string(split->second);
  }
  AdminResponse r;
  r.content_type = kPacType;
  r.body = rules::generatePac(*ctx.snapshot, proxy);
  return r;
}

}  // namespace

AdminResponse handleAdminRequest(std::string_view method, std::string_view target,
                                 const AdminContext& ctx) {
  AdminResponse r = [&] {
    if (method != "GET" && method != "HEAD") {
      AdminResponse refused = textResponse(405, "only GET and HEAD are served here");
      refused.headers.emplace_back("Allow", "GET, HEAD");
      return refused;
    }
    if (target.empty() || target.front() != '/') {
      return textResponse(400, "expected a path such as /metrics");
    }
    const size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query =
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    if (path == "/healthz") {
      return textResponse(200, "ok");
    }
    if (path == "/readyz") {
      return ctx.ready ? textResponse(200, "ready") : textResponse(503, "not ready");
    }
    if (path == "/metrics") {
      if (!ctx.metrics) {
        return textResponse(503, "metrics are not available");
      }
      AdminResponse m;
      m.content_type = kMetricsType;
      m.body = ctx.metrics->render();
      return m;
    }
    if (path == "/explain") {
      return explainResponse(query, ctx);
    }
    if (path == "/proxy.pac") {
      return pacResponse(ctx);
    }
    return textResponse(404,
                        "not found; endpoints: /healthz /readyz /metrics /explain?url=URL "
                        "/proxy.pac");
  }();
  // Every answer reflects the moment it was made (health, counters, the
  // current config): nothing may be reused from a cache.
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

AdminResponse adminClientRefused() {
  AdminResponse r = textResponse(403, "client not in access.admin_allow_clients");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

std::string serializeAdminResponse(const AdminResponse& response, bool head_request,
                                   bool keep_alive) {
  std::string out =
      "HTTP/1.1 " + std::to_string(response.status) + " " + reasonPhrase(response.status) + "\r\n";
  if (!response.content_type.empty()) {
    out += "Content-Type: " + response.content_type + "\r\n";
  }
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  for (const auto& [name, value] : response.headers) {
    out += name + ": " + value + "\r\n";
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  if (!head_request) {
    out += response.body;
  }
  return out;
}

bool adminClientAllowed(const sockaddr* addr, const std::vector<std::string>& cidrs) {
  std::string error;
  std::optional<ClientAcl> acl = ClientAcl::parse(cidrs, &error);
  return acl && acl->allows(addr);
}

}  // namespace switchyard
