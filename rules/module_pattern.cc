#include "rules/module_pattern.h"

#include <algorithm>
#include <cstdint>

namespace switchyard::rules {
namespace {

constexpr char32_t kRuneError = 0xFFFD;

// Go's utf8.DecodeRuneInString: the first rune of s and its length in
// bytes; (U+FFFD, 1) for an invalid or truncated sequence, (U+FFFD, 0) for
// an empty string. Overlong forms, surrogates and values above U+10FFFF are
// invalid, exactly as in Go, because class ranges compare decoded runes.
std::pair<char32_t, size_t> decodeRune(std::string_view s) {
  if (s.empty()) {
    return {kRuneError, 0};
  }
  const auto b0 = static_cast<uint8_t>(s[0]);
  if (b0 < 0x80) {
    return {b0, 1};
  }
  size_t len = 0;
  char32_t rune = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    rune = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    rune = b0 & 0x0F;
    if (b0 == 0xE0) {
      lo = 0xA0;  // no overlong 3-byte forms
    } else if (b0 == 0xED) {
      hi = 0x9F;  // no surrogates
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    rune = b0 & 0x07;
    if (b0 == 0xF0) {
      lo = 0x90;  // no overlong 4-byte forms
    } else if (b0 == 0xF4) {
      hi = 0x8F;  // nothing above U+10FFFF
    }
  } else {
    return {kRuneError, 1};
  }
  if (s.size() < len) {
    return {kRuneError, 1};
  }
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    const uint8_t min = i == 1 ? lo : 0x80;
    const uint8_t max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) {
      return {kRuneError, 1};
    }
    rune = (rune << 6) | (b & 0x3F);
  }
  return {rune, len};
}

// Splits off the next chunk of a pattern: a run of single-character terms,
// possibly preceded by stars. A '*' inside a bracket class does not end the
// chunk; an escaped character is skipped over.
struct Chunk {
  bool star = false;
  std::string_view chunk;
  std::string_view rest;
};
Chunk scanChunk(std::string_view pattern) {
  Chunk out;
  while (!pattern.empty() && pattern[0] == '*') {
    pattern.remove_prefix(1);
    out.star = true;
  }
  bool in_range = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    switch (pattern[i]) {
      case '\\':
        if (i + 1 < pattern.size()) {
          ++i;
        }
        break;
      case '[':
        in_range = true;
        break;
      case ']':
        in_range = false;
        break;
      case '*':
        if (!in_range) {
          out.chunk = pattern.substr(0, i);
          out.rest = pattern.substr(i);
          return out;
        }
        break;
      default:
        break;
    }
  }
  out.chunk = pattern;
  return out;
}

// One possibly escaped character of a class range. Returns false for a
// malformed class (Go's ErrBadPattern).
bool getEscaped(std::string_view* chunk, char32_t* rune) {
  std::string_view c = *chunk;
  if (c.empty() || c[0] == '-' || c[0] == ']') {
    return false;
  }
  if (c[0] == '\\') {
    c.remove_prefix(1);
    if (c.empty()) {
      return false;
    }
  }
  auto [r, n] = decodeRune(c);
  c.remove_prefix(n);
  *rune = r;
  *chunk = c;
  // A class must be closed, so the chunk cannot end right after a range
  // character; an invalid byte is rejected rather than guessed at.
  return !(r == kRuneError && n == 1) && !c.empty();
}

enum class ChunkResult { kMatch, kNoMatch, kBadPattern };

// Whether `chunk` matches the beginning of `s`; on a match *rest is what
// remains of s. After the first mismatch the chunk is still parsed to the
// end, so a malformed chunk is reported however the name looks.
ChunkResult matchChunk(std::string_view chunk, std::string_view s, std::string_view* rest) {
  bool failed = false;
  while (!chunk.empty()) {
    if (!failed && s.empty()) {
      failed = true;
    }
    switch (chunk[0]) {
      case '[': {
        char32_t r = 0;
        if (!failed) {
          auto [decoded, n] = decodeRune(s);
          r = decoded;
          s.remove_prefix(n);
        }
        chunk.remove_prefix(1);
        bool negated = false;
        if (!chunk.empty() && chunk[0] == '^') {
          negated = true;
          chunk.remove_prefix(1);
        }
        bool match = false;
        int ranges = 0;
        for (;;) {
          if (!chunk.empty() && chunk[0] == ']' && ranges > 0) {
            chunk.remove_prefix(1);
            break;
          }
          char32_t lo = 0;
          if (!getEscaped(&chunk, &lo)) {
            return ChunkResult::kBadPattern;
          }
          char32_t hi = lo;
          if (chunk[0] == '-') {
            chunk.remove_prefix(1);
            if (!getEscaped(&chunk, &hi)) {
              return ChunkResult::kBadPattern;
            }
          }
          if (lo <= r && r <= hi) {
            match = true;
          }
          ++ranges;
        }
        if (match == negated) {
          failed = true;
        }
        break;
      }
      case '?':
        if (!failed) {
          if (s[0] == '/') {
            failed = true;
          }
          s.remove_prefix(decodeRune(s).second);
        }
        chunk.remove_prefix(1);
        break;
      case '\\':
        chunk.remove_prefix(1);
        if (chunk.empty()) {
          return ChunkResult::kBadPattern;
        }
        [[fallthrough]];
      default:
        if (!failed) {
          if (chunk[0] != s[0]) {
            failed = true;
          }
          s.remove_prefix(1);
        }
        chunk.remove_prefix(1);
        break;
    }
  }
  if (failed) {
    return ChunkResult::kNoMatch;
  }
  *rest = s;
  return ChunkResult::kMatch;
}

// Go's path.Match; false with *bad set for ErrBadPattern.
bool pathMatch(std::string_view pattern, std::string_view name, bool* bad) {
  *bad = false;
  while (!pattern.empty()) {
    Chunk c = scanChunk(pattern);
    pattern = c.rest;
    if (c.star && c.chunk.empty()) {
      // A trailing star matches the rest of the name unless it has a '/'.
      return name.find('/') == std::string_view::npos;
    }
    std::string_view t;
    ChunkResult res = matchChunk(c.chunk, name, &t);
    // The last chunk must consume the whole name, or a star may still
    // find a later position that does.
    if (res == ChunkResult::kMatch && (t.empty() || !pattern.empty())) {
      name = t;
      continue;
    }
    if (res == ChunkResult::kBadPattern) {
      *bad = true;
      return false;
    }
    bool advanced = false;
    if (c.star) {
      // Let the star swallow i+1 bytes, never a '/'.
      for (size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
        std::string_view t2;
        ChunkResult r2 = matchChunk(c.chunk, name.substr(i + 1), &t2);
        if (r2 == ChunkResult::kMatch) {
          if (pattern.empty() && !t2.empty()) {
            continue;
          }
          name = t2;
          advanced = true;
          break;
        }
        if (r2 == ChunkResult::kBadPattern) {
          *bad = true;
          return false;
        }
      }
    }
    if (advanced) {
      continue;
    }
    // Before answering "no", make sure the rest of the pattern is well
    // formed, so that a malformed pattern is reported whatever the name.
    while (!pattern.empty()) {
      Chunk rest = scanChunk(pattern);
      pattern = rest.rest;
      std::string_view ignored;
      if (matchChunk(rest.chunk, "", &ignored) == ChunkResult::kBadPattern) {
        *bad = true;
        return false;
      }
    }
    return false;
  }
  return name.empty();
}

bool hasGlobMeta(std::string_view s) {
  return s.find_first_of("*?[\\") != std::string_view::npos;
}

std::string_view dropTrailingSlash(std::string_view piece) {
  if (!piece.empty() && piece.back() == '/') {
    piece.remove_suffix(1);
  }
  return piece;
}

// Calls fn(index, piece) for every comma-separated piece, empty ones too;
// stops early when fn returns true.
template <typename Fn>
bool forEachPiece(std::string_view list, Fn&& fn) {
  int index = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view piece = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (fn(index, piece)) {
      return true;
    }
    ++index;
  }
  return false;
}

// The first n+1 '/'-separated elements of path, or nullopt when it has
// fewer (module.MatchPrefixPatterns' walk over the target).
std::optional<std::string_view> pathPrefix(std::string_view path, int slashes) {
  size_t pos = 0;
  for (int i = 0; i <= slashes; ++i) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) {
      if (i < slashes) {
        return std::nullopt;
      }
      return path;
    }
    if (i == slashes) {
      return path.substr(0, slash);
    }
    pos = slash + 1;
  }
  return path;  // not reached
}

}  // namespace

bool globMatch(std::string_view pattern, std::string_view name, bool* malformed) {
  bool bad = false;
  bool matched = pathMatch(pattern, name, &bad);
  if (malformed != nullptr) {
    *malformed = bad;
  }
  return matched;
}

bool isValidGlob(std::string_view pattern) {
  // Every chunk is parsed completely when the name is empty (the first
  // chunk fails at once and the rest are then syntax-checked).
  bool bad = false;
  pathMatch(pattern, "", &bad);
  return !bad;
}

bool matchPrefixPattern(std::string_view glob, std::string_view path) {
  if (glob.empty()) {
    return false;
  }
  int slashes = static_cast<int>(std::count(glob.begin(), glob.end(), '/'));
  std::optional<std::string_view> prefix = pathPrefix(path, slashes);
  if (!prefix) {
    return false;
  }
  bool bad = false;
  return pathMatch(glob, *prefix, &bad);
}

bool matchPrefixPatterns(std::string_view patterns, std::string_view path) {
  return forEachPiece(patterns, [&](int, std::string_view piece) {
    return matchPrefixPattern(dropTrailingSlash(piece), path);
  });
}

std::optional<PatternMatch> firstMatchingPattern(std::string_view patterns, std::string_view path,
                                                 int list_id) {
  std::optional<PatternMatch> out;
  forEachPiece(patterns, [&](int index, std::string_view piece) {
    if (!matchPrefixPattern(dropTrailingSlash(piece), path)) {
      return false;
    }
    out = PatternMatch{list_id, index, std::string(piece)};
    return true;
  });
  return out;
}

std::string_view effectivePrivateList(std::string_view value, std::string_view goprivate) {
  return value.empty() ? goprivate : value;
}

std::vector<PatternProblem> checkPatternList(std::string_view patterns) {
  std::vector<PatternProblem> problems;
  forEachPiece(patterns, [&](int index, std::string_view piece) {
    std::string_view glob = dropTrailingSlash(piece);
    if (!glob.empty() && !isValidGlob(glob)) {
      problems.push_back(
          {index, std::string(piece), "malformed glob pattern (it matches no module path)"});
    }
    return false;
  });
  return problems;
}

bool ModulePatternMatcher::before(const Entry& a, const Entry& b) {
  if (a.list_id != b.list_id) {
    return a.list_id < b.list_id;
  }
  return a.index < b.index;
}

void ModulePatternMatcher::insertSorted(std::vector<Entry>* bucket, Entry entry) {
  auto it = std::upper_bound(bucket->begin(), bucket->end(), entry, before);
  bucket->insert(it, std::move(entry));
}

void ModulePatternMatcher::addList(int list_id, std::string_view patterns) {
  forEachPiece(patterns, [&](int index, std::string_view piece) {
    std::string_view glob = dropTrailingSlash(piece);
    if (glob.empty()) {
      return false;
    }
    Entry entry{list_id, index, std::string(glob), std::string(piece),
                static_cast<int>(std::count(glob.begin(), glob.end(), '/'))};
    std::string_view first = glob.substr(0, glob.find('/'));
    if (!hasGlobMeta(glob)) {
      insertSorted(&exact_[entry.glob], std::move(entry));
    } else if (!hasGlobMeta(first)) {
      insertSorted(&literal_[std::string(first)], std::move(entry));
    } else if (first.size() > 2 && first[0] == '*' && first[1] == '.' &&
               !hasGlobMeta(first.substr(1))) {
      insertSorted(&dot_suffix_[std::string(first.substr(1))], std::move(entry));
    } else {
      insertSorted(&wildcard_, std::move(entry));
    }
    ++count_;
    return false;
  });
}

bool ModulePatternMatcher::matches(const Entry& entry, std::string_view module_path) {
  std::optional<std::string_view> prefix = pathPrefix(module_path, entry.slashes);
  if (!prefix) {
    return false;
  }
  bool bad = false;
  return pathMatch(entry.glob, *prefix, &bad);
}

std::optional<PatternMatch> ModulePatternMatcher::match(std::string_view module_path) const {
  // Each candidate bucket is sorted by (list_id, index), so its first match
  // is its best; the answer is the best of the buckets' first matches.
  const Entry* best = nullptr;
  auto consider = [&](const std::vector<Entry>& bucket) {
    for (const Entry& entry : bucket) {
      if (best && !before(entry, *best)) {
        return;
      }
      if (matches(entry, module_path)) {
        best = &entry;
        return;
      }
    }
  };
  if (!exact_.empty()) {
    for (size_t slash = module_path.find('/');; slash = module_path.find('/', slash + 1)) {
      if (auto it = exact_.find(module_path.substr(0, slash)); it != exact_.end()) {
        consider(it->second);
      }
      if (slash == std::string_view::npos) {
        break;
      }
    }
  }
  std::string_view first = module_path.substr(0, module_path.find('/'));
  if (auto it = literal_.find(first); it != literal_.end()) {
    consider(it->second);
  }
  if (!dot_suffix_.empty()) {
    // '*' matches any run of non-'/' bytes, so "*.x.com" claims every first
    // element that ends with ".x.com", including ".x.com" itself.
    for (size_t dot = first.find('.'); dot != std::string_view::npos;
         dot = first.find('.', dot + 1)) {
      if (auto it = dot_suffix_.find(first.substr(dot)); it != dot_suffix_.end()) {
        consider(it->second);
      }
    }
  }
  consider(wildcard_);
  if (!best) {
    return std::nullopt;
  }
  return PatternMatch{best->list_id, best->index, best->written};
}

}  // namespace switchyard::rules
