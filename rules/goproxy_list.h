// The GOPROXY list (SEMANTICS.md §b): parsing exactly as the go command does
// (cmd/go/internal/modfetch proxyList), and the per-request walk over it with
// the go command's fall-back rules and error ranking (TryProxies), as a pure
// state machine: the caller performs each attempt and reports the outcome.
// The same code serves `env.GOPROXY` (module-proxy mode) and a rule's
// `mirrors:` list.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::rules {

inline constexpr std::string_view kDefaultGoproxy = "https://proxy.golang.org,direct";

struct GoproxyEntry {
  enum class Kind {
    kUrl,
    kDirect,
    kOff,
    kNoproxy,  // the implicit first step added when GONOPROXY is non-empty
  };
  Kind kind = Kind::kUrl;
  // kUrl: the URL after https:// prefixing ("proxy.corp:8080" ->
  // "https://proxy.corp:8080"). The keywords carry their own name
  // ("direct", "off", "noproxy") so attempt logs can print `url` uniformly.
  std::string url;
  // The separator after the entry was '|': fall through on any error, not
  // only on not-found. Always false for direct, off and noproxy.
  bool fall_through_on_any_error = false;
};
const char* goproxyEntryKindName(GoproxyEntry::Kind kind);

struct GoproxyList {
  std::vector<GoproxyEntry> entries;
  std::string text;  // the value as given (before defaulting)
};

// The value the go command uses: an empty value means the default list.
std::string_view effectiveGoproxy(std::string_view value);

// Whether the implicit "noproxy" step is inserted: GONOPROXY (after its
// GOPRIVATE defaulting) is non-empty and GOPROXY (after defaulting) is not
// exactly "direct".
bool goproxyNeedsNoproxyStep(std::string_view goproxy, std::string_view effective_gonoproxy);

// Parses a GOPROXY-syntax list (B.1). An empty value means the default
// list. Entries end at ',' or '|', are trimmed of Unicode white space, empty
// ones are skipped, and parsing stops after `direct` or `off`. A word with
// '.', ':' or '/' that has no ":/" and is not an absolute path gets
// "https://" prefixed. Every URL must parse and use http, https or file
// (file URLs with a path only). Returns false with *error (naming the
// offending entry, credentials redacted) for a bad URL or for a list with no
// entries; *out is then left with the entries parsed so far.
//
// One deliberate strictness beyond the go command: an http(s) URL with an
// empty host ("https://", "http:///x") is rejected here, where the go
// command would only fail on first use.
bool parseGoproxyList(std::string_view value, bool insert_noproxy, GoproxyList* out,
                      std::string* error);

// The outcome of one attempt, reported by the caller of GoproxyWalk.
struct AttemptOutcome {
  enum class Kind {
    kSuccess,
    kNotFound,           // 404 or 410 (also: keyword steps that do not apply)
    kHttpError,          // any other status (400, 401, 403, 5xx…)
    kTransport,          // refused, reset, TLS failure, malformed 200 body
    kTimeout,            // our own upstream timeout expired (a hard error)
    kDisabled,           // the `off` step
    kDirectUnavailable,  // `direct`/noproxy where switchyard cannot go direct
  };
  Kind kind = Kind::kSuccess;
  int status = 0;     // HTTP status when there was one
  std::string error;  // human-readable cause, empty on success
};
const char* attemptOutcomeKindName(AttemptOutcome::Kind kind);

// 2xx -> success, 404/410 -> not found, anything else -> HTTP error. 3xx are
// followed by the HTTP client and never reach the walk.
AttemptOutcome outcomeFromHttpStatus(int status, std::string error = {});

// The go command's "equivalent to fs.ErrNotExist": 404/410 (also when
// reported as kHttpError), off, the keyword errors, and switchyard's own
// "cannot go direct". Such errors always fall through to the next entry.
bool isNotFoundClass(const AttemptOutcome& outcome);

// B.4: the status switchyard answers with as a module proxy for a final
// outcome: 200, 404 for the not-found class (so a client's own list
// continues), 504 for an upstream timeout, 502 otherwise.
int moduleProxyStatus(const AttemptOutcome& final_outcome);

// The per-request walk over a parsed list (B.2, B.3). Usage:
//
//   GoproxyWalk walk(list, module_matches_gonoproxy);
//   while (const GoproxyEntry* e = walk.next()) {
//     walk.report(tryEntry(*e));   // kNoproxy / kDirect: fetch directly
//   }
//   if (!walk.succeeded()) { respond(walk.finalOutcome()); }
//
// Steps that need no I/O are decided by the walk itself and appear in
// attempts() without being returned by next(): the noproxy step for a module
// outside GONOPROXY and every URL step for a module inside it ("skipped"),
// and `off` (a not-found-class "disabled" error). So next() hands out only
// URL entries (module outside GONOPROXY), and kNoproxy/kDirect entries,
// which both mean "fetch directly".
//
// kDirectUnavailable ends the walk at once: after it nothing in the list can
// succeed (URLs are skipped for a GONOPROXY module, `direct` is last), and
// the DESIGN leak guard forbids trying anything else.
//
// The list must outlive the walk; entries are returned by pointer into it.
class GoproxyWalk {
 public:
  GoproxyWalk(const GoproxyList& list, bool module_matches_gonoproxy);

  // The entry to try next, or nullptr when the walk is over. Calling next()
  // again before report() returns the same entry.
  const GoproxyEntry* next();
  // The outcome of the entry last returned by next(); ignored otherwise.
  void report(const AttemptOutcome& outcome);

  bool done() const { return done_; }
  bool succeeded() const { return succeeded_; }
  // kSuccess after a success; otherwise the error to report (B.3): direct and
  // noproxy errors outrank other proxy errors, which outrank not-found
  // errors; the most recent error of the highest rank wins.
  AttemptOutcome finalOutcome() const;

  struct Attempt {
    const GoproxyEntry* entry;
    AttemptOutcome outcome;
    // "served", "skipped", "stopped", or "fell through: 404 after ','",
    // "fell through: timeout after '|'"…
    std::string next;
  };
  const std::vector<Attempt>& attempts() const { return attempts_; }

 private:
  enum class Rank { kNotExist, kProxy, kDirect };
  // Records the outcome of entries[pos_] and advances or ends the walk.
  void apply(const AttemptOutcome& outcome, bool skipped);

  const GoproxyList* list_;
  bool private_;          // the module matches GONOPROXY
  size_t pos_ = 0;        // next entry to consider
  bool pending_ = false;  // entries[pos_] was handed out and awaits report()
  bool done_ = false;
  bool succeeded_ = false;
  bool has_best_ = false;
  Rank best_rank_ = Rank::kNotExist;
  AttemptOutcome best_;
  std::vector<Attempt> attempts_;
};

namespace detail {

// strings.TrimSpace: trims Unicode white space (ASCII and U+0085, U+00A0,
// U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
std::string_view trimGoSpace(std::string_view s);
// strings.Fields: splits around runs of that same white space.
std::vector<std::string_view> goFields(std::string_view s);

// The parts of Go's net/url.Parse result that the GOPROXY and GOSUMDB checks
// look at. parseGoUrl() reproduces url.Parse's acceptance rules closely
// enough for configuration checking: control characters, scheme syntax
// (lowercased), opaque forms, authority with user info, host characters and
// escapes, the port, and escapes in path, query and fragment.
struct GoUrl {
  std::string scheme;  // lowercased
  std::string opaque;
  bool has_user = false;
  bool has_password = false;
  std::string host;           // with the port, as written
  bool omit_host = false;     // "scheme:/path": a path but no authority at all
  std::string path;           // decoded
  bool has_raw_path = false;  // the path's escaping differs from Go's default
  std::string raw_query;
  bool force_query = false;  // a lone trailing '?'
  std::string fragment;
  bool has_fragment = false;
};
bool parseGoUrl(std::string_view raw, GoUrl* out, std::string* error);

// url.Redacted: "https://user:pass@h" -> "https://user:xxxxx@h".
std::string redactUrl(std::string_view raw);

}  // namespace detail
}  // namespace switchyard::rules
