// http_message: request-target parsing (CONNECT authority-form, absolute
// form), header lists, hop-by-hop stripping, Via, serialisation, base64.
#include "daemon/http_message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchyard {
namespace {

struct AuthorityCase {
  std::string text;
  bool ok;
  std::string host;
  uint16_t port;
  bool ipv6;
};

TEST(ParseAuthorityForm, Table) {
  const std::vector<AuthorityCase> cases = {
      {"example.com:443", true, "example.com", 443, false},
      {"EXAMPLE.Com:8443", true, "example.com", 8443, false},
      {"a_b-c.example:1", true, "a_b-c.example", 1, false},
      {"127.0.0.1:65535", true, "127.0.0.1", 65535, false},
      {"[2001:db8::1]:443", true, "2001:db8::1", 443, true},
      {"[::1]:8443", true, "::1", 8443, true},
      {"[::ffff:10.0.0.1]:443", true, "::ffff:10.0.0.1", 443, true},
      {"", false, "", 0, false},
      {"example.com", false, "", 0, false},
      {"example.com:", false, "", 0, false},
      {":443", false, "", 0, false},
      {"example.com:0", false, "", 0, false},
      {"example.com:65536", false, "", 0, false},
      {"example.com:443x", false, "", 0, false},
      {"example.com:+443", false, "", 0, false},
      {"example.com:-1", false, "", 0, false},
      {"example.com:000443", false, "", 0, false},
      {"::1:443", false, "", 0, false},
      {"2001:db8::1:443", false, "", 0, false},
      {"[::1]", false, "", 0, false},
      {"[::1:443", false, "", 0, false},
      {"[zz::1]:443", false, "", 0, false},
      {"[::1]x:443", false, "", 0, false},
      {"[example.com]:443", false, "", 0, false},
      {"http://example.com:443", false, "", 0, false},
      {"example.com:443/", false, "", 0, false},
      {"user@example.com:443", false, "", 0, false},
      {"user:pw@example.com:443", false, "", 0, false},
      {"exa mple.com:443", false, "", 0, false},
      {"exa%41.com:443", false, "", 0, false},
      {"exa\tmple.com:443", false, "", 0, false},
      {std::string(254, 'a') + ":443", false, "", 0, false},
  };
  for (const AuthorityCase& c : cases) {
    SCOPED_TRACE(c.text);
    Authority out;
    std::string error;
    ASSERT_EQ(parseAuthorityForm(c.text, &out, &error), c.ok) << error;
    if (c.ok) {
      EXPECT_EQ(out.host, c.host);
      EXPECT_EQ(out.port, c.port);
      EXPECT_EQ(out.ipv6, c.ipv6);
      EXPECT_TRUE(error.empty());
    } else {
      EXPECT_FALSE(error.empty());
    }
  }
}

TEST(Authority, StrAndHostHeader) {
  Authority a{"example.com", 443, false};
  EXPECT_EQ(a.str(), "example.com:443");
  EXPECT_EQ(a.hostHeader(443), "example.com");
  EXPECT_EQ(a.hostHeader(80), "example.com:443");
  Authority v6{"2001:db8::1", 80, true};
  EXPECT_EQ(v6.str(), "[2001:db8::1]:80");
  EXPECT_EQ(v6.hostHeader(80), "[2001:db8::1]");
  EXPECT_EQ(v6.hostHeader(443), "[2001:db8::1]:80");
}

struct UrlCase {
  std::string text;
  bool ok;
  std::string scheme;
  std::string host;
  uint16_t port;
  bool explicit_port;
  bool userinfo;
  std::string path;
  std::string str;  // AbsoluteUrl::str()
};

TEST(ParseAbsoluteUrl, Table) {
  const std::vector<UrlCase> cases = {
      {"http://example.com", true, "http", "example.com", 80, false, false, "/",
       "http://example.com/"},
      {"http://example.com/", true, "http", "example.com", 80, false, false, "/",
       "http://example.com/"},
      {"http://example.com:8080/a/b?c=d", true, "http", "example.com", 8080, true, false,
       "/a/b?c=d", "http://example.com:8080/a/b?c=d"},
      {"http://example.com:80/x", true, "http", "example.com", 80, true, false, "/x",
       "http://example.com/x"},
      {"HTTP://Example.COM/Path", true, "http", "example.com", 80, false, false, "/Path",
       "http://example.com/Path"},
      {"http://user:pw@host.test/x", true, "http", "host.test", 80, false, true, "/x",
       "http://host.test/x"},
      {"http://a@b@host.test/", true, "http", "host.test", 80, false, true, "/",
       "http://host.test/"},
      {"http://[::1]:81/v6", true, "http", "::1", 81, true, false, "/v6", "http://[::1]:81/v6"},
      {"http://[::1]/", true, "http", "::1", 80, false, false, "/", "http://[::1]/"},
      {"https://h.test/", true, "https", "h.test", 443, false, false, "/", "https://h.test/"},
      {"http://h.test/p#frag", true, "http", "h.test", 80, false, false, "/p", "http://h.test/p"},
      {"http://h.test?q=1", true, "http", "h.test", 80, false, false, "/?q=1",
       "http://h.test/?q=1"},
      {"http://h.test#f", true, "http", "h.test", 80, false, false, "/", "http://h.test/"},
      {"http://h.test:/x", true, "http", "h.test", 80, false, false, "/x", "http://h.test/x"},
      {"http://[::1]:/", true, "http", "::1", 80, false, false, "/", "http://[::1]/"},
      {"ftp://h.test/", false, "", "", 0, false, false, "", ""},
      {"ws://h.test/", false, "", "", 0, false, false, "", ""},
      {"http:///x", false, "", "", 0, false, false, "", ""},
      {"/x", false, "", "", 0, false, false, "", ""},
      {"example.com/x", false, "", "", 0, false, false, "", ""},
      {"://h/", false, "", "", 0, false, false, "", ""},
      {"http://h.test:0/", false, "", "", 0, false, false, "", ""},
      {"http://h.test:99999/", false, "", "", 0, false, false, "", ""},

      {"http://[::1/", false, "", "", 0, false, false, "", ""},
      {"http://::1/", false, "", "", 0, false, false, "", ""},
      {"http://h%20t/", false, "", "", 0, false, false, "", ""},
  };
  for (const UrlCase& c : cases) {
    SCOPED_TRACE(c.text);
    AbsoluteUrl url;
    std::string error;
    ASSERT_EQ(parseAbsoluteUrl(c.text, &url, &error), c.ok) << error;
    if (!c.ok) {
      EXPECT_FALSE(error.empty());
      continue;
    }
    EXPECT_EQ(url.scheme, c.scheme);
    EXPECT_EQ(url.authority.host, c.host);
    EXPECT_EQ(url.authority.port, c.port);
    EXPECT_EQ(url.explicit_port, c.explicit_port);
    EXPECT_EQ(url.had_userinfo, c.userinfo);
    EXPECT_EQ(url.path, c.path);
    EXPECT_EQ(url.str(), c.str);
  }
}

TEST(IsValidHostField, Table) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"", true},
      {"example.com", true},
      {"example.com:8080", true},
      {"example.com:", true},  // port = *DIGIT
      {"192.0.2.1:80", true},
      {"[2001:db8::1]", true},
      {"[2001:db8::1]:443", true},
      {"[v1.x:y]", true},  // IPvFuture
      {"_svc.example", true},
      {"exa%41mple.com", true},
      {"a!$&'()*+,;=b~", true},
      {"a b", false},
      {"a b@c", false},
      {"user@example.com", false},
      {"example.com:8x", false},
      {"example.com:80:80", false},
      {"2001:db8::1", false},
      {"[2001:db8::g]", false},
      {"[::1", false},
      {"[::1]x", false},
      {"exa%4", false},
      {"exa%zzmple", false},
      {"a/b", false},
      {"a\tb", false},
      {"caf\xe9", false},
  };
  for (const auto& [value, valid] : cases) {
    SCOPED_TRACE(value);
    EXPECT_EQ(isValidHostField(value), valid);
  }
}

struct HeadCase {
  std::string name;
  std::string method;
  std::string target;
  int major;
  int minor;
  bool version_written;
  std::vector<std::pair<std::string, std::string>> fields;
  int status;  // 0: no problem
};

TEST(CheckRequestHead, Table) {
  const std::string t = "http://a.test/";
  const std::vector<HeadCase> cases = {
      {"plain 1.1", "GET", t, 1, 1, true, {{"Host", "a.test"}}, 0},
      {"plain 1.0 without Host", "GET", t, 1, 0, true, {}, 0},
      {"no version (0.9)", "GET", t, 0, 9, false, {}, 400},
      {"HTTP/0.9 written", "GET", t, 0, 9, true, {{"Host", "a.test"}}, 505},
      {"HTTP/2.0", "GET", t, 2, 0, true, {{"Host", "a.test"}}, 505},
      {"1.1 without Host", "GET", t, 1, 1, true, {}, 400},
      {"CONNECT 1.1 without Host", "CONNECT", "a.test:443", 1, 1, true, {}, 400},
      {"two Hosts", "GET", t, 1, 1, true, {{"Host", "a.test"}, {"Host", "a.test"}}, 400},
      {"CONNECT two Hosts",
       "CONNECT",
       "a.test:443",
       1,
       0,
       true,
       {{"Host", "a.test:443"}, {"host", "b.test:443"}},
       400},
      {"invalid Host", "GET", t, 1, 1, true, {{"Host", "a b@c"}}, 400},
      {"empty Host", "GET", t, 1, 1, true, {{"Host", ""}}, 0},
      {"other Host (replaced later)", "GET", t, 1, 1, true, {{"Host", "evil.test"}}, 0},
      {"GET *", "GET", "*", 1, 1, true, {{"Host", "a"}}, 400},
      {"OPTIONS *", "OPTIONS", "*", 1, 1, true, {{"Host", "a"}}, 0},
      {"fragment", "GET", "http://a.test/#f", 1, 1, true, {{"Host", "a"}}, 400},
      {"fragment in origin-form", "GET", "/x#f", 1, 1, true, {{"Host", "a"}}, 400},
      {"pipe", "GET", "http://a.test/a|b", 1, 1, true, {{"Host", "a"}}, 400},
      {"backslash", "GET", "http://a.test/a\\b", 1, 1, true, {{"Host", "a"}}, 400},
      {"braces", "GET", "/{x}", 1, 1, true, {{"Host", "a"}}, 400},
      {"percent-encoded is fine", "GET", "/%7Bx%7D?q=%22", 1, 1, true, {{"Host", "a"}}, 0},
      {"chunked", "POST", t, 1, 1, true, {{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, 0},
      {"empty list element",
       "POST",
       t,
       1,
       1,
       true,
       {{"Host", "a"}, {"Transfer-Encoding", " , chunked"}},
       0},
      {"TE in 1.0", "POST", t, 1, 0, true, {{"Transfer-Encoding", "chunked"}}, 400},
      {"gzip, chunked",
       "POST",
       t,
       1,
       1,
       true,
       {{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}},
       501},
      {"gzip line, chunked line",
       "POST",
       t,
       1,
       1,
       true,
       {{"Host", "a"}, {"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}},
       501},
      {"chunked, gzip",
       "POST",
       t,
       1,
       1,
       true,
       {{"Host", "a"}, {"Transfer-Encoding", "chunked, gzip"}},
       400},
      {"chunked twice",
       "POST",
       t,
       1,
       1,
       true,
       {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}},
       400},
      {"empty TE", "POST", t, 1, 1, true, {{"Host", "a"}, {"Transfer-Encoding", ""}}, 400},
  };
  for (const HeadCase& c : cases) {
    SCOPED_TRACE(c.name);
    RequestHead head;
    head.method = c.method;
    head.target = c.target;
    head.http_major = c.major;
    head.http_minor = c.minor;
    for (const auto& [name, value] : c.fields) {
      head.headers.add(name, value);
    }
    std::optional<HeadProblem> problem = checkRequestHead(head, c.version_written);
    EXPECT_EQ(problem ? problem->status : 0, c.status) << (problem ? problem->details : "");
    if (problem) {
      EXPECT_EQ(problem->reason, reasonPhrase(problem->status));
      EXPECT_FALSE(problem->details.empty());
    }
  }
}

TEST(HeaderList, LookupIsCaseInsensitiveAndKeepsOrder) {
  HeaderList h;
  h.add("Host", "a");
  h.add("X-Multi", "1");
  h.add("x-multi", "  2 \t");
  ASSERT_NE(h.find("HOST"), nullptr);
  EXPECT_EQ(*h.find("host"), "a");
  EXPECT_EQ(*h.find("X-MULTI"), "1");
  EXPECT_EQ(h.count("x-Multi"), 2u);
  EXPECT_EQ(h.fields()[2].value, "2");  // trimmed
  EXPECT_EQ(h.find("Missing"), nullptr);
  EXPECT_EQ(h.remove("X-MULTI"), 2u);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.remove("X-MULTI"), 0u);
}

TEST(HeaderList, HasToken) {
  HeaderList h;
  h.add("Connection", "keep-alive, Upgrade");
  h.add("Connection", " ,close ,");
  struct Case {
    std::string name, token;
    bool want;
  };
  const std::vector<Case> cases = {
      {"Connection", "upgrade", true},    {"connection", "CLOSE", true},
      {"Connection", "keep-alive", true}, {"Connection", "keep", false},
      {"Connection", "", false},          {"Other", "close", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + "/" + c.token);
    EXPECT_EQ(h.hasToken(c.name, c.token), c.want);
  }
}

TEST(HeaderList, AppendToLast) {
  HeaderList h;
  h.appendToLast("Via", "1.1 a");
  h.add("Via", "1.0 b");
  h.appendToLast("via", "1.1 c");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.fields()[0].value, "1.1 a");
  EXPECT_EQ(h.fields()[1].value, "1.0 b, 1.1 c");
}

struct StripCase {
  std::string name;
  std::vector<HeaderField> in;
  std::vector<std::string> kept;  // names, in order
};

TEST(StripHopByHop, Table) {
  const std::vector<StripCase> cases = {
      {"fixed set",
       {{"Host", "h"},
        {"Connection", "keep-alive"},
        {"Proxy-Connection", "keep-alive"},
        {"Keep-Alive", "timeout=5"},
        {"Proxy-Authorization", "Basic eA=="},
        {"Proxy-Authenticate", "Basic"},
        {"TE", "trailers"},
        {"Trailer", "X-T"},
        {"Transfer-Encoding", "chunked"},
        {"Upgrade", "websocket"},
        {"Accept", "*/*"}},
       {"Host", "Accept"}},
      {"names listed in Connection",
       {{"Connection", "X-A, x-b"}, {"X-A", "1"}, {"X-B", "2"}, {"X-C", "3"}},
       {"X-C"}},
      {"several Connection fields",
       {{"Connection", "X-A"}, {"connection", "X-B"}, {"X-A", "1"}, {"X-B", "2"}},
       {}},
      {"end-to-end fields stay",
       {{"Authorization", "Bearer t"}, {"Cookie", "c"}, {"Via", "1.0 x"}, {"Content-Length", "3"}},
       {"Authorization", "Cookie", "Via", "Content-Length"}},
      {"case-insensitive", {{"PROXY-AUTHORIZATION", "x"}, {"te", "x"}, {"Date", "d"}}, {"Date"}},
  };
  for (const StripCase& c : cases) {
    SCOPED_TRACE(c.name);
    HeaderList h;
    for (const HeaderField& f : c.in) {
      h.add(f.name, f.value);
    }
    stripHopByHop(&h);
    std::vector<std::string> names;
    for (const HeaderField& f : h.fields()) {
      names.push_back(f.name);
    }
    EXPECT_EQ(names, c.kept);
  }
}

TEST(Via, TokenAndLoopCheck) {
  EXPECT_EQ(viaToken("127.0.0.1:3128"), "switchyard (127.0.0.1:3128)");
  const std::string token = viaToken("127.0.0.1:3128");
  struct Case {
    std::vector<std::string> values;
    bool loop;
  };
  const std::vector<Case> cases = {
      {{"1.1 switchyard (127.0.0.1:3128)"}, true},
      {{"HTTP/1.1 switchyard (127.0.0.1:3128)"}, true},
      {{"1.0 other, 1.1   switchyard\t(127.0.0.1:3128) "}, true},
      {{"1.0 other", "1.1 SWITCHYARD (127.0.0.1:3128)"}, true},
      {{"1.1 switchyard (127.0.0.1:3129)"}, false},
      {{"1.1 switchyard"}, false},
      {{"1.1 other (127.0.0.1:3128)"}, false},
      {{"switchyard (127.0.0.1:3128)"}, false},  // no received-protocol: not our entry
      {{}, false},
  };
  for (const Case& c : cases) {
    HeaderList h;
    std::string trace;
    for (const std::string& v : c.values) {
      h.add("Via", v);
      trace += v + "|";
    }
    SCOPED_TRACE(trace);
    EXPECT_EQ(viaHasToken(h, token), c.loop);
  }
}

TEST(Via, AppendJoinsTheLastField) {
  HeaderList h;
  appendVia(&h, 1, 1, "switchyard (a:1)");
  EXPECT_EQ(*h.find("Via"), "1.1 switchyard (a:1)");
  appendVia(&h, 1, 0, "switchyard (b:2)");
  EXPECT_EQ(h.count("Via"), 1u);
  EXPECT_EQ(*h.find("Via"), "1.1 switchyard (a:1), 1.0 switchyard (b:2)");
}

TEST(Serialize, RequestAndResponseHeads) {
  HeaderList h;
  h.add("Host", "example.com");
  h.add("X-A", "1");
  EXPECT_EQ(serializeRequestHead("GET", "/p?q", h),
            "GET /p?q HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n");
  EXPECT_EQ(serializeResponseHead(404, "Not Found", HeaderList()),
            "HTTP/1.1 404 Not Found\r\n\r\n");
  EXPECT_EQ(serializeResponseHead(200, "OK", h),
            "HTTP/1.1 200 OK\r\nHost: example.com\r\nX-A: 1\r\n\r\n");
}

TEST(Base64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
      {"user:pass", "dXNlcjpwYXNz"},
      {std::string("\xff\xfe\x00", 3), "//4A"},
  };
  for (const auto& [in, want] : cases) {
    SCOPED_TRACE(in);
    EXPECT_EQ(base64Encode(in), want);
  }
}

TEST(Tokens, IsTokenAndFieldValue) {
  for (const char* ok : {"Host", "X-Custom_1", "!#$%&'*+-.^_`|~", "a"}) {
    SCOPED_TRACE(ok);
    EXPECT_TRUE(isToken(ok));
  }
  for (const char* bad : {"", "Host ", " Host", "A:B", "A\"B", "A(B", "A/B", "\x7f"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(isToken(bad));
  }
  EXPECT_TRUE(isFieldValue("text with spaces\tand tab, \xc3\xa9"));
  EXPECT_TRUE(isFieldValue(""));
  EXPECT_FALSE(isFieldValue("a\rb"));
  EXPECT_FALSE(isFieldValue("a\nb"));
  EXPECT_FALSE(isFieldValue(std::string("a\0b", 3)));
  EXPECT_FALSE(isFieldValue("a\x7f"));
}

TEST(ReasonPhrase, KnownAndUnknown) {
  EXPECT_STREQ(reasonPhrase(200), "OK");
  EXPECT_STREQ(reasonPhrase(407), "Proxy Authentication Required");
  EXPECT_STREQ(reasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(reasonPhrase(508), "Loop Detected");
  EXPECT_STREQ(reasonPhrase(299), "Unknown");
}

}  // namespace
}  // namespace switchyard
