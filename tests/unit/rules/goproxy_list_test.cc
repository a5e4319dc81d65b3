// GOPROXY list parsing and the per-request walk (SEMANTICS.md §b).
#include "rules/goproxy_list.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace switchyard::rules {
namespace {

using Kind = AttemptOutcome::Kind;

// "https://a| direct": entries separated by spaces, '|' marks fall-through
// on any error.
std::string render(const GoproxyList& list) {
  std::string out;
  for (const GoproxyEntry& e : list.entries) {
    if (!out.empty()) {
      out += ' ';
    }
    out += e.url;
    if (e.fall_through_on_any_error) {
      out += '|';
    }
  }
  return out;
}

struct ParseCase {
  const char* value;
  bool insert_noproxy;
  const char* want;  // rendered entries when ok, else a substring of the error
  bool ok;
};

const ParseCase kParseCases[] = {
    {"", false, "https://proxy.golang.org direct", true},
    {"", true, "noproxy https://proxy.golang.org direct", true},
    {"https://a.example,https://b.example", false, "https://a.example https://b.example", true},
    {"https://a.example|https://b.example", false, "https://a.example| https://b.example", true},
    {"https://a.example|https://b.example,direct", false,
     "https://a.example| https://b.example direct", true},
    {",https://a.example,,", false, "https://a.example", true},
    {" https://a.example , https://b.example ", false, "https://a.example https://b.example", true},
    {"https://a.example\t|\nhttps://b.example", false, "https://a.example| https://b.example",
     true},
    {"\xC2\xA0https://a.example\xE3\x80\x80", false, "https://a.example", true},  // Unicode spaces
    {"off", false, "off", true},
    {"direct", false, "direct", true},
    {"https://a.example,off,https://b.example", false, "https://a.example off", true},
    {"https://a.example|off", false, "https://a.example| off", true},
    {"direct|https://b.example", false, "direct", true},
    {"direct,garbage://x", false, "direct", true},  // nothing after direct is even checked
    {"off,::bad", false, "off", true},
    {"https://a.example,direct,https://b.example", false, "https://a.example direct", true},
    {"proxy.corp:8080", false, "https://proxy.corp:8080", true},
    {"proxy.corp", false, "https://proxy.corp", true},
    {"proxy.corp/goproxy", false, "https://proxy.corp/goproxy", true},
    {"127.0.0.1:3128", false, "https://127.0.0.1:3128", true},
    {"proxy.corp:8080|direct", false, "https://proxy.corp:8080| direct", true},
    {"http://a.example", false, "http://a.example", true},
    {"HTTPS://A.example", false, "HTTPS://A.example", true},  // scheme compared lowercased
    {"http://[::1]:3128/mod", false, "http://[::1]:3128/mod", true},
    {"https://user:secret@a.example/p", false, "https://user:secret@a.example/p", true},
    {"file:///srv/goproxy", false, "file:///srv/goproxy", true},
    {"file:///srv/goproxy,direct", true, "noproxy file:///srv/goproxy direct", true},
    {"localhost", false, "invalid proxy URL missing scheme: localhost", false},
    {"OFF", false, "invalid proxy URL missing scheme: OFF", false},
    {"a:/b", false, "invalid proxy URL scheme (must be https, http, file): a:/b", false},
    {"C:/goproxy", false, "invalid proxy URL scheme (must be https, http, file)", false},
    {"/srv/goproxy", false, "invalid proxy URL missing scheme: /srv/goproxy", false},
    {"ftp://a.example", false, "invalid proxy URL scheme (must be https, http, file)", false},
    {"file://host/srv", false, "invalid file:// proxy URL with non-path elements", false},
    {"file:///srv?x=1", false, "invalid file:// proxy URL with non-path elements", false},
    {"file:///srv#frag", false, "invalid file:// proxy URL with non-path elements", false},
    {"file:/srv", false, "invalid file:// proxy URL with non-path elements", false},
    {"https://a b.example", false, "invalid character \" \" in host name", false},
    {"https://a.example:port", false, "invalid port \":port\" after host", false},
    {"https://a.example/%zz", false, "invalid URL escape \"%zz\"", false},
    {"https://", false, "invalid proxy URL missing host: https://", false},
    // "https:opaque" has no ":/", so it is prefixed and "opaque" becomes a port.
    {"https:opaque", false, "invalid port \":opaque\" after host", false},
    {"http:/x", false, "invalid proxy URL missing host: http:/x", false},
    {"https://a.example,ftp://b", false, "invalid proxy URL scheme", false},
    {",", false, "GOPROXY list is not the empty string, but contains no entries", false},
    {" ", false, "contains no entries", false},
    {" , | ", true, "contains no entries", false},
    {"://x", false, "missing protocol scheme", false},
};

TEST(ParseGoproxyList, Table) {
  for (const ParseCase& c : kParseCases) {
    SCOPED_TRACE(std::string("GOPROXY=\"") + c.value +
                 "\" noproxy=" + (c.insert_noproxy ? "yes" : "no"));
    GoproxyList list;
    std::string error;
    bool ok = parseGoproxyList(c.value, c.insert_noproxy, &list, &error);
    ASSERT_EQ(ok, c.ok) << error;
    if (ok) {
      EXPECT_EQ(render(list), c.want);
      EXPECT_EQ(list.text, c.value);
    } else {
      EXPECT_NE(error.find(c.want), std::string::npos) << error;
    }
  }
}

TEST(ParseGoproxyList, EntryKindsAndKeywordUrls) {
  GoproxyList list;
  std::string error;
  ASSERT_TRUE(parseGoproxyList("a.example|off", true, &list, &error));
  ASSERT_EQ(list.entries.size(), 3u);
  EXPECT_EQ(list.entries[0].kind, GoproxyEntry::Kind::kNoproxy);
  EXPECT_FALSE(list.entries[0].fall_through_on_any_error);
  EXPECT_EQ(list.entries[1].kind, GoproxyEntry::Kind::kUrl);
  EXPECT_EQ(list.entries[1].url, "https://a.example");
  EXPECT_TRUE(list.entries[1].fall_through_on_any_error);
  EXPECT_EQ(list.entries[2].kind, GoproxyEntry::Kind::kOff);
  EXPECT_STREQ(goproxyEntryKindName(list.entries[2].kind), "off");
}

TEST(ParseGoproxyList, ErrorsRedactPasswords) {
  GoproxyList list;
  std::string error;
  ASSERT_FALSE(parseGoproxyList("ftp://user:secret@a.example", false, &list, &error));
  EXPECT_EQ(error.find("secret"), std::string::npos) << error;
  EXPECT_NE(error.find("user:xxxxx@a.example"), std::string::npos) << error;
  ASSERT_FALSE(parseGoproxyList("https://user:secret@a.example:x", false, &list, &error));
  EXPECT_EQ(error.find("secret"), std::string::npos) << error;
}

TEST(GoproxyNeedsNoproxyStep, Table) {
  EXPECT_TRUE(goproxyNeedsNoproxyStep("", "git.corp"));  // default list is not "direct"
  EXPECT_FALSE(goproxyNeedsNoproxyStep("direct", "git.corp"));
  EXPECT_TRUE(goproxyNeedsNoproxyStep(" direct", "git.corp"));  // only exactly "direct"
  EXPECT_TRUE(goproxyNeedsNoproxyStep("direct,https://x", "git.corp"));
  EXPECT_TRUE(goproxyNeedsNoproxyStep("off", "git.corp"));
  EXPECT_FALSE(goproxyNeedsNoproxyStep("https://a", ""));
  EXPECT_FALSE(goproxyNeedsNoproxyStep("", ""));
  EXPECT_EQ(effectiveGoproxy(""), "https://proxy.golang.org,direct");
  EXPECT_EQ(effectiveGoproxy("off"), "off");
}

// --- The walk -------------------------------------------------------------

AttemptOutcome http(int status) {
  return outcomeFromHttpStatus(status);
}
AttemptOutcome ok() {
  return {Kind::kSuccess, 200, ""};
}
AttemptOutcome transport(const char* why) {
  return {Kind::kTransport, 0, why};
}
AttemptOutcome timeout() {
  return {Kind::kTimeout, 0, "upstream timed out"};
}
AttemptOutcome noDirect() {
  return {Kind::kDirectUnavailable, 0, "cannot fetch directly"};
}

struct WalkResult {
  std::vector<std::string> tried;  // entries handed to the caller, in order
  std::vector<std::string> log;    // "url => next" for every attempt
  bool succeeded = false;
  AttemptOutcome final_outcome;
};

// Drives a walk: the fake upstream answers each entry from `answers` (keyed by
// entry url, "direct" and "noproxy" included); an entry without an answer
// fails the test.
WalkResult walk(const char* goproxy, bool insert_noproxy, bool is_private,
                std::map<std::string, AttemptOutcome> answers) {
  WalkResult r;
  GoproxyList list;
  std::string error;
  EXPECT_TRUE(parseGoproxyList(goproxy, insert_noproxy, &list, &error)) << error;
  GoproxyWalk w(list, is_private);
  int guard = 0;
  while (const GoproxyEntry* e = w.next()) {
    EXPECT_LT(++guard, 20);
    if (guard >= 20) {
      break;
    }
    r.tried.push_back(e->url);
    auto it = answers.find(e->url);
    EXPECT_NE(it, answers.end()) << "unexpected attempt at " << e->url;
    w.report(it == answers.end() ? ok() : it->second);
  }
  EXPECT_TRUE(w.done());
  for (const auto& a : w.attempts()) {
    r.log.push_back(a.entry->url + " => " + a.next);
  }
  r.succeeded = w.succeeded();
  r.final_outcome = w.finalOutcome();
  return r;
}

using Strings = std::vector<std::string>;

// B.2, first row: the implicit noproxy step.
TEST(GoproxyWalk, NoproxyStepIsSkippedForPublicModule) {
  WalkResult r = walk("https://a", true, false, {{"https://a", ok()}});
  EXPECT_EQ(r.tried, Strings({"https://a"}));
  EXPECT_EQ(r.log, Strings({"noproxy => skipped", "https://a => served"}));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.final_outcome.kind, Kind::kSuccess);
}

TEST(GoproxyWalk, NoproxyStepFetchesDirectForPrivateModule) {
  WalkResult r = walk("https://a,direct", true, true, {{"noproxy", ok()}});
  EXPECT_EQ(r.tried, Strings({"noproxy"}));
  EXPECT_EQ(r.log, Strings({"noproxy => served"}));
  EXPECT_TRUE(r.succeeded);
}

TEST(GoproxyWalk, PrivateModuleNotFoundDirectlySkipsProxiesAndTriesDirectAgain) {
  WalkResult r = walk("https://a,direct", true, true,
                      {{"noproxy", {Kind::kNotFound, 0, "repository not found"}},
                       {"direct", {Kind::kNotFound, 0, "repository not found (2)"}}});
  EXPECT_EQ(r.tried, Strings({"noproxy", "direct"}));
  EXPECT_EQ(r.log, Strings({"noproxy => fell through: not found after ','", "https://a => skipped",
                            "direct => stopped"}));
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.final_outcome.error, "repository not found (2)");
}

TEST(GoproxyWalk, PrivateModuleHardDirectErrorStops) {
  WalkResult r =
      walk("https://a|direct", true, true, {{"noproxy", transport("git: authentication failed")}});
  EXPECT_EQ(r.tried, Strings({"noproxy"}));
  EXPECT_EQ(r.log, Strings({"noproxy => stopped"}));
  EXPECT_EQ(r.final_outcome.kind, Kind::kTransport);
  EXPECT_EQ(r.final_outcome.error, "git: authentication failed");
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 502);
}

// B.2, second row: proxy URLs.
TEST(GoproxyWalk, ProxyUrlIsSkippedForPrivateModuleEvenWithoutNoproxyStep) {
  // A list built without the noproxy step (e.g. a rule's mirrors) still
  // never sends a GONOPROXY module to a proxy.
  WalkResult r = walk("https://a|https://b", false, true, {});
  EXPECT_TRUE(r.tried.empty());
  EXPECT_EQ(r.log, Strings({"https://a => skipped", "https://b => skipped"}));
  EXPECT_EQ(r.final_outcome.kind, Kind::kNotFound);
  EXPECT_EQ(r.final_outcome.error, "disabled by GOPRIVATE/GONOPROXY");
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 404);
}

// B.2, third row: direct.
TEST(GoproxyWalk, DirectIsHandedToCallerForPublicModule) {
  WalkResult r = walk("direct", false, false, {{"direct", ok()}});
  EXPECT_EQ(r.tried, Strings({"direct"}));
  EXPECT_TRUE(r.succeeded);
}

TEST(GoproxyWalk, DirectIsHandedToCallerForPrivateModule) {
  WalkResult r = walk("direct", false, true, {{"direct", ok()}});
  EXPECT_EQ(r.tried, Strings({"direct"}));
  EXPECT_TRUE(r.succeeded);
}

// B.2, fourth row: off.
TEST(GoproxyWalk, OffDisablesLookupForPublicModule) {
  WalkResult r = walk("off", false, false, {});
  EXPECT_TRUE(r.tried.empty());
  EXPECT_EQ(r.log, Strings({"off => stopped"}));
  EXPECT_EQ(r.final_outcome.kind, Kind::kDisabled);
  EXPECT_EQ(r.final_outcome.error, "module lookup disabled by GOPROXY=off");
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 404);
}

TEST(GoproxyWalk, PrivateModuleWithGoproxyOffIsFetchedDirectly) {
  WalkResult r = walk("off", true, true, {{"noproxy", ok()}});
  EXPECT_EQ(r.tried, Strings({"noproxy"}));
  EXPECT_TRUE(r.succeeded);
}

TEST(GoproxyWalk, PrivateModuleWithGoproxyOffDirectNotFoundReportsDirectError) {
  WalkResult r = walk("off", true, true, {{"noproxy", http(404)}});
  EXPECT_EQ(r.log, Strings({"noproxy => fell through: 404 after ','", "off => stopped"}));
  EXPECT_EQ(r.final_outcome.status, 404);  // the noproxy error outranks "disabled"
}

TEST(GoproxyWalk, PrivateModuleWhereSwitchyardCannotGoDirectEndsAt404) {
  WalkResult r = walk("off", true, true, {{"noproxy", noDirect()}});
  EXPECT_EQ(r.log, Strings({"noproxy => stopped"}));
  EXPECT_EQ(r.final_outcome.kind, Kind::kDirectUnavailable);
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 404);
}

TEST(GoproxyWalk, DirectUnavailableEndsTheWalkAtOnce) {
  // No skipped URL steps are logged after it: nothing could succeed.
  WalkResult r = walk("https://a,https://b,direct", true, true, {{"noproxy", noDirect()}});
  EXPECT_EQ(r.tried, Strings({"noproxy"}));
  EXPECT_EQ(r.log, Strings({"noproxy => stopped"}));
}

// Fall-through after ',' and '|'.
struct FallCase {
  const char* goproxy;
  AttemptOutcome first;
  bool falls_through;
  const char* log0;
};

TEST(GoproxyWalk, FallThroughTable) {
  const FallCase cases[] = {
      {"https://a,https://b", http(404), true, "https://a => fell through: 404 after ','"},
      {"https://a,https://b", http(410), true, "https://a => fell through: 410 after ','"},
      {"https://a,https://b", http(400), false, "https://a => stopped"},
      {"https://a,https://b", http(401), false, "https://a => stopped"},
      {"https://a,https://b", http(403), false, "https://a => stopped"},
      {"https://a,https://b", http(500), false, "https://a => stopped"},
      {"https://a,https://b", http(502), false, "https://a => stopped"},
      {"https://a,https://b", transport("connection refused"), false, "https://a => stopped"},
      {"https://a,https://b", transport("TLS handshake failed"), false, "https://a => stopped"},
      {"https://a,https://b", transport("bad JSON in .info"), false, "https://a => stopped"},
      {"https://a,https://b", timeout(), false, "https://a => stopped"},
      {"https://a|https://b", http(404), true, "https://a => fell through: 404 after '|'"},
      {"https://a|https://b", http(403), true, "https://a => fell through: 403 after '|'"},
      {"https://a|https://b", http(500), true, "https://a => fell through: 500 after '|'"},
      {"https://a|https://b", transport("connection reset"), true,
       "https://a => fell through: transport error after '|'"},
      {"https://a|https://b", timeout(), true, "https://a => fell through: timeout after '|'"},
      {"https://a,https://b",
       {Kind::kHttpError, 404, "reported as error"},
       true,
       "https://a => fell through: 404 after ','"},
  };
  for (const FallCase& c : cases) {
    SCOPED_TRACE(std::string(c.goproxy) + " first=" + attemptOutcomeKindName(c.first.kind) + " " +
                 std::to_string(c.first.status));
    WalkResult r = walk(c.goproxy, false, false, {{"https://a", c.first}, {"https://b", ok()}});
    ASSERT_FALSE(r.log.empty());
    EXPECT_EQ(r.log[0], c.log0);
    EXPECT_EQ(r.succeeded, c.falls_through);
    EXPECT_EQ(r.tried.size(), c.falls_through ? 2u : 1u);
    if (!c.falls_through) {
      EXPECT_EQ(r.final_outcome.kind, c.first.kind);
      EXPECT_EQ(r.final_outcome.status, c.first.status);
    }
  }
}

TEST(GoproxyWalk, TimeoutAfterCommaIsHardAndMapsTo504) {
  WalkResult r = walk("https://a,direct", false, false, {{"https://a", timeout()}});
  EXPECT_EQ(r.tried, Strings({"https://a"}));
  EXPECT_EQ(r.final_outcome.kind, Kind::kTimeout);
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 504);
}

// B.3, the go-run examples.
TEST(GoproxyWalk, ProxyErrorOutranksOff) {
  WalkResult r = walk("https://a|off", false, false, {{"https://a", http(500)}});
  EXPECT_EQ(r.log, Strings({"https://a => fell through: 500 after '|'", "off => stopped"}));
  EXPECT_EQ(r.final_outcome.status, 500);
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 502);
}

TEST(GoproxyWalk, BothNotFoundReportsTheLast) {
  WalkResult r = walk("https://a,https://b", false, false,
                      {{"https://a", http(404)}, {"https://b", http(404)}});
  EXPECT_EQ(r.final_outcome.status, 404);
  EXPECT_EQ(r.log.back(), "https://b => stopped");
  EXPECT_EQ(r.tried, Strings({"https://a", "https://b"}));
}

TEST(GoproxyWalk, TwoProxyErrorsReportTheMostRecent) {
  WalkResult r = walk("https://a|https://b", false, false,
                      {{"https://a", http(500)}, {"https://b", http(502)}});
  EXPECT_EQ(r.final_outcome.status, 502);
}

TEST(GoproxyWalk, DirectErrorOutranksProxyNotFound) {
  WalkResult r =
      walk("https://a,direct", false, false,
           {{"https://a", http(404)}, {"direct", transport("unrecognized import path")}});
  EXPECT_EQ(r.final_outcome.kind, Kind::kTransport);
  EXPECT_EQ(r.final_outcome.error, "unrecognized import path");
}

TEST(GoproxyWalk, DirectUnavailableAfterNotFoundIs404) {
  WalkResult r =
      walk("https://a,direct", false, false, {{"https://a", http(404)}, {"direct", noDirect()}});
  EXPECT_EQ(r.final_outcome.kind, Kind::kDirectUnavailable);
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 404);
}

TEST(GoproxyWalk, DirectNotFoundOutranksEarlierProxyError) {
  WalkResult r = walk("https://a|https://b,direct", false, false,
                      {{"https://a", http(500)},
                       {"https://b", http(404)},
                       {"direct", {Kind::kNotFound, 0, "no such repository"}}});
  EXPECT_EQ(r.final_outcome.error, "no such repository");
}

TEST(GoproxyWalk, ProxyErrorOutranksLaterNotFound) {
  WalkResult r =
      walk("https://a|https://b|https://c", false, false,
           {{"https://a", http(404)}, {"https://b", http(500)}, {"https://c", http(404)}});
  EXPECT_EQ(r.final_outcome.status, 500);
  WalkResult r2 = walk("https://a|https://b", false, false,
                       {{"https://a", http(500)}, {"https://b", http(404)}});
  EXPECT_EQ(r2.final_outcome.status, 500);
}

TEST(GoproxyWalk, AllNotFoundReportsLast) {
  WalkResult r =
      walk("https://a,https://b,https://c", false, false,
           {{"https://a", http(404)}, {"https://b", http(410)}, {"https://c", http(404)}});
  EXPECT_EQ(r.final_outcome.status, 404);
  EXPECT_EQ(r.log, Strings({"https://a => fell through: 404 after ','",
                            "https://b => fell through: 410 after ','", "https://c => stopped"}));
}

TEST(GoproxyWalk, SkippedNoproxyErrorIsReplacedByProxyNotFound) {
  WalkResult r = walk("https://a", true, false, {{"https://a", http(410)}});
  EXPECT_EQ(r.final_outcome.status, 410);
}

TEST(GoproxyWalk, PrivateNoproxyNotFoundOutranksSkippedProxies) {
  WalkResult r = walk("https://a|https://b", true, true,
                      {{"noproxy", {Kind::kNotFound, 0, "no such repository"}}});
  EXPECT_EQ(r.log, Strings({"noproxy => fell through: not found after ','", "https://a => skipped",
                            "https://b => skipped"}));
  EXPECT_EQ(r.final_outcome.error, "no such repository");
}

TEST(GoproxyWalk, SuccessAfterFallThroughIsServed) {
  WalkResult r = walk("https://a,https://b|https://c", false, false,
                      {{"https://a", http(404)}, {"https://b", http(503)}, {"https://c", ok()}});
  EXPECT_EQ(r.log, Strings({"https://a => fell through: 404 after ','",
                            "https://b => fell through: 503 after '|'", "https://c => served"}));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.final_outcome.kind, Kind::kSuccess);
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 200);
}

TEST(GoproxyWalk, DefaultListForPublicModule) {
  WalkResult r =
      walk("", false, false, {{"https://proxy.golang.org", http(404)}, {"direct", noDirect()}});
  EXPECT_EQ(r.tried, Strings({"https://proxy.golang.org", "direct"}));
  EXPECT_EQ(moduleProxyStatus(r.final_outcome), 404);
}

TEST(GoproxyWalk, NextIsIdempotentUntilReported) {
  GoproxyList list;
  std::string error;
  ASSERT_TRUE(parseGoproxyList("https://a,https://b", false, &list, &error));
  GoproxyWalk w(list, false);
  const GoproxyEntry* e1 = w.next();
  const GoproxyEntry* e2 = w.next();
  ASSERT_NE(e1, nullptr);
  EXPECT_EQ(e1, e2);
  EXPECT_TRUE(w.attempts().empty());
  w.report(http(404));
  const GoproxyEntry* e3 = w.next();
  ASSERT_NE(e3, nullptr);
  EXPECT_EQ(e3->url, "https://b");
  w.report(ok());
  EXPECT_EQ(w.next(), nullptr);
  w.report(http(500));  // after the end: ignored
  EXPECT_TRUE(w.succeeded());
  EXPECT_EQ(w.attempts().size(), 2u);
}

TEST(GoproxyWalk, ReportWithoutNextIsIgnored) {
  GoproxyList list;
  std::string error;
  ASSERT_TRUE(parseGoproxyList("https://a", false, &list, &error));
  GoproxyWalk w(list, false);
  w.report(http(500));
  EXPECT_TRUE(w.attempts().empty());
  EXPECT_FALSE(w.done());
  ASSERT_NE(w.next(), nullptr);
}

TEST(GoproxyWalk, EmptyListEndsAtOnce) {
  GoproxyList list;  // not produced by the parser, but must not misbehave
  GoproxyWalk w(list, false);
  EXPECT_EQ(w.next(), nullptr);
  EXPECT_TRUE(w.done());
  EXPECT_FALSE(w.succeeded());
  EXPECT_EQ(moduleProxyStatus(w.finalOutcome()), 404);
}

TEST(GoproxyWalk, AttemptsPointIntoTheList) {
  GoproxyList list;
  std::string error;
  ASSERT_TRUE(parseGoproxyList("https://a|direct", true, &list, &error));
  GoproxyWalk w(list, false);
  const GoproxyEntry* e = w.next();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e, &list.entries[1]);
  w.report(http(500));
  ASSERT_EQ(w.attempts().size(), 2u);
  EXPECT_EQ(w.attempts()[0].entry, &list.entries[0]);
  EXPECT_EQ(w.attempts()[0].outcome.error, "path does not match GOPRIVATE/GONOPROXY");
  EXPECT_EQ(w.attempts()[1].outcome.status, 500);
}

TEST(OutcomeFromHttpStatus, Classes) {
  EXPECT_EQ(outcomeFromHttpStatus(200).kind, Kind::kSuccess);
  EXPECT_EQ(outcomeFromHttpStatus(204).kind, Kind::kSuccess);
  EXPECT_EQ(outcomeFromHttpStatus(404).kind, Kind::kNotFound);
  EXPECT_EQ(outcomeFromHttpStatus(410).kind, Kind::kNotFound);
  EXPECT_EQ(outcomeFromHttpStatus(400).kind, Kind::kHttpError);
  EXPECT_EQ(outcomeFromHttpStatus(500).kind, Kind::kHttpError);
  EXPECT_EQ(outcomeFromHttpStatus(500).error, "HTTP 500");
  EXPECT_EQ(outcomeFromHttpStatus(502, "bad gateway from a").error, "bad gateway from a");
  EXPECT_TRUE(isNotFoundClass(outcomeFromHttpStatus(410)));
  EXPECT_FALSE(isNotFoundClass(outcomeFromHttpStatus(403)));
  EXPECT_TRUE(isNotFoundClass({Kind::kDisabled, 0, "off"}));
  EXPECT_FALSE(isNotFoundClass(timeout()));
  EXPECT_FALSE(isNotFoundClass(ok()));
}

TEST(ModuleProxyStatus, Table) {
  EXPECT_EQ(moduleProxyStatus(ok()), 200);
  EXPECT_EQ(moduleProxyStatus(http(404)), 404);
  EXPECT_EQ(moduleProxyStatus(http(410)), 404);
  EXPECT_EQ(moduleProxyStatus({Kind::kDisabled, 0, ""}), 404);
  EXPECT_EQ(moduleProxyStatus(noDirect()), 404);
  EXPECT_EQ(moduleProxyStatus(http(403)), 502);
  EXPECT_EQ(moduleProxyStatus(http(500)), 502);
  EXPECT_EQ(moduleProxyStatus(transport("refused")), 502);
  EXPECT_EQ(moduleProxyStatus(timeout()), 504);
}

// --- Go url.Parse subset and helpers -------------------------------------

TEST(GoUrl, ParseTable) {
  struct Case {
    const char* raw;
    bool ok;
    const char* scheme;
    const char* host;
    const char* path;
  };
  const Case cases[] = {
      {"https://a.example/p", true, "https", "a.example", "/p"},
      {"HTTP://A:80", true, "http", "A:80", ""},
      {"https://u:p@h/x", true, "https", "h", "/x"},
      {"https://[::1]:443/", true, "https", "[::1]:443", "/"},
      {"https://[::1", false, "", "", ""},
      {"https://h:", true, "https", "h:", ""},  // an empty port is allowed
      {"https://h:8x", false, "", "", ""},
      {"https://h\x01", false, "", "", ""},
      {"https://h%41", false, "", "", ""},  // %-encoded ASCII in a host
      {"https://h%25", true, "https", "h%25", ""},
      {"https://h/a%20b", true, "https", "h", "/a b"},
      {"https://h/a%2", false, "", "", ""},
      {"https://h{x}", false, "", "", ""},
      {"https://u\"@h", false, "", "", ""},  // invalid userinfo
      {"1http://x", false, "", "", ""},      // no scheme, colon in first segment
      {"/abs/path", true, "", "", "/abs/path"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.raw);
    detail::GoUrl u;
    std::string error;
    ASSERT_EQ(detail::parseGoUrl(c.raw, &u, &error), c.ok) << error;
    if (c.ok) {
      EXPECT_EQ(u.scheme, c.scheme);
      EXPECT_EQ(u.host, c.host);
      EXPECT_EQ(u.path, c.path);
    } else {
      EXPECT_EQ(error.rfind("parse \"", 0), 0u) << error;
    }
  }
}

TEST(GoUrl, RedactAndTrim) {
  EXPECT_EQ(detail::redactUrl("https://u:p@h/x"), "https://u:xxxxx@h/x");
  EXPECT_EQ(detail::redactUrl("https://u@h/x"), "https://u@h/x");
  EXPECT_EQ(detail::redactUrl("https://h/x@y:z"), "https://h/x@y:z");
  EXPECT_EQ(detail::trimGoSpace(" \t\xE2\x80\x83x y\xC2\x85\n"), "x y");
  EXPECT_EQ(detail::trimGoSpace("\xE2\x80"), "\xE2\x80");  // a truncated rune is not space
  std::vector<std::string_view> f = detail::goFields(
      "  a\tb\xE3\x80\x80"
      "c  ");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0], "a");
  EXPECT_EQ(f[1], "b");
  EXPECT_EQ(f[2], "c");
  EXPECT_TRUE(detail::goFields(" \n ").empty());
}

}  // namespace
}  // namespace switchyard::rules
