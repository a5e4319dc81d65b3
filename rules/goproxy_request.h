// Parses a request made to switchyard in its role as a GOPROXY (module-proxy
// mode, SEMANTICS.md E.1 and D) into a typed request: which endpoint, which
// module and version, whether the answer may be cached forever, and the
// cache key. The parser is strict on purpose: whatever it accepts is turned
// into a file-system path by the cache and into an upstream URL, so anything
// that could change the path structure (dot segments, encoded slashes,
// non-canonical escapes) is refused rather than normalised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::rules {

// The whole request path, as received (still percent-encoded). Well above
// anything the go command sends; a cache key must also fit in PATH_MAX.
inline constexpr size_t kMaxGoproxyPathLength = 4096;

// One decoded path element. Cache keys reuse the elements as file names, and
// Linux limits a file name to 255 bytes.
inline constexpr size_t kMaxGoproxyElementLength = 255;

struct GoproxyRequest {
  enum class Kind {
    kList,            // $module/@v/list
    kInfo,            // $module/@v/$version.info
    kMod,             // $module/@v/$version.mod
    kZip,             // $module/@v/$version.zip
    kLatest,          // $module/@latest
    kSumdbSupported,  // sumdb/<name>/supported
    kSumdbLatest,     // sumdb/<name>/latest
    kSumdbLookup,     // sumdb/<name>/lookup/$module@$version
    kSumdbTile,       // sumdb/<name>/tile/<H>/<L|data>/<K>[.p/<W>]
  };
  Kind kind = Kind::kList;
  std::string module;          // unescaped module path (module kinds and lookup)
  std::string version;         // unescaped version (info/mod/zip/lookup)
  std::string escaped_module;  // canonical '!'-escaped forms, used in cache keys
  std::string escaped_version;
  std::string sumdb_name;  // sumdb kinds: "sum.golang.org", "db.example:8443/sub"
  // Sumdb kinds: the path below the database's base, canonical and not
  // percent-encoded: "supported", "latest", "lookup/<esc mod>@<esc ver>",
  // "tile/8/0/x001/234.p/5".
  std::string sumdb_rest;
  // Tiles only: height H (1..30), level L (-1 for "data"), tile index N, and
  // width W (2^H for a full tile, less for a partial ".p/W" one).
  int tile_height = 0;
  int tile_level = 0;
  int64_t tile_index = 0;
  int tile_width = 0;
  // True when the response can never change (E.1). .info/.mod/.zip and
  // lookups: only for a canonical version (module.CanonicalVersion, so
  // "+incompatible" counts); a branch name or commit hash moves. Full tiles:
  // yes. Partial tiles: false, as a wider tile supersedes them. list, latest,
  // supported: never.
  bool immutable = false;

  // Where the response lives in the cache, built from escaped forms only:
  // "mod/github.com/!azure/x/@v/v1.0.0.zip", "mod/<m>/@v/list",
  // "mod/<m>/@latest", "sumdb/sum.golang.org/tile/8/0/001",
  // "sumdb/sum.golang.org/lookup/<m>@<v>". Distinct requests never share a key.
  std::string cacheKey() const;

  // The canonical request path below the proxy base, percent-encoded the way
  // the go command sends it ('!' as %21): "/github.com/%21azure/x/@v/list".
  // Feeding it back to parseGoproxyRequest yields this same request.
  std::string upstreamPath() const;
};

// "list", "info", "mod", "zip", "latest", "sumdb-supported", "sumdb-latest",
// "sumdb-lookup", "sumdb-tile".
const char* goproxyRequestKindName(GoproxyRequest::Kind kind);

// Parses `path`: the request path with the proxy's base path removed,
// starting with '/', still percent-encoded (both "%21" and a literal '!' are
// accepted). A query string or fragment is refused: GOPROXY requests have
// none. Also refused: empty elements ("//", trailing '/'), dot segments,
// encoded '/' or '\', control bytes, bad %-escapes, invalid or
// non-canonically escaped module paths and versions, unknown endpoints and
// malformed tile coordinates. On failure `*out` is unspecified and `*error`
// (if given) says why.
bool parseGoproxyRequest(std::string_view path, GoproxyRequest* out, std::string* error);

// Which module and version a checksum-database lookup is about, for the
// GONOSUMDB leak guard. `rest` is the part below the database base,
// "lookup/<escaped module>@<escaped version>", percent-encoded or not.
bool parseSumdbLookup(std::string_view rest, std::string* module, std::string* version,
                      std::string* error);

// What a proxied request (absolute-form, or inside an intercepted tunnel)
// says about a Go module, for the leak guard and the cache.
struct ModuleReference {
  GoproxyRequest request;  // parsed relative to `base` below
  std::string base;        // the path prefix before the GOPROXY endpoint ("", "/api/go")
  // A checksum-database lookup (GONOSUMDB's business, not GONOPROXY's).
  bool sumdb_lookup = false;
};

// Reads `path` (path + query, as received) of a request to `host` as a
// GOPROXY-protocol request: at the root, or below a prefix ("/api/go/...",
// as Artifactory serves it; the longest module path that parses wins), or a
// direct checksum-database lookup (`/lookup/<module>@<version>` on the host
// of the GOSUMDB name `sumdb_name`, e.g. sum.golang.org). Empty when the path
// is none of these: most requests through a proxy are not about modules.
std::optional<ModuleReference> moduleReferenceOf(std::string_view host, std::string_view path,
                                                 std::string_view sumdb_name);

}  // namespace switchyard::rules
