// Fuzzes the GOPRIVATE-style pattern lists: Go's path.Match port and the
// multi-list index. Input: "<patterns>\n<module path>" (no newline: the
// whole input is both). Besides "no crash, no sanitizer report", it checks
// that the index and the plain list scan agree, and that a match names the
// first matching piece.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rules/module_pattern.h"

using switchyard::rules::firstMatchingPattern;
using switchyard::rules::globMatch;
using switchyard::rules::isValidGlob;
using switchyard::rules::matchPrefixPattern;
using switchyard::rules::matchPrefixPatterns;
using switchyard::rules::ModulePatternMatcher;
using switchyard::rules::PatternMatch;

namespace {

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

std::string_view piece(std::string_view list, int index) {
  for (int i = 0; i < index; ++i) {
    list.remove_prefix(list.find(',') + 1);
  }
  return list.substr(0, list.find(','));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t nl = input.find('\n');
  std::string_view patterns = input.substr(0, nl);
  std::string_view path = nl == std::string_view::npos ? input : input.substr(nl + 1);

  // The raw glob on its own: a malformed verdict never comes with a match,
  // and it does not depend on the name.
  bool malformed = false;
  bool matched = globMatch(patterns, path, &malformed);
  check(!(matched && malformed));
  check(malformed == !isValidGlob(patterns));

  bool any = matchPrefixPatterns(patterns, path);
  std::optional<PatternMatch> first = firstMatchingPattern(patterns, path, 1);
  check(any == first.has_value());
  if (first) {
    check(piece(patterns, first->index) == first->pattern);
    for (int i = 0; i < first->index; ++i) {
      std::string_view p = piece(patterns, i);
      if (!p.empty() && p.back() == '/') {
        p.remove_suffix(1);
      }
      check(!matchPrefixPattern(p, path));
    }
  }

  // The index over two lists must give the list-by-list answer: list 0 is
  // the second half of the patterns, list 1 the whole text.
  std::string_view second_half = patterns.substr(patterns.size() / 2);
  ModulePatternMatcher matcher;
  matcher.addList(1, patterns);
  matcher.addList(0, second_half);
  std::optional<PatternMatch> want = firstMatchingPattern(second_half, path, 0);
  if (!want) {
    want = first;
  }
  std::optional<PatternMatch> got = matcher.match(path);
  check(got.has_value() == want.has_value());
  if (got) {
    check(got->list_id == want->list_id && got->index == want->index &&
          got->pattern == want->pattern);
  }
  return 0;
}
