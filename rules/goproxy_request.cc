#include "rules/goproxy_request.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "rules/module_path.h"
#include "rules/semver.h"

namespace switchyard::rules {
namespace {

// Tile heights the tlog format allows (golang.org/x/mod/sumdb/tlog).
constexpr int kMaxTileHeight = 30;
// Go bounds the level only by int. A tree has fewer than 2^63 records, so
// with H >= 1 no level above 63 can exist.
constexpr int kMaxTileLevel = 63;

using Segments = std::vector<std::string>;

bool fail(std::string* error, std::string message) {
  if (error != nullptr) {
    *error = std::move(message);
  }
  return false;
}

// Quotes untrusted text for an error message, keeping it printable ASCII.
std::string quote(std::string_view s) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u >= 0x20 && u < 0x7F) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out + "\"";
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// Splits a percent-encoded relative path on '/' and decodes each element.
// Splitting before decoding is what keeps "%2f" from adding structure; an
// element that decodes to '/' or '\' is refused outright, as are dot
// segments and control bytes, so the decoded elements can be joined back
// into a path (or a cache file name) without changing its shape.
bool splitAndDecode(std::string_view raw, Segments* out, std::string* error) {
  out->clear();
  size_t start = 0;
  while (true) {
    const size_t slash = raw.find('/', start);
    const std::string_view piece = raw.substr(start, slash - start);
    if (piece.empty()) {
      return fail(error, "empty path element");
    }
    std::optional<std::string> decoded = percentDecode(piece);
    if (!decoded) {
      return fail(error, "bad percent-escape in " + quote(piece));
    }
    if (*decoded == "." || *decoded == "..") {
      return fail(error, "dot segment in path");
    }
    for (char c : *decoded) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '/' || c == '\\') {
        return fail(error, "encoded path separator in " + quote(piece));
      }
      if (u < 0x20 || u == 0x7F) {
        return fail(error, "control character in " + quote(piece));
      }
    }
    if (decoded->size() > kMaxGoproxyElementLength) {
      return fail(
          error, "path element longer than " + std::to_string(kMaxGoproxyElementLength) + " bytes");
    }
    out->push_back(std::move(*decoded));
    if (slash == std::string_view::npos) {
      return true;
    }
    start = slash + 1;
  }
}

std::string join(const Segments& segs, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    if (i != begin) {
      out += '/';
    }
    out += segs[i];
  }
  return out;
}

// Parses a decimal written the way Go's tile paths format it (%d): no sign,
// no leading zeros, within [min, max].
bool parseCanonicalInt(std::string_view s, int64_t min, int64_t max, int64_t* value) {
  if (s.empty() || s.size() > 18 || (s[0] == '0' && s.size() > 1)) {
    return false;
  }
  int64_t v = 0;
  for (char c : s) {
    if (!isDigit(c)) {
      return false;
    }
    v = v * 10 + (c - '0');
  }
  if (v < min || v > max) {
    return false;
  }
  *value = v;
  return true;
}

// Unescapes and re-escapes a module path and version; both must round-trip,
// which holds for every valid escaped form and pins the cache key to one
// spelling.
bool resolveModuleVersion(std::string_view escaped_module,
                          std::optional<std::string_view> escaped_version, GoproxyRequest* out,
                          std::string* error) {
  std::optional<std::string> module = unescapePath(escaped_module, error);
  if (!module) {
    return false;
  }
  std::optional<std::string> reescaped = escapePath(*module);
  if (!reescaped || *reescaped != escaped_module) {
    return fail(error, "non-canonical module path escape " + quote(escaped_module));
  }
  out->module = std::move(*module);
  out->escaped_module = std::move(*reescaped);
  if (!escaped_version) {
    return true;
  }
  std::optional<std::string> version = unescapeVersion(*escaped_version, error);
  if (!version) {
    return false;
  }
  std::optional<std::string> reescaped_version = escapeVersion(*version);
  if (!reescaped_version || *reescaped_version != *escaped_version) {
    return fail(error, "invalid escaped version " + quote(*escaped_version));
  }
  out->version = std::move(*version);
  out->escaped_version = std::move(*reescaped_version);
  return true;
}

// $module/@v/list, $module/@v/$version.{info,mod,zip}, $module/@latest.
bool parseModuleRequest(const Segments& segs, GoproxyRequest* out, std::string* error) {
  size_t at = 0;
  while (at < segs.size() && segs[at][0] != '@') {
    ++at;
  }
  if (at == segs.size()) {
    return fail(error, "not a GOPROXY endpoint (no /@v/ or /@latest)");
  }
  if (at == 0) {
    return fail(error, "missing module path");
  }
  const std::string escaped_module = join(segs, 0, at);
  const std::string& marker = segs[at];
  const size_t after = segs.size() - at - 1;
  if (marker == "@latest" && after == 0) {
    out->kind = GoproxyRequest::Kind::kLatest;
    return resolveModuleVersion(escaped_module, std::nullopt, out, error);
  }
  if (marker != "@v" || after != 1) {
    return fail(error, "unknown GOPROXY endpoint " + quote(join(segs, at, segs.size())));
  }
  const std::string& file = segs[at + 1];
  if (file == "list") {
    out->kind = GoproxyRequest::Kind::kList;
    return resolveModuleVersion(escaped_module, std::nullopt, out, error);
  }
  struct Suffix {
    std::string_view text;
    GoproxyRequest::Kind kind;
  };
  constexpr Suffix kSuffixes[] = {
      {".info", GoproxyRequest::Kind::kInfo},
      {".mod", GoproxyRequest::Kind::kMod},
      {".zip", GoproxyRequest::Kind::kZip},
  };
  for (const Suffix& suffix : kSuffixes) {
    if (file.size() > suffix.text.size() && std::string_view(file).ends_with(suffix.text)) {
      out->kind = suffix.kind;
      const std::string_view escaped_version =
          std::string_view(file).substr(0, file.size() - suffix.text.size());
      if (!resolveModuleVersion(escaped_module, escaped_version, out, error)) {
        return false;
      }
      out->immutable = isCanonicalModuleVersion(out->version);
      return true;
    }
  }
  return fail(error, "unknown GOPROXY endpoint " + quote("@v/" + file));
}

// The first element of a checksum database name: a lowercase host name or
// IPv4 address, optionally with ":port".
bool validSumdbHost(std::string_view host) {
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos) {
    int64_t port = 0;
    if (!parseCanonicalInt(host.substr(colon + 1), 1, 65535, &port)) {
      return false;
    }
    host = host.substr(0, colon);
  }
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t start = 0;
  while (true) {
    const size_t dot = host.find('.', start);
    const std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || isDigit(c) || c == '-')) {
        return false;
      }
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

// Path elements after the host: lowercase letters, digits and "-._~", with
// no ".." anywhere (dot segments were refused while splitting already).
bool validSumdbPathElement(std::string_view elem) {
  if (elem.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : elem) {
    if (!((c >= 'a' && c <= 'z') || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~')) {
      return false;
    }
  }
  return true;
}

bool isSumdbEndpoint(std::string_view s) {
  return s == "supported" || s == "latest" || s == "lookup" || s == "tile";
}

// The tile index K is written in groups of three digits, most significant
// first, every group but the last prefixed with 'x' ("x001/x234/567"), with
// no leading all-zero group; this is tlog's Tile.Path, and only that exact
// spelling is accepted, as Go's ParseTilePath does.
bool parseTileIndex(const Segments& groups, int64_t* index) {
  int64_t n = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    std::string_view g = groups[i];
    const bool last = i + 1 == groups.size();
    if (!last) {
      if (g.size() != 4 || g[0] != 'x') {
        return false;
      }
      g.remove_prefix(1);
    }
    if (g.size() != 3 || !isDigit(g[0]) || !isDigit(g[1]) || !isDigit(g[2])) {
      return false;
    }
    const int v = (g[0] - '0') * 100 + (g[1] - '0') * 10 + (g[2] - '0');
    if (i == 0 && !last && v == 0) {
      return false;
    }
    if (n > (std::numeric_limits<int64_t>::max() - v) / 1000) {
      return false;
    }
    n = n * 1000 + v;
  }
  *index = n;
  return true;
}

std::string formatTileIndex(int64_t n) {
  std::string out;
  auto three = [](int64_t v) {
    std::string s = std::to_string(v);
    return std::string(3 - s.size(), '0') + s;
  };
  out = three(n % 1000);
  while (n >= 1000) {
    n /= 1000;
    out = "x" + three(n % 1000) + "/" + out;
  }
  return out;
}

// tile/<H>/<L>/<K>[.p/<W>] or tile/<H>/data/<K>[.p/<W>]; `t` holds the
// elements after "tile".
bool parseTile(Segments t, GoproxyRequest* out, std::string* error) {
  if (t.size() < 3) {
    return fail(error, "malformed tile path");
  }
  int64_t height = 0;
  if (!parseCanonicalInt(t[0], 1, kMaxTileHeight, &height)) {
    return fail(error, "malformed tile height " + quote(t[0]));
  }
  int64_t level = -1;
  if (t[1] != "data" && !parseCanonicalInt(t[1], 0, kMaxTileLevel, &level)) {
    return fail(error, "malformed tile level " + quote(t[1]));
  }
  const int64_t full_width = int64_t{1} << height;
  int64_t width = full_width;
  Segments groups(t.begin() + 2, t.end());
  if (groups.size() >= 2 && std::string_view(groups[groups.size() - 2]).ends_with(".p")) {
    if (!parseCanonicalInt(groups.back(), 1, full_width - 1, &width)) {
      return fail(error, "malformed partial tile width " + quote(groups.back()));
    }
    groups.pop_back();
    groups.back().resize(groups.back().size() - 2);
  }
  int64_t index = 0;
  if (!parseTileIndex(groups, &index)) {
    return fail(error, "malformed tile index " + quote(join(groups, 0, groups.size())));
  }
  out->kind = GoproxyRequest::Kind::kSumdbTile;
  out->tile_height = static_cast<int>(height);
  out->tile_level = static_cast<int>(level);
  out->tile_index = index;
  out->tile_width = static_cast<int>(width);
  out->immutable = width == full_width;
  out->sumdb_rest = "tile/" + std::to_string(height) + "/" +
                    (level < 0 ? std::string("data") : std::to_string(level)) + "/" +
                    formatTileIndex(index);
  if (width != full_width) {
    out->sumdb_rest += ".p/" + std::to_string(width);
  }
  return true;
}

// lookup/<escaped module>@<escaped version>; `segs` holds the decoded
// elements after "lookup". A module path never contains '@', so the first
// one splits.
bool parseLookup(const Segments& segs, GoproxyRequest* out, std::string* error) {
  if (segs.empty()) {
    return fail(error, "missing module@version in sumdb lookup");
  }
  const std::string joined = join(segs, 0, segs.size());
  const size_t at = joined.find('@');
  if (at == std::string::npos) {
    return fail(error, "sumdb lookup without '@': " + quote(joined));
  }
  const std::string_view view = joined;
  if (!resolveModuleVersion(view.substr(0, at), view.substr(at + 1), out, error)) {
    return false;
  }
  out->kind = GoproxyRequest::Kind::kSumdbLookup;
  out->sumdb_rest = "lookup/" + out->escaped_module + "@" + out->escaped_version;
  out->immutable = isCanonicalModuleVersion(out->version);
  return true;
}

// sumdb/<name>/<endpoint>. The name is host[/path]; it ends at the first
// element (after the host) that names an endpoint, so a database whose name
// path contains "supported", "latest", "lookup" or "tile" cannot be proxied.
bool parseSumdbRequest(const Segments& segs, GoproxyRequest* out, std::string* error) {
  size_t k = 2;
  while (k < segs.size() && !isSumdbEndpoint(segs[k])) {
    ++k;
  }
  if (segs.size() < 3 || k == segs.size()) {
    return fail(error, "unknown sumdb endpoint");
  }
  if (!validSumdbHost(segs[1])) {
    return fail(error, "invalid sumdb name " + quote(segs[1]));
  }
  for (size_t i = 2; i < k; ++i) {
    if (!validSumdbPathElement(segs[i])) {
      return fail(error, "invalid sumdb name element " + quote(segs[i]));
    }
  }
  out->sumdb_name = join(segs, 1, k);
  const std::string& endpoint = segs[k];
  const size_t after = segs.size() - k - 1;
  if (endpoint == "supported" || endpoint == "latest") {
    if (after != 0) {
      return fail(error, "unknown sumdb endpoint " + quote(join(segs, k, segs.size())));
    }
    out->kind = endpoint == "supported" ? GoproxyRequest::Kind::kSumdbSupported
                                        : GoproxyRequest::Kind::kSumdbLatest;
    out->sumdb_rest = endpoint;
    return true;
  }
  const Segments rest(segs.begin() + static_cast<std::ptrdiff_t>(k) + 1, segs.end());
  if (endpoint == "lookup") {
    return parseLookup(rest, out, error);
  }
  return parseTile(rest, out, error);
}

}  // namespace

const char* goproxyRequestKindName(GoproxyRequest::Kind kind) {
  switch (kind) {
    case GoproxyRequest::Kind::kList:
      return "list";
    case GoproxyRequest::Kind::kInfo:
      return "info";
    case GoproxyRequest::Kind::kMod:
      return "mod";
    case GoproxyRequest::Kind::kZip:
      return "zip";
    case GoproxyRequest::Kind::kLatest:
      return "latest";
    case GoproxyRequest::Kind::kSumdbSupported:
      return "sumdb-supported";
    case GoproxyRequest::Kind::kSumdbLatest:
      return "sumdb-latest";
    case GoproxyRequest::Kind::kSumdbLookup:
      return "sumdb-lookup";
    case GoproxyRequest::Kind::kSumdbTile:
      return "sumdb-tile";
  }
  return "unknown";
}

std::string GoproxyRequest::cacheKey() const {
  switch (kind) {
    case Kind::kList:
      return "mod/" + escaped_module + "/@v/list";
    case Kind::kInfo:
      return "mod/" + escaped_module + "/@v/" + escaped_version + ".info";
    case Kind::kMod:
      return "mod/" + escaped_module + "/@v/" + escaped_version + ".mod";
    case Kind::kZip:
      return "mod/" + escaped_module + "/@v/" + escaped_version + ".zip";
    case Kind::kLatest:
      return "mod/" + escaped_module + "/@latest";
    case Kind::kSumdbSupported:
    case Kind::kSumdbLatest:
    case Kind::kSumdbLookup:
    case Kind::kSumdbTile:
      return "sumdb/" + sumdb_name + "/" + sumdb_rest;
  }
  return "";
}

std::string GoproxyRequest::upstreamPath() const {
  std::string key = cacheKey();
  // The cache key is the request path with a "mod/" tag in front of module
  // endpoints; sumdb keys already match the request layout.
  if (key.starts_with("mod/")) {
    key.erase(0, 4);
  }
  return "/" + percentEncodePath(key);
}

bool parseGoproxyRequest(std::string_view path, GoproxyRequest* out, std::string* error) {
  *out = GoproxyRequest{};
  if (path.size() > kMaxGoproxyPathLength) {
    return fail(error,
                "request path longer than " + std::to_string(kMaxGoproxyPathLength) + " bytes");
  }
  if (path.empty() || path[0] != '/') {
    return fail(error, "request path must start with '/'");
  }
  if (path.find_first_of("?#") != std::string_view::npos) {
    return fail(error, "query or fragment in GOPROXY request");
  }
  Segments segs;
  if (!splitAndDecode(path.substr(1), &segs, error)) {
    return false;
  }
  if (segs[0] == "sumdb") {
    return parseSumdbRequest(segs, out, error);
  }
  return parseModuleRequest(segs, out, error);
}

bool parseSumdbLookup(std::string_view rest, std::string* module, std::string* version,
                      std::string* error) {
  Segments segs;
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail(error, "query or fragment in sumdb lookup");
  }
  if (!splitAndDecode(rest, &segs, error)) {
    return false;
  }
  if (segs[0] != "lookup") {
    return fail(error, "not a sumdb lookup");
  }
  GoproxyRequest req;
  if (!parseLookup(Segments(segs.begin() + 1, segs.end()), &req, error)) {
    return false;
  }
  *module = std::move(req.module);
  *version = std::move(req.version);
  return true;
}

namespace {

bool sameHost(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::optional<ModuleReference> moduleReferenceOf(std::string_view host, std::string_view path,
                                                 std::string_view sumdb_name) {
  if (path.empty() || path.front() != '/' || path.find('@') == std::string_view::npos) {
    return std::nullopt;  // every module endpoint has an '@' ("@v", "@latest", "mod@ver")
  }
  // A database named "host/sub" serves its endpoints below /sub.
  std::string_view db_host = sumdb_name.substr(0, sumdb_name.find('/'));
  std::string_view db_path =
      db_host.size() < sumdb_name.size() ? sumdb_name.substr(db_host.size()) : "";
  if (!db_host.empty() && sameHost(host, db_host) && path.starts_with(db_path) &&
      path.substr(db_path.size()).starts_with("/lookup/")) {
    ModuleReference ref;
    ref.base = std::string(db_path);
    ref.sumdb_lookup = true;
    ref.request.kind = GoproxyRequest::Kind::kSumdbLookup;
    ref.request.sumdb_name = std::string(sumdb_name);
    if (parseSumdbLookup(path.substr(db_path.size() + 1), &ref.request.module, &ref.request.version,
                         nullptr)) {
      return ref;
    }
    return std::nullopt;
  }
  for (size_t start = 0; start != std::string_view::npos; start = path.find('/', start + 1)) {
    ModuleReference ref;
    if (!parseGoproxyRequest(path.substr(start), &ref.request, nullptr)) {
      continue;
    }
    switch (ref.request.kind) {
      case GoproxyRequest::Kind::kSumdbSupported:
      case GoproxyRequest::Kind::kSumdbLatest:
      case GoproxyRequest::Kind::kSumdbTile:
        return std::nullopt;  // about no module
      case GoproxyRequest::Kind::kSumdbLookup:
        ref.sumdb_lookup = true;
        break;
      default:
        break;
    }
    ref.base = std::string(path.substr(0, start));
    return ref;
  }
  return std::nullopt;
}

}  // namespace switchyard::rules
