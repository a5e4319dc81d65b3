#include "daemon/http_message.h"

#include <arpa/inet.h>

#include <charconv>

namespace switchyard {

namespace {

constexpr std::string_view kWhitespace = " \t";

char lowerChar(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string_view trim(std::string_view s) {
  size_t begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) {
    return {};
  }
  size_t end = s.find_last_not_of(kWhitespace);
  return s.substr(begin, end - begin + 1);
}

// Calls `fn` for each trimmed, non-empty element of a comma-separated list.
template <typename Fn>
void forEachListElement(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) {
      fn(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
}

// Lowercases and folds every run of spaces and tabs into one space.
std::string foldWhitespace(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : trim(s)) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) {
      out.push_back(' ');
      space = false;
    }
    out.push_back(lowerChar(c));
  }
  return out;
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

bool isHexDigit(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 3986 2.3 unreserved and 2.2 sub-delims: what a reg-name is made of,
// besides pct-encoded octets.
bool isRegNameChar(char c) {
  bool alnum = isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return alnum || std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

// RFC 3986 3.2.2 reg-name (an IPv4 address is one too): no ':', '@', '/'.
bool isRegName(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !isHexDigit(s[i + 1]) || !isHexDigit(s[i + 2])) {
        return false;
      }
      i += 2;
    } else if (!isRegNameChar(s[i])) {
      return false;
    }
  }
  return true;
}

// RFC 3986 3.2.2 IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ).
bool isIpvFuture(std::string_view s) {
  if (s.size() < 4 || (s[0] != 'v' && s[0] != 'V')) {
    return false;
  }
  size_t dot = s.find('.');
  if (dot == std::string_view::npos || dot < 2 || dot + 1 == s.size()) {
    return false;
  }
  for (char c : s.substr(1, dot - 1)) {
    if (!isHexDigit(c)) {
      return false;
    }
  }
  for (char c : s.substr(dot + 1)) {
    if (c != ':' && !isRegNameChar(c)) {
      return false;
    }
  }
  return true;
}

// The bytes RFC 3986 2 leaves out of URIs that llhttp still accepts in a
// request-target (it refuses controls, space and non-ASCII itself).
bool isUnsafeTargetChar(char c) {
  return std::string_view("\"<>{}|\\^`").find(c) != std::string_view::npos;
}

// Host names we accept in targets: DNS labels plus '_' (seen in the wild for
// SRV-style names). Percent-encoding and other reg-name characters are
// refused: no resolver would understand them.
bool isHostChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '.' || c == '_';
}

bool parsePort(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5) {
    return false;
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value == 0 || value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// Parses "host", "host:port", "[v6]" or "[v6]:port". `port_required` is the
// authority-form rule for CONNECT; otherwise "host:" means no port.
bool parseHostPort(std::string_view text, bool port_required, Authority* out, bool* has_port,
                   std::string* error) {
  // "host:" names the default port in a URI (RFC 3986 3.2.3); CONNECT
  // requires a port, so there it stays an error.
  if (!port_required && !text.empty() && text.back() == ':' &&
      (text.front() == '[' || text.find(':') == text.size() - 1)) {
    text.remove_suffix(1);
  }
  std::string_view host;
  std::string_view port;
  *has_port = false;
  out->ipv6 = false;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      *error = "unterminated '[' in host";
      return false;
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *error = "unexpected characters after ']'";
        return false;
      }
      port = rest.substr(1);
      *has_port = true;
    }
    in6_addr addr6;
    std::string literal(host);
    if (inet_pton(AF_INET6, literal.c_str(), &addr6) != 1) {
      *error = "'" + literal + "' is not an IPv6 address";
      return false;
    }
    out->ipv6 = true;
  } else {
    size_t colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
      *error = "an IPv6 address must be written in brackets, e.g. [2001:db8::1]:443";
      return false;
    }
    host = text.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = text.substr(colon + 1);
      *has_port = true;
    }
    if (host.empty()) {
      *error = "empty host";
      return false;
    }
    if (host.size() > 253) {
      *error = "host name longer than 253 characters";
      return false;
    }
    for (char c : host) {
      if (!isHostChar(c)) {
        *error = "invalid character in host name";
        return false;
      }
    }
  }
  if (*has_port && !parsePort(port, &out->port)) {
    *error = "bad port '" + std::string(port) + "' (expected 1-65535)";
    return false;
  }
  if (port_required && !*has_port) {
    *error = "missing port (CONNECT needs host:port)";
    return false;
  }
  out->host = toLower(host);
  return true;
}

}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerChar(a[i]) != lowerChar(b[i])) {
      return false;
    }
  }
  return true;
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = lowerChar(c);
  }
  return out;
}

bool isTchar(char c) {
  if (isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!isTchar(c)) {
      return false;
    }
  }
  return true;
}

bool isFieldValue(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u == '\t' || u >= 0x80 || (u >= 0x20 && u != 0x7f)) {
      continue;
    }
    return false;
  }
  return true;
}

void HeaderList::add(std::string name, std::string value) {
  fields_.push_back({std::move(name), std::string(trim(value))});
}

const std::string* HeaderList::find(std::string_view name) const {
  for (const HeaderField& f : fields_) {
    if (equalsIgnoreCase(f.name, name)) {
      return &f.value;
    }
  }
  return nullptr;
}

void HeaderList::appendToLast(std::string_view name, std::string_view element) {
  for (auto it = fields_.rbegin(); it != fields_.rend(); ++it) {
    if (equalsIgnoreCase(it->name, name)) {
      if (!it->value.empty()) {
        it->value += ", ";
      }
      it->value.append(element);
      return;
    }
  }
  add(std::string(name), std::string(element));
}

size_t HeaderList::count(std::string_view name) const {
  size_t n = 0;
  for (const HeaderField& f : fields_) {
    n += equalsIgnoreCase(f.name, name) ? 1 : 0;
  }
  return n;
}

size_t HeaderList::remove(std::string_view name) {
  size_t before = fields_.size();
  std::erase_if(fields_, [name](const HeaderField& f) { return equalsIgnoreCase(f.name, name); });
  return before - fields_.size();
}

bool HeaderList::hasToken(std::string_view name, std::string_view token) const {
  for (const HeaderField& f : fields_) {
    if (!equalsIgnoreCase(f.name, name)) {
      continue;
    }
    bool found = false;
    forEachListElement(
        f.value, [&](std::string_view item) { found = found || equalsIgnoreCase(item, token); });
    if (found) {
      return true;
    }
  }
  return false;
}

// RFC 9110 7.6.1. Proxy-Authorization is ours (credentials for this hop
// only) and never travels on; Transfer-Encoding goes because the caller
// re-frames the body.
void stripHopByHop(HeaderList* headers) {
  // The names listed in Connection are collected first: removing Connection
  // itself must not lose them.
  std::vector<std::string> listed;
  for (const HeaderField& f : headers->fields()) {
    if (equalsIgnoreCase(f.name, "Connection")) {
      forEachListElement(f.value, [&](std::string_view item) { listed.emplace_back(item); });
    }
  }
  for (const std::string& name : listed) {
    headers->remove(name);
  }
  static constexpr std::string_view kHopByHop[] = {
      "Connection",
      "Proxy-Connection",
      "Keep-Alive",
      "Proxy-Authorization",
      "Proxy-Authenticate",
      "TE",
      "Trailer",
      "Transfer-Encoding",
      "Upgrade",
  };
  for (std::string_view name : kHopByHop) {
    headers->remove(name);
  }
}

std::string viaToken(std::string_view local_address) {
  return std::string(kViaPseudonym) + " (" + std::string(local_address) + ")";
}

bool viaHasToken(const HeaderList& headers, std::string_view token) {
  std::string wanted = foldWhitespace(token);
  for (const HeaderField& f : headers.fields()) {
    if (!equalsIgnoreCase(f.name, "Via")) {
      continue;
    }
    bool found = false;
    forEachListElement(f.value, [&](std::string_view entry) {
      // entry = received-protocol RWS received-by [RWS comment]
      size_t space = entry.find_first_of(kWhitespace);
      if (space != std::string_view::npos && foldWhitespace(entry.substr(space)) == wanted) {
        found = true;
      }
    });
    if (found) {
      return true;
    }
  }
  return false;
}

void appendVia(HeaderList* headers, int http_major, int http_minor, std::string_view token) {
  std::string entry =
      std::to_string(http_major) + "." + std::to_string(http_minor) + " " + std::string(token);
  headers->appendToLast("Via", entry);
}

std::string serializeRequestHead(std::string_view method, std::string_view target,
                                 const HeaderList& headers) {
  std::string out;
  out.reserve(256);
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  for (const HeaderField& f : headers.fields()) {
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

std::string serializeResponseHead(int status, std::string_view reason, const HeaderList& headers) {
  std::string out;
  out.reserve(256);
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason).append("\r\n");
  for (const HeaderField& f : headers.fields()) {
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

std::string Authority::str() const {
  std::string out = ipv6 ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port);
}

std::string Authority::hostHeader(uint16_t default_port) const {
  std::string out = ipv6 ? "[" + host + "]" : host;
  if (port != default_port) {
    out += ":" + std::to_string(port);
  }
  return out;
}

bool parseAuthorityForm(std::string_view text, Authority* out, std::string* error) {
  if (text.empty()) {
    *error = "empty CONNECT target";
    return false;
  }
  if (text.find("://") != std::string_view::npos || text.find('/') != std::string_view::npos) {
    *error = "CONNECT target must be host:port, without scheme or path";
    return false;
  }
  if (text.find('@') != std::string_view::npos) {
    *error = "CONNECT target must not carry userinfo";
    return false;
  }
  bool has_port = false;
  return parseHostPort(text, /*port_required=*/true, out, &has_port, error);
}

// Strict on what decides where we connect (scheme, host, port), lenient on
// the path: it is passed on as received, the origin judges it.
bool parseAbsoluteUrl(std::string_view text, AbsoluteUrl* out, std::string* error) {
  size_t sep = text.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    *error = "request target is not an absolute URL";
    return false;
  }
  out->scheme = toLower(text.substr(0, sep));
  uint16_t default_port = 0;
  if (out->scheme == "http") {
    default_port = 80;
  } else if (out->scheme == "https") {
    default_port = 443;
  } else {
    *error = "unsupported URL scheme '" + out->scheme + "'";
    return false;
  }
  std::string_view rest = text.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  size_t at = authority.rfind('@');
  out->had_userinfo = at != std::string_view::npos;
  if (out->had_userinfo) {
    authority.remove_prefix(at + 1);
  }
  bool has_port = false;
  if (!parseHostPort(authority, /*port_required=*/false, &out->authority, &has_port, error)) {
    return false;
  }
  out->explicit_port = has_port;
  if (!has_port) {
    out->authority.port = default_port;
  }
  // A fragment never belongs in a request; drop it as browsers do.
  size_t hash = tail.find('#');
  if (hash != std::string_view::npos) {
    tail = tail.substr(0, hash);
  }
  out->path = std::string(tail);
  if (out->path.empty() || out->path.front() == '?') {
    out->path.insert(0, "/");
  }
  return true;
}

bool isValidHostField(std::string_view value) {
  std::string_view host = value;
  std::string_view port;
  if (!value.empty() && value.front() == '[') {
    size_t close = value.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    host = value.substr(1, close - 1);
    std::string_view rest = value.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return false;
    }
    port = rest.empty() ? rest : rest.substr(1);
    in6_addr addr6;
    std::string literal(host);
    if (inet_pton(AF_INET6, literal.c_str(), &addr6) != 1 && !isIpvFuture(host)) {
      return false;
    }
  } else {
    size_t colon = value.find(':');
    if (colon != std::string_view::npos) {
      host = value.substr(0, colon);
      port = value.substr(colon + 1);
    }
    if (!isRegName(host)) {
      return false;
    }
  }
  for (char c : port) {
    if (!isDigit(c)) {
      return false;
    }
  }
  return true;
}

namespace {

HeadProblem problem(int status, std::string details) {
  return HeadProblem{status, reasonPhrase(status), std::move(details)};
}

std::optional<HeadProblem> checkVersion(const RequestHead& head, bool version_written) {
  if (!version_written) {
    return problem(400, "the request line has no HTTP version (HTTP/0.9 is not supported)");
  }
  if (head.http_major != 1) {
    return problem(505, "HTTP/" + std::to_string(head.http_major) + "." +
                            std::to_string(head.http_minor) +
                            " is not supported in an HTTP/1 request line; send HTTP/1.1");
  }
  return std::nullopt;
}

// RFC 9112 3.2: one Host, required in HTTP/1.1, with a valid value.
std::optional<HeadProblem> checkHost(const RequestHead& head) {
  size_t hosts = head.headers.count("Host");
  if (hosts > 1) {
    return problem(400, "more than one Host field");
  }
  if (hosts == 0) {
    if (head.http_minor >= 1) {
      return problem(400, "an HTTP/1.1 request must have a Host field");
    }
    return std::nullopt;
  }
  if (!isValidHostField(*head.headers.find("Host"))) {
    return problem(400, "invalid Host field value");
  }
  return std::nullopt;
}

// RFC 9112 3 and 3.2: what llhttp lets through in a request-target.
std::optional<HeadProblem> checkTarget(const RequestHead& head) {
  if (head.target == "*" && head.method != "OPTIONS") {
    return problem(400, "the request-target \"*\" is only for OPTIONS");
  }
  for (char c : head.target) {
    if (c == '#') {
      return problem(400, "a request-target has no fragment ('#')");
    }
    if (isUnsafeTargetChar(c)) {
      return problem(400, std::string("the request-target contains '") + c +
                              "', which must be percent-encoded");
    }
  }
  return std::nullopt;
}

// RFC 9112 6.1 and 6.3. llhttp decides the framing (chunked when it is the
// final coding); this refuses what it reads but we do not do.
std::optional<HeadProblem> checkTransferEncoding(const RequestHead& head) {
  if (head.headers.count("Transfer-Encoding") == 0) {
    return std::nullopt;
  }
  if (head.http_minor == 0) {
    // A 1.0 recipient cannot know chunked: the framing is faulty, and
    // whoever is in front of us may have read it otherwise.
    return problem(400, "Transfer-Encoding in an HTTP/1.0 request");
  }
  std::vector<std::string_view> codings;
  for (const HeaderField& f : head.headers.fields()) {
    if (equalsIgnoreCase(f.name, "Transfer-Encoding")) {
      forEachListElement(f.value, [&](std::string_view c) { codings.push_back(c); });
    }
  }
  if (codings.empty() || !equalsIgnoreCase(codings.back(), "chunked")) {
    return problem(400, "Transfer-Encoding without chunked as the final coding");
  }
  codings.pop_back();
  for (std::string_view coding : codings) {
    if (equalsIgnoreCase(coding, "chunked")) {
      return problem(400, "Transfer-Encoding applies chunked more than once");
    }
  }
  if (!codings.empty()) {
    return problem(501, "transfer coding \"" + std::string(codings.front()) +
                            "\" is not supported; only chunked is");
  }
  return std::nullopt;
}

}  // namespace

std::optional<HeadProblem> checkRequestHead(const RequestHead& head, bool version_written) {
  if (auto p = checkVersion(head, version_written)) {
    return p;
  }
  if (auto p = checkHost(head)) {
    return p;
  }
  if (head.method == "CONNECT") {
    return std::nullopt;
  }
  if (auto p = checkTarget(head)) {
    return p;
  }
  return checkTransferEncoding(head);
}

std::string AbsoluteUrl::str() const {
  uint16_t default_port = scheme == "https" ? 443 : 80;
  return scheme + "://" + authority.hostHeader(default_port) + path;
}

std::string base64Encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t left = data.size() - i;
  if (left > 0) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    if (left == 2) {
      v |= static_cast<uint8_t>(data[i + 1]) << 8;
    }
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(left == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 508:
      return "Loop Detected";
    default:
      return "Unknown";
  }
}

}  // namespace switchyard
