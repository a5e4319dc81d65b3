// Go module path pattern lists: GOPRIVATE, GONOPROXY, GONOSUMDB, GOINSECURE
// and the `modules:` match of a rule (SEMANTICS.md §c). The go command is
// normative: globMatch() reproduces Go's path.Match and matchPrefixPatterns()
// reproduces golang.org/x/mod/module.MatchPrefixPatterns, byte for byte.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace switchyard::rules {

// Go's path.Match for one glob: `*` (any run of non-'/' bytes), `?` (one
// non-'/' character), `[...]` classes with `^` negation and ranges, `\`
// escapes. The whole name must match. For a malformed pattern (Go's
// ErrBadPattern: unclosed `[`, empty class, trailing `\`, a range with a
// missing end, invalid UTF-8 inside a class) it returns false and sets
// *malformed; callers of the pattern lists treat that as "no match".
bool globMatch(std::string_view pattern, std::string_view name, bool* malformed = nullptr);

// True when path.Match would never report ErrBadPattern for this glob.
bool isValidGlob(std::string_view pattern);

// Which pattern of which list matched a module path.
struct PatternMatch {
  int list_id = 0;
  int index = 0;        // 0-based position in the comma split, empty pieces counted
  std::string pattern;  // the piece as written (trailing '/' kept)
};

// module.MatchPrefixPatterns: the path matches when any comma-separated
// pattern matches the prefix of the path made of as many '/'-separated
// elements as the pattern has. Pieces are not trimmed, one trailing '/' is
// dropped, empty pieces and malformed globs are skipped; case-sensitive.
bool matchPrefixPatterns(std::string_view patterns, std::string_view path);

// The same, reporting the first pattern (in list order) that matched.
std::optional<PatternMatch> firstMatchingPattern(std::string_view patterns, std::string_view path,
                                                 int list_id = 0);

// One pattern piece after dropping one trailing '/', against one module
// path: the per-pattern step of matchPrefixPatterns(). An empty glob never
// matches.
bool matchPrefixPattern(std::string_view glob, std::string_view path);

// C.1: GONOPROXY and GONOSUMDB fall back to GOPRIVATE when unset or empty.
std::string_view effectivePrivateList(std::string_view value, std::string_view goprivate);

// A malformed pattern in a list, for `switchyard check` warnings (the go
// command itself stays silent and the pattern matches nothing).
struct PatternProblem {
  int index = 0;
  std::string pattern;
  std::string message;
};
std::vector<PatternProblem> checkPatternList(std::string_view patterns);

// Several pattern lists compiled into one index, for deciding per request
// which list (rule, GONOPROXY, GONOSUMDB…) claims a module path. match()
// returns the smallest list_id, then the smallest index, among the patterns
// that match; that is exactly the answer of trying the lists in list_id
// order with firstMatchingPattern().
//
// Patterns whose first path element holds no glob metacharacter are indexed
// by that literal element: such a pattern can only match a path whose first
// element is byte-equal to it (the '/' after it is a literal too), so a
// lookup by the path's first element finds every candidate. Only patterns
// with a wildcard in the first element are scanned on every call, except the
// common "*.suffix" form (a leading '*' then a literal starting with '.'):
// those are indexed by the literal and found by probing each dot-suffix of
// the path's first element. A typical
// configuration ("git.corp.example,github.com/corp,*.internal") therefore
// costs one hash lookup plus the handful of wildcard patterns, however long
// the lists are.
class ModulePatternMatcher {
 public:
  // Adds every non-empty piece of `patterns` under `list_id`. Lists may be
  // added in any order; the same list_id may be added twice (indexes then
  // restart at 0 for the second call, as they would in a separate list).
  void addList(int list_id, std::string_view patterns);

  std::optional<PatternMatch> match(std::string_view module_path) const;

  size_t patternCount() const { return count_; }
  size_t wildcardCountForTest() const { return wildcard_.size(); }

 private:
  struct Entry {
    int list_id;
    int index;
    std::string glob;     // after dropping one trailing '/'
    std::string written;  // the piece as written
    int slashes;          // '/' count in glob: the path prefix has slashes+1 elements
  };
  // Transparent hashing lets match() look up a std::string_view key without
  // allocating a std::string per request.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  static bool before(const Entry& a, const Entry& b);
  static bool matches(const Entry& entry, std::string_view module_path);
  static void insertSorted(std::vector<Entry>* bucket, Entry entry);

  // Patterns with no metacharacter at all, keyed by the whole pattern: they
  // match exactly when the path's first n+1 elements equal them.
  std::unordered_map<std::string, std::vector<Entry>, Hash, Eq> exact_;
  std::unordered_map<std::string, std::vector<Entry>, Hash, Eq> literal_;
  // "*.example.com"-style first elements, keyed by ".example.com".
  std::unordered_map<std::string, std::vector<Entry>, Hash, Eq> dot_suffix_;
  std::vector<Entry> wildcard_;  // the remaining wildcards, sorted by (list_id, index)
  size_t count_ = 0;
};

}  // namespace switchyard::rules
