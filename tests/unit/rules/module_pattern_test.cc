// GOPRIVATE / GONOPROXY / GONOSUMDB pattern lists (SEMANTICS.md §c): Go's
// path.Match, module.MatchPrefixPatterns and the multi-list index.
#include "rules/module_pattern.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchyard::rules {
namespace {

struct GlobCase {
  const char* pattern;
  const char* name;
  bool match;
  bool malformed;
};

// Expected values follow Go's path.Match (its documented grammar and the
// behaviour of the go-run tables), including the malformed cases, which
// Go reports as ErrBadPattern whatever the name.
const GlobCase kGlobCases[] = {
    {"abc", "abc", true, false},
    {"abc", "abd", false, false},
    {"abc", "ab", false, false},
    {"", "", true, false},
    {"", "a", false, false},
    {"*", "abc", true, false},
    {"*", "", true, false},
    {"*", "a/b", false, false},
    {"*c", "abc", true, false},
    {"a*", "a", true, false},
    {"a*", "abc", true, false},
    {"a*", "ab/c", false, false},
    {"a*b", "ab", true, false},
    {"a*/b", "abc/b", true, false},
    {"a*/b", "a/c/b", false, false},
    {"a*b*c*d*e*/f", "axbxcxdxe/f", true, false},
    {"a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false},
    {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false},
    {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false},
    {"a*b?c*x", "abxbbxdbxebxczzx", true, false},
    {"a*b?c*x", "abxbbxdbxebxczzy", false, false},
    {"ab[c]", "abc", true, false},
    {"ab[b-d]", "abc", true, false},
    {"ab[e-g]", "abc", false, false},
    {"ab[^c]", "abc", false, false},
    {"ab[^b-d]", "abc", false, false},
    {"ab[^e-g]", "abc", true, false},
    {"a\\*b", "a*b", true, false},
    {"a\\*b", "ab", false, false},
    {"a?b",
     "a\xE2\x98\xBA"
     "b",
     true, false},  // '?' is one rune, not one byte
    {"a[^a]b",
     "a\xE2\x98\xBA"
     "b",
     true, false},
    {"a???b",
     "a\xE2\x98\xBA"
     "b",
     false, false},
    {"a[^a][^a][^a]b",
     "a\xE2\x98\xBA"
     "b",
     false, false},
    {"[a-\xCE\xB6]*", "\xCE\xB1", true, false},  // [a-ζ] contains α
    {"*[a-\xCE\xB6]", "A", false, false},
    {"a?b", "a/b", false, false},
    {"a*b", "a/b", false, false},
    {"[\\]a]", "]", true, false},
    {"[\\-]", "-", true, false},
    {"[x\\-]", "x", true, false},
    {"[x\\-]", "-", true, false},
    {"[x\\-]", "z", false, false},
    {"[\\-x]", "x", true, false},
    {"[\\-x]", "-", true, false},
    {"[\\-x]", "a", false, false},
    {"[!a]", "!", true, false},  // '!' is a literal in Go, not negation
    {"[!a]", "b", false, false},
    {"[^!]", "b", true, false},
    {"[^a]", "/", true, false},  // a class may match '/'
    {"[a-c]", "/", false, false},
    {"?", "", false, false},
    {"?", "\xFF", true, false},  // one invalid byte counts as one rune
    {"[^a]", "\xFF", true, false},
    {"\\a", "a", true, false},
    {"*x", "xxx", true, false},
    {"[]a]", "]", false, true},
    {"[-]", "-", false, true},
    {"[x-]", "x", false, true},
    {"[x-]", "-", false, true},
    {"[x-]", "z", false, true},
    {"[-x]", "x", false, true},
    {"\\", "a", false, true},
    {"a\\", "a", false, true},
    {"[a-b-c]", "a", false, true},
    {"[", "a", false, true},
    {"[^", "a", false, true},
    {"[^bc", "a", false, true},
    {"a[", "a", false, true},
    {"a[", "ab", false, true},
    {"a[", "x", false, true},
    {"a/b[", "x", false, true},
    {"*x[", "xxx", false, true},
    {"[\xFF]", "a", false, true},  // invalid UTF-8 inside a class
    {"[]", "", false, true},
};

TEST(GlobMatch, Table) {
  int n = 0;
  for (const GlobCase& c : kGlobCases) {
    SCOPED_TRACE(std::string("pattern=") + c.pattern + " name=" + c.name);
    bool malformed = !c.malformed;
    EXPECT_EQ(globMatch(c.pattern, c.name, &malformed), c.match);
    EXPECT_EQ(malformed, c.malformed);
    EXPECT_EQ(isValidGlob(c.pattern), !c.malformed);
    EXPECT_EQ(globMatch(c.pattern, c.name), c.match);  // the out-parameter is optional
    ++n;
  }
  EXPECT_GE(n, 70);
}

struct PrefixCase {
  const char* patterns;
  const char* path;
  int index;  // -1: no match; else the 0-based piece that matched first
};

const PrefixCase kPrefixCases[] = {
    {"example.com", "example.com", 0},
    {"example.com", "example.com/anything", 0},
    {"example.com", "example.com/a/b/c", 0},
    {"example.com", "example.community/x", -1},
    {"example.com", "www.example.com/x", -1},
    {"*.example.com", "a.b.example.com/x", 0},
    {"*.example.com", "example.com/x", -1},
    {"*.example.com/", "a.example.com/x", 0},
    {"github.com/org", "github.com/organization/x", -1},
    {"github.com/org", "github.com/org/x", 0},
    {"github.com/org", "github.com/org", 0},
    {"github.com/org", "github.com", -1},  // fewer elements than the pattern
    {"github.com/org/", "github.com/org/x", 0},
    // Only one trailing '/' is dropped: "github.com/org/" then needs a third,
    // empty element.
    {"github.com/org//", "github.com/org/x", -1},
    {"github.com/org//", "github.com/org/", 0},
    {"github.com/org//", "github.com/org//x", 0},
    {"*", "anything/at/all", 0},
    {"*", "", 0},
    {"*/", "x/y", 0},
    {"*/*", "one", -1},
    {"*/*", "a/b", 0},
    {"*/*", "a/b/c", 0},
    {" example.com", "example.com", -1},  // no trimming
    {"example.com ", "example.com", -1},
    {"a.com, b.com", "b.com", -1},
    {"a.com,b.com", "b.com", 1},
    {",,example.com", "example.com", 2},  // empty pieces keep their index
    {"example.com,,", "example.com", 0},
    {"Example.com", "example.com", -1},  // case-sensitive
    {"example.com", "EXAMPLE.com/x", -1},
    {"[", "anything", -1},
    {"[,example.com", "example.com/x", 1},  // malformed pattern skipped, later tried
    {"a\\,example.com", "example.com", 1},
    {"[a-],a", "a", 1},
    {"none", "github.com/x", -1},  // the GONOPROXY=none idiom
    {"none", "none/x", 0},         // ...which is only a literal pattern
    {"/", "", -1},
    {"/", "/x", -1},
    {"", "example.com", -1},
    {",", "example.com", -1},
    {"git.corp.example/*", "git.corp.example/team/repo", 0},
    {"git.corp.example/*", "git.corp.example", -1},
    {"*.internal", "svc.internal/x", 0},
    {"*.internal", "internal/x", -1},
    {"example.com/*/v2", "example.com/a/v2/pkg", 0},
    {"example.com/*/v2", "example.com/a/v3", -1},
    {"ex?mple.com", "example.com/x", 0},
    {"example.[a-c]om", "example.com", 0},
    {"example.[^c]om", "example.com", -1},
    {"example.[^c]om", "example.dom", 0},
    {"example.[!c]om", "example.com", 0},
    {"example.[!c]om", "example.dom", -1},
    {"ex\\ample.com", "example.com", 0},
    {"a\\*b", "a*b/x", 0},
    {"a\\*b", "axb", -1},
    {"example.com/x/", "example.com/x", 0},
    {"\xE4\xBE\x8B.jp", "\xE4\xBE\x8B.jp/x", 0},
    {"a/b", "a/b", 0},
    {"a/b", "a/bc", -1},
    {"a*", "abc/def", 0},
    {"a[/]b", "a/b", 0},  // a class matches the '/' of the two-element prefix
    {"a?b", "a/b", -1},
    {"a/*", "a/", 0},
    {"x", "", -1},
    {"corp.example,*.corp.example", "git.corp.example/x", 1},
    {"*.corp.example,git.corp.example", "git.corp.example/x", 0},
    {"a.com,b.com,c.com", "c.com/x/y", 2},
    {"github.com/*/private-*", "github.com/acme/private-tools/v2", 0},
    {"github.com/*/private-*", "github.com/acme/public-tools", -1},
};

TEST(MatchPrefixPatterns, Table) {
  int n = 0;
  for (const PrefixCase& c : kPrefixCases) {
    SCOPED_TRACE(std::string("patterns=\"") + c.patterns + "\" path=\"" + c.path + "\"");
    EXPECT_EQ(matchPrefixPatterns(c.patterns, c.path), c.index >= 0);
    std::optional<PatternMatch> m = firstMatchingPattern(c.patterns, c.path, 7);
    ASSERT_EQ(m.has_value(), c.index >= 0);
    if (m) {
      EXPECT_EQ(m->index, c.index);
      EXPECT_EQ(m->list_id, 7);
    }
    // The compiled index must agree with the plain algorithm.
    ModulePatternMatcher matcher;
    matcher.addList(3, c.patterns);
    std::optional<PatternMatch> i = matcher.match(c.path);
    ASSERT_EQ(i.has_value(), c.index >= 0);
    if (i) {
      EXPECT_EQ(i->index, c.index);
      EXPECT_EQ(i->list_id, 3);
      EXPECT_EQ(i->pattern, m->pattern);
    }
    ++n;
  }
  EXPECT_GE(n, 60);
}

TEST(MatchPrefixPatterns, ReportsPatternAsWritten) {
  std::optional<PatternMatch> m = firstMatchingPattern("x.org,github.com/org/", "github.com/org/a");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->pattern, "github.com/org/");
  EXPECT_EQ(m->index, 1);
}

TEST(MatchPrefixPattern, SinglePattern) {
  EXPECT_TRUE(matchPrefixPattern("example.com", "example.com/x"));
  EXPECT_FALSE(matchPrefixPattern("", "example.com"));
  EXPECT_FALSE(matchPrefixPattern("[", "["));
}

TEST(EffectivePrivateList, DefaultsToGoprivateWhenEmpty) {
  EXPECT_EQ(effectivePrivateList("", "git.corp"), "git.corp");
  EXPECT_EQ(effectivePrivateList("none", "git.corp"), "none");
  EXPECT_EQ(effectivePrivateList("", ""), "");
  EXPECT_EQ(effectivePrivateList(" ", "git.corp"), " ");  // only the empty string defaults
}

TEST(CheckPatternList, ReportsMalformedPiecesWithIndex) {
  std::vector<PatternProblem> p = checkPatternList("[,ok.example,,a\\,b[^]/");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].index, 0);
  EXPECT_EQ(p[0].pattern, "[");
  EXPECT_EQ(p[1].index, 3);
  EXPECT_EQ(p[1].pattern, "a\\");
  EXPECT_EQ(p[2].index, 4);
  EXPECT_EQ(p[2].pattern, "b[^]/");
  EXPECT_TRUE(checkPatternList("*.corp,github.com/x/").empty());
}

TEST(ModulePatternMatcher, SmallestListIdWinsThenSmallestIndex) {
  ModulePatternMatcher m;
  m.addList(2, "*.corp.example");
  m.addList(1, "other.example,git.corp.example");
  m.addList(5, "*");
  std::optional<PatternMatch> r = m.match("git.corp.example/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->list_id, 1);
  EXPECT_EQ(r->index, 1);
  EXPECT_EQ(r->pattern, "git.corp.example");

  r = m.match("svn.corp.example/y");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->list_id, 2);
  EXPECT_EQ(r->pattern, "*.corp.example");

  r = m.match("github.com/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->list_id, 5);
  EXPECT_EQ(r->index, 0);
}

TEST(ModulePatternMatcher, WildcardBeforeLiteralInSameList) {
  ModulePatternMatcher m;
  m.addList(0, "*,example.com");
  std::optional<PatternMatch> r = m.match("example.com/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->index, 0);
  EXPECT_EQ(r->pattern, "*");

  ModulePatternMatcher m2;
  m2.addList(0, "example.com,*");
  r = m2.match("example.com/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->index, 0);
  EXPECT_EQ(r->pattern, "example.com");
}

TEST(ModulePatternMatcher, LiteralFirstElementWithDeeperWildcards) {
  ModulePatternMatcher m;
  m.addList(0, "github.com/acme/*,github.com/*/secret,gitlab.com");
  EXPECT_EQ(m.wildcardCountForTest(), 0u);  // all three are keyed by a literal element
  ASSERT_TRUE(m.match("github.com/acme/x"));
  EXPECT_EQ(m.match("github.com/acme/x")->index, 0);
  ASSERT_TRUE(m.match("github.com/bob/secret/v2"));
  EXPECT_EQ(m.match("github.com/bob/secret/v2")->index, 1);
  EXPECT_FALSE(m.match("github.com/bob/public"));
  EXPECT_FALSE(m.match("github.com"));
  EXPECT_FALSE(m.match("gitlab.community/x"));
}

TEST(ModulePatternMatcher, EmptyAndMalformedPiecesAreSkippedButCounted) {
  ModulePatternMatcher m;
  m.addList(0, ",[,,x.org/,");
  EXPECT_EQ(m.patternCount(), 2u);  // "[" and "x.org/"; the empty ones are dropped
  std::optional<PatternMatch> r = m.match("x.org/y");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->index, 3);
  EXPECT_EQ(r->pattern, "x.org/");
  EXPECT_FALSE(m.match("["));
}

TEST(ModulePatternMatcher, SameListIdAddedTwiceRestartsIndexes) {
  ModulePatternMatcher m;
  m.addList(4, "a.org,b.org");
  m.addList(4, "c.org");
  ASSERT_TRUE(m.match("c.org"));
  EXPECT_EQ(m.match("c.org")->index, 0);
  EXPECT_EQ(m.match("b.org")->index, 1);
}

TEST(ModulePatternMatcher, AgreesWithListByListScan) {
  const std::vector<std::pair<int, std::string>> lists = {
      {3, "git.corp.example,*.internal,github.com/acme"},
      {1, "github.com/acme/private-*,[,none"},
      {2, "*.corp.example/,example.com/*/v2"},
      {0, ""},
      {4, "*/*"},
  };
  const char* paths[] = {"git.corp.example/x",
                         "svc.internal",
                         "github.com/acme/private-x",
                         "github.com/acme/public",
                         "a.corp.example/b",
                         "example.com/m/v2/p",
                         "none",
                         "single",
                         "x/y",
                         "",
                         "git.corp.example",
                         "github.com/acme"};
  ModulePatternMatcher m;
  for (const auto& [id, text] : lists) {
    m.addList(id, text);
  }
  for (const char* path : paths) {
    SCOPED_TRACE(path);
    std::optional<PatternMatch> want;
    for (int id = 0; id <= 4 && !want; ++id) {
      for (const auto& [lid, text] : lists) {
        if (lid == id && !want) {
          want = firstMatchingPattern(text, path, lid);
        }
      }
    }
    std::optional<PatternMatch> got = m.match(path);
    ASSERT_EQ(got.has_value(), want.has_value());
    if (got) {
      EXPECT_EQ(got->list_id, want->list_id);
      EXPECT_EQ(got->index, want->index);
      EXPECT_EQ(got->pattern, want->pattern);
    }
  }
}

TEST(ModulePatternMatcher, ThousandLiteralPatternsAreIndexedNotScanned) {
  std::string list;
  for (int i = 0; i < 1000; ++i) {
    list += "host" + std::to_string(i) + ".corp.example/team,";
  }
  list += "*internal";
  ModulePatternMatcher m;
  m.addList(0, list);
  EXPECT_EQ(m.patternCount(), 1001u);
  // Only the one pattern with a wildcard in its first element is scanned on
  // every lookup; the thousand others cost one hash lookup.
  EXPECT_EQ(m.wildcardCountForTest(), 1u);
  std::optional<PatternMatch> r = m.match("host999.corp.example/team/repo");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->index, 999);
  r = m.match("db.internal/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->index, 1000);
  EXPECT_FALSE(m.match("host999.corp.example/other"));
  EXPECT_FALSE(m.match("host1000.corp.example/team"));
}

TEST(ModulePatternMatcher, DotSuffixWildcardsAreIndexed) {
  ModulePatternMatcher m;
  std::string list;
  for (int i = 0; i < 500; ++i) {
    list += "*.corp" + std::to_string(i) + ".internal,";
  }
  m.addList(0, list);
  m.addList(1, "*.b.com,*.a.b.com/x,*.example.org/*/sub,x*.other");
  EXPECT_EQ(m.wildcardCountForTest(), 1u);  // only "x*.other" is scanned
  struct Case {
    const char* path;
    int list_id;  // -1: no match
    int index;
  };
  const Case cases[] = {
      {"db.corp499.internal/repo", 0, 499},
      {"a.b.corp7.internal", 0, 7},
      {".corp3.internal/x", 0, 3},  // '*' matches the empty run
      {"corp3.internal/x", -1, 0},
      {"x.corp3.internalx/y", -1, 0},
      {"q.a.b.com/x/y", 1, 0},  // "*.b.com" comes first in the list
      {"b.com/x", -1, 0},
      {"host.example.org/team/sub/pkg", 1, 2},
      {"host.example.org/team/other", -1, 0},
      {"xy.other/z", 1, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    std::optional<PatternMatch> r = m.match(c.path);
    if (c.list_id < 0) {
      EXPECT_FALSE(r);
      continue;
    }
    ASSERT_TRUE(r);
    EXPECT_EQ(r->list_id, c.list_id);
    EXPECT_EQ(r->index, c.index);
  }
}

}  // namespace
}  // namespace switchyard::rules
