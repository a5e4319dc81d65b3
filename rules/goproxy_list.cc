#include "rules/goproxy_list.h"

#include <array>
#include <cstdint>

namespace switchyard::rules {
namespace detail {
namespace {

// The multi-byte encodings of the runes unicode.IsSpace accepts.
constexpr std::array<std::string_view, 16> kWideSpaces = {
    "\xC2\x85",     "\xC2\xA0",     "\xE1\x9A\x80", "\xE2\x80\x80", "\xE2\x80\x81", "\xE2\x80\x82",
    "\xE2\x80\x83", "\xE2\x80\x84", "\xE2\x80\x85", "\xE2\x80\x86", "\xE2\x80\x87", "\xE2\x80\x88",
    "\xE2\x80\x89", "\xE2\x80\x8A", "\xE2\x80\xA8", "\xE2\x80\xA9",
};
constexpr std::array<std::string_view, 3> kMoreWideSpaces = {"\xE2\x80\xAF", "\xE2\x81\x9F",
                                                             "\xE3\x80\x80"};

bool isAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Length of the white-space rune at the start of s, 0 if none.
size_t spacePrefixLength(std::string_view s) {
  if (s.empty()) {
    return 0;
  }
  if (isAsciiSpace(s[0])) {
    return 1;
  }
  for (std::string_view w : kWideSpaces) {
    if (s.substr(0, w.size()) == w) {
      return w.size();
    }
  }
  for (std::string_view w : kMoreWideSpaces) {
    if (s.substr(0, w.size()) == w) {
      return w.size();
    }
  }
  return 0;
}

// Length of the white-space rune at the end of s, 0 if none. Matching the
// complete encoding as a suffix is what Go's DecodeLastRune does: it backs
// up to the last start byte, and these encodings are valid on their own.
size_t spaceSuffixLength(std::string_view s) {
  if (s.empty()) {
    return 0;
  }
  if (isAsciiSpace(s.back())) {
    return 1;
  }
  auto ends = [&](std::string_view w) {
    return s.size() >= w.size() && s.substr(s.size() - w.size()) == w;
  };
  for (std::string_view w : kWideSpaces) {
    if (ends(w)) {
      return w.size();
    }
  }
  for (std::string_view w : kMoreWideSpaces) {
    if (ends(w)) {
      return w.size();
    }
  }
  return 0;
}

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int unhex(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return c - 'A' + 10;
}

// Go's %q, enough for error messages: printable ASCII as is, the rest as
// \xNN, quotes and backslashes escaped.
std::string quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    auto b = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b >= 0x20 && b < 0x7F) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    }
  }
  out += '"';
  return out;
}

enum class Mode { kPath, kHost, kZone, kUserPassword, kFragment };

bool inSet(char c, std::string_view set) {
  return set.find(c) != std::string_view::npos;
}

// net/url shouldEscape, for the modes Parse uses.
bool shouldEscape(char c, Mode mode) {
  if (isAlnum(c) || inSet(c, "-_.~")) {
    return false;
  }
  // Hosts allow RFC 3986 sub-delims plus the characters Go needs for
  // "[ipv6]:port" and the few it would otherwise have to reject.
  if ((mode == Mode::kHost || mode == Mode::kZone) && inSet(c, "!$&'()*+,;=:[]<>\"")) {
    return false;
  }
  if (inSet(c, "$&+,/:;=?@")) {
    switch (mode) {
      case Mode::kPath:
        return c == '?';
      case Mode::kUserPassword:
        return inSet(c, "@/?:");
      case Mode::kFragment:
        return false;
      default:
        return true;
    }
  }
  if (mode == Mode::kFragment && inSet(c, "!()*")) {
    return false;
  }
  return true;
}

// net/url unescape: decodes %XX and enforces the per-mode character rules
// (hosts may not contain most ASCII punctuation, nor %-encoded ASCII other
// than %25). Returns false with *error set.
bool unescape(std::string_view s, Mode mode, std::string* out, std::string* error) {
  out->clear();
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !isHex(s[i + 1]) || !isHex(s[i + 2])) {
        *error = "invalid URL escape " + quote(s.substr(i, 3));
        return false;
      }
      if (mode == Mode::kHost && unhex(s[i + 1]) < 8 && s.substr(i, 3) != "%25") {
        *error = "invalid URL escape " + quote(s.substr(i, 3));
        return false;
      }
      if (mode == Mode::kZone) {
        int v = unhex(s[i + 1]) << 4 | unhex(s[i + 2]);
        if (s.substr(i, 3) != "%25" && v != ' ' &&
            shouldEscape(static_cast<char>(v), Mode::kHost)) {
          *error = "invalid URL escape " + quote(s.substr(i, 3));
          return false;
        }
      }
      out->push_back(static_cast<char>(unhex(s[i + 1]) << 4 | unhex(s[i + 2])));
      i += 3;
      continue;
    }
    if ((mode == Mode::kHost || mode == Mode::kZone) && static_cast<unsigned char>(c) < 0x80 &&
        shouldEscape(c, mode)) {
      *error = "invalid character " + quote(s.substr(i, 1)) + " in host name";
      return false;
    }
    out->push_back(c);
    ++i;
  }
  return true;
}

std::string escapePath(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (shouldEscape(c, Mode::kPath)) {
      auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}

bool validOptionalPort(std::string_view port) {
  if (port.empty()) {
    return true;
  }
  if (port[0] != ':') {
    return false;
  }
  for (char c : port.substr(1)) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

bool parseHost(std::string_view host, std::string* error) {
  std::string decoded;
  if (!host.empty() && host[0] == '[') {
    size_t close = host.rfind(']');
    if (close == std::string_view::npos) {
      *error = "missing ']' in host";
      return false;
    }
    std::string_view colon_port = host.substr(close + 1);
    if (!validOptionalPort(colon_port)) {
      *error = "invalid port " + quote(colon_port) + " after host";
      return false;
    }
    size_t zone = host.substr(0, close).find("%25");
    if (zone != std::string_view::npos) {
      return unescape(host.substr(0, zone), Mode::kHost, &decoded, error) &&
             unescape(host.substr(zone, close - zone), Mode::kZone, &decoded, error) &&
             unescape(host.substr(close), Mode::kHost, &decoded, error);
    }
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) {
      std::string_view colon_port = host.substr(colon);
      if (!validOptionalPort(colon_port)) {
        *error = "invalid port " + quote(colon_port) + " after host";
        return false;
      }
    }
  }
  return unescape(host, Mode::kHost, &decoded, error);
}

bool validUserinfo(std::string_view s) {
  for (char c : s) {
    if (!isAlnum(c) && !inSet(c, "-._:~!$&'()*+,;=%@")) {
      return false;
    }
  }
  return true;
}

// The body of url.parse(rawURL, viaRequest=false), error text without the
// `parse "…":` wrapper.
bool parseUrlBody(std::string_view raw, GoUrl* out, std::string* error) {
  for (char c : raw) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7F) {
      *error = "net/url: invalid control character in URL";
      return false;
    }
  }
  std::string_view rest = raw;
  // getScheme: letters first, then letters, digits, '+', '-', '.'; any
  // other character (or a digit first) means there is no scheme at all.
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      continue;
    }
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
      if (i == 0) {
        break;
      }
      continue;
    }
    if (c == ':') {
      if (i == 0) {
        *error = "missing protocol scheme";
        return false;
      }
      out->scheme.assign(raw.substr(0, i));
      for (char& s : out->scheme) {
        if (s >= 'A' && s <= 'Z') {
          s = static_cast<char>(s - 'A' + 'a');
        }
      }
      rest = raw.substr(i + 1);
    }
    break;
  }
  size_t q = rest.find('?');
  if (!rest.empty() && rest.back() == '?' && q == rest.size() - 1) {
    out->force_query = true;
    rest.remove_suffix(1);
  } else if (q != std::string_view::npos) {
    out->raw_query.assign(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }
  if (rest.empty() || rest[0] != '/') {
    if (!out->scheme.empty()) {
      out->opaque.assign(rest);
      return true;
    }
    std::string_view segment = rest.substr(0, rest.find('/'));
    if (segment.find(':') != std::string_view::npos) {
      *error = "first path segment in URL cannot contain colon";
      return false;
    }
  }
  bool has_authority =
      rest.substr(0, 2) == "//" && (!out->scheme.empty() || rest.substr(0, 3) != "///");
  if (has_authority) {
    std::string_view authority = rest.substr(2);
    size_t slash = authority.find('/');
    rest = slash == std::string_view::npos ? std::string_view() : authority.substr(slash);
    authority = authority.substr(0, slash);
    size_t at = authority.rfind('@');
    std::string_view host = at == std::string_view::npos ? authority : authority.substr(at + 1);
    if (!parseHost(host, error)) {
      return false;
    }
    out->host.assign(host);
    if (at != std::string_view::npos) {
      std::string_view userinfo = authority.substr(0, at);
      if (!validUserinfo(userinfo)) {
        *error = "net/url: invalid userinfo";
        return false;
      }
      std::string ignored;
      size_t colon = userinfo.find(':');
      if (!unescape(userinfo.substr(0, colon), Mode::kUserPassword, &ignored, error)) {
        return false;
      }
      if (colon != std::string_view::npos) {
        if (!unescape(userinfo.substr(colon + 1), Mode::kUserPassword, &ignored, error)) {
          return false;
        }
        out->has_password = true;
      }
      out->has_user = true;
    }
  } else if (!out->scheme.empty() && !rest.empty() && rest[0] == '/') {
    out->omit_host = true;
  }
  if (!unescape(rest, Mode::kPath, &out->path, error)) {
    return false;
  }
  out->has_raw_path = escapePath(out->path) != rest;
  return true;
}

}  // namespace

std::string_view trimGoSpace(std::string_view s) {
  while (size_t n = spacePrefixLength(s)) {
    s.remove_prefix(n);
  }
  while (size_t n = spaceSuffixLength(s)) {
    s.remove_suffix(n);
  }
  return s;
}

std::vector<std::string_view> goFields(std::string_view s) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  size_t start = std::string_view::npos;
  while (i < s.size()) {
    size_t n = spacePrefixLength(s.substr(i));
    if (n > 0) {
      if (start != std::string_view::npos) {
        fields.push_back(s.substr(start, i - start));
        start = std::string_view::npos;
      }
      i += n;
      continue;
    }
    if (start == std::string_view::npos) {
      start = i;
    }
    ++i;
  }
  if (start != std::string_view::npos) {
    fields.push_back(s.substr(start));
  }
  return fields;
}

bool parseGoUrl(std::string_view raw, GoUrl* out, std::string* error) {
  *out = GoUrl();
  std::string_view body = raw;
  std::string_view fragment;
  size_t hash = raw.find('#');
  if (hash != std::string_view::npos) {
    body = raw.substr(0, hash);
    fragment = raw.substr(hash + 1);
  }
  std::string why;
  if (!parseUrlBody(body, out, &why) ||
      !unescape(fragment, Mode::kFragment, &out->fragment, &why)) {
    if (error != nullptr) {
      *error = "parse " + quote(redactUrl(raw)) + ": " + why;
    }
    return false;
  }
  return true;
}

std::string redactUrl(std::string_view raw) {
  size_t scheme_end = raw.find("://");
  if (scheme_end == std::string_view::npos) {
    return std::string(raw);
  }
  size_t auth_start = scheme_end + 3;
  size_t auth_end = raw.find_first_of("/?#", auth_start);
  if (auth_end == std::string_view::npos) {
    auth_end = raw.size();
  }
  std::string_view authority = raw.substr(auth_start, auth_end - auth_start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return std::string(raw);
  }
  size_t colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos) {
    return std::string(raw);
  }
  std::string out(raw.substr(0, auth_start + colon + 1));
  out += "xxxxx";
  out += raw.substr(auth_start + at);
  return out;
}

}  // namespace detail

namespace {

// newProxyRepo's acceptance check for one list entry.
bool checkProxyUrl(const std::string& url, std::string* error) {
  detail::GoUrl u;
  if (!detail::parseGoUrl(url, &u, error)) {
    return false;
  }
  const std::string shown = detail::redactUrl(url);
  if (u.scheme == "http" || u.scheme == "https") {
    if (u.host.empty()) {
      *error = "invalid proxy URL missing host: " + shown;
      return false;
    }
    return true;
  }
  if (u.scheme == "file") {
    // Go compares the parsed URL with one holding only scheme and path;
    // OmitHost (set for "file:/p") counts as a non-path element too.
    if (u.has_user || !u.host.empty() || !u.opaque.empty() || !u.raw_query.empty() ||
        u.force_query || !u.fragment.empty() || u.omit_host) {
      *error = "invalid file:// proxy URL with non-path elements: " + shown;
      return false;
    }
    return true;
  }
  if (u.scheme.empty()) {
    *error = "invalid proxy URL missing scheme: " + shown;
  } else {
    *error = "invalid proxy URL scheme (must be https, http, file): " + shown;
  }
  return false;
}

// The label of an outcome in "fell through: <label> after ','".
std::string outcomeLabel(const AttemptOutcome& o) {
  if (o.status != 0) {
    return std::to_string(o.status);
  }
  switch (o.kind) {
    case AttemptOutcome::Kind::kSuccess:
      return "success";
    case AttemptOutcome::Kind::kNotFound:
      return "not found";
    case AttemptOutcome::Kind::kHttpError:
      return "http error";
    case AttemptOutcome::Kind::kTransport:
      return "transport error";
    case AttemptOutcome::Kind::kTimeout:
      return "timeout";
    case AttemptOutcome::Kind::kDisabled:
      return "disabled";
    case AttemptOutcome::Kind::kDirectUnavailable:
      return "direct unavailable";
  }
  return "error";
}

}  // namespace

const char* goproxyEntryKindName(GoproxyEntry::Kind kind) {
  switch (kind) {
    case GoproxyEntry::Kind::kUrl:
      return "url";
    case GoproxyEntry::Kind::kDirect:
      return "direct";
    case GoproxyEntry::Kind::kOff:
      return "off";
    case GoproxyEntry::Kind::kNoproxy:
      return "noproxy";
  }
  return "?";
}

const char* attemptOutcomeKindName(AttemptOutcome::Kind kind) {
  switch (kind) {
    case AttemptOutcome::Kind::kSuccess:
      return "success";
    case AttemptOutcome::Kind::kNotFound:
      return "not_found";
    case AttemptOutcome::Kind::kHttpError:
      return "http_error";
    case AttemptOutcome::Kind::kTransport:
      return "transport";
    case AttemptOutcome::Kind::kTimeout:
      return "timeout";
    case AttemptOutcome::Kind::kDisabled:
      return "disabled";
    case AttemptOutcome::Kind::kDirectUnavailable:
      return "direct_unavailable";
  }
  return "?";
}

std::string_view effectiveGoproxy(std::string_view value) {
  return value.empty() ? kDefaultGoproxy : value;
}

bool goproxyNeedsNoproxyStep(std::string_view goproxy, std::string_view effective_gonoproxy) {
  return !effective_gonoproxy.empty() && effectiveGoproxy(goproxy) != "direct";
}

bool parseGoproxyList(std::string_view value, bool insert_noproxy, GoproxyList* out,
                      std::string* error) {
  out->entries.clear();
  out->text.assign(value);
  if (insert_noproxy) {
    out->entries.push_back({GoproxyEntry::Kind::kNoproxy, "noproxy", false});
  }
  std::string_view rest = effectiveGoproxy(value);
  size_t real_entries = 0;
  while (!rest.empty()) {
    size_t sep = rest.find_first_of(",|");
    std::string_view piece = rest.substr(0, sep);
    bool fall_back_on_error = sep != std::string_view::npos && rest[sep] == '|';
    rest = sep == std::string_view::npos ? std::string_view() : rest.substr(sep + 1);

    piece = detail::trimGoSpace(piece);
    if (piece.empty()) {
      continue;
    }
    // `off` and `direct` end the list: nothing after them is even checked,
    // which keeps room for future syntax after them (the go command's
    // forward-compatibility rule).
    if (piece == "off") {
      out->entries.push_back({GoproxyEntry::Kind::kOff, "off", false});
      ++real_entries;
      break;
    }
    if (piece == "direct") {
      out->entries.push_back({GoproxyEntry::Kind::kDirect, "direct", false});
      ++real_entries;
      break;
    }
    // Single words are reserved for keywords; something containing ":/" or
    // starting with '/' must be a complete URL; anything else that looks
    // like a host or a path gets an implicit https://.
    std::string url(piece);
    if (piece.find_first_of(".:/") != std::string_view::npos &&
        piece.find(":/") == std::string_view::npos && piece[0] != '/') {
      url = "https://" + url;
    }
    if (!checkProxyUrl(url, error)) {
      return false;
    }
    out->entries.push_back({GoproxyEntry::Kind::kUrl, std::move(url), fall_back_on_error});
    ++real_entries;
  }
  if (real_entries == 0) {
    *error = "GOPROXY list is not the empty string, but contains no entries";
    return false;
  }
  return true;
}

AttemptOutcome outcomeFromHttpStatus(int status, std::string error) {
  AttemptOutcome o;
  o.status = status;
  if (status >= 200 && status <= 299) {
    o.kind = AttemptOutcome::Kind::kSuccess;
    return o;
  }
  o.kind = (status == 404 || status == 410) ? AttemptOutcome::Kind::kNotFound
                                            : AttemptOutcome::Kind::kHttpError;
  o.error = error.empty() ? "HTTP " + std::to_string(status) : std::move(error);
  return o;
}

bool isNotFoundClass(const AttemptOutcome& outcome) {
  switch (outcome.kind) {
    case AttemptOutcome::Kind::kNotFound:
    case AttemptOutcome::Kind::kDisabled:
    case AttemptOutcome::Kind::kDirectUnavailable:
      return true;
    case AttemptOutcome::Kind::kHttpError:
      return outcome.status == 404 || outcome.status == 410;
    default:
      return false;
  }
}

int moduleProxyStatus(const AttemptOutcome& final_outcome) {
  if (final_outcome.kind == AttemptOutcome::Kind::kSuccess) {
    return 200;
  }
  if (isNotFoundClass(final_outcome)) {
    return 404;
  }
  if (final_outcome.kind == AttemptOutcome::Kind::kTimeout) {
    return 504;
  }
  return 502;
}

GoproxyWalk::GoproxyWalk(const GoproxyList& list, bool module_matches_gonoproxy)
    : list_(&list), private_(module_matches_gonoproxy) {}

const GoproxyEntry* GoproxyWalk::next() {
  const auto& entries = list_->entries;
  while (!done_) {
    if (pos_ >= entries.size()) {
      done_ = true;
      break;
    }
    const GoproxyEntry& entry = entries[pos_];
    if (pending_) {
      return &entry;
    }
    // These are the go command's lookup() answers that need no network:
    // each is equivalent to "not found", so the walk always moves on.
    switch (entry.kind) {
      case GoproxyEntry::Kind::kNoproxy:
        if (!private_) {
          apply({AttemptOutcome::Kind::kNotFound, 0, "path does not match GOPRIVATE/GONOPROXY"},
                true);
          continue;
        }
        break;
      case GoproxyEntry::Kind::kUrl:
        if (private_) {
          apply({AttemptOutcome::Kind::kNotFound, 0, "disabled by GOPRIVATE/GONOPROXY"}, true);
          continue;
        }
        break;
      case GoproxyEntry::Kind::kOff:
        apply({AttemptOutcome::Kind::kDisabled, 0,
               private_ ? "disabled by GOPRIVATE/GONOPROXY"
                        : "module lookup disabled by GOPROXY=off"},
              false);
        continue;
      case GoproxyEntry::Kind::kDirect:
        break;
    }
    pending_ = true;
    return &entry;
  }
  return nullptr;
}

void GoproxyWalk::report(const AttemptOutcome& outcome) {
  if (!pending_ || done_) {
    return;
  }
  apply(outcome, false);
}

void GoproxyWalk::apply(const AttemptOutcome& outcome, bool skipped) {
  const auto& entries = list_->entries;
  const GoproxyEntry* entry = &entries[pos_];
  pending_ = false;
  Attempt attempt{entry, outcome, {}};
  if (outcome.kind == AttemptOutcome::Kind::kSuccess) {
    succeeded_ = true;
    done_ = true;
    attempt.next = "served";
    attempts_.push_back(std::move(attempt));
    return;
  }
  const bool not_found = isNotFoundClass(outcome);
  // TryProxies' ranking: a direct fetch says the most about the module, so
  // its error wins; then real proxy failures; "not found" only when nothing
  // better was seen. Within a rank the most recent error replaces the older.
  const bool direct_step = entry->kind == GoproxyEntry::Kind::kDirect ||
                           (entry->kind == GoproxyEntry::Kind::kNoproxy && private_);
  if (direct_step) {
    best_ = outcome;
    best_rank_ = Rank::kDirect;
    has_best_ = true;
  } else if (best_rank_ <= Rank::kProxy && !not_found) {
    best_ = outcome;
    best_rank_ = Rank::kProxy;
    has_best_ = true;
  } else if (best_rank_ == Rank::kNotExist) {
    best_ = outcome;
    has_best_ = true;
  }
  const bool fall_through = (not_found || entry->fall_through_on_any_error) &&
                            outcome.kind != AttemptOutcome::Kind::kDirectUnavailable;
  if (!fall_through || pos_ + 1 >= entries.size()) {
    done_ = true;
    attempt.next = skipped ? "skipped" : "stopped";
  } else {
    attempt.next = skipped ? std::string("skipped")
                           : "fell through: " + outcomeLabel(outcome) + " after '" +
                                 (entry->fall_through_on_any_error ? "|" : ",") + "'";
    ++pos_;
  }
  attempts_.push_back(std::move(attempt));
}

AttemptOutcome GoproxyWalk::finalOutcome() const {
  if (succeeded_) {
    return AttemptOutcome{};
  }
  if (has_best_) {
    return best_;
  }
  return {AttemptOutcome::Kind::kNotFound, 0, "no GOPROXY entry was tried"};
}

}  // namespace switchyard::rules
