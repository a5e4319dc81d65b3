// RequestHeadReader: each head fed whole and split at every byte gives the
// same answer, the same head and the same number of bytes consumed.
#include "daemon/request_head_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchyard {
namespace {

using Kind = RequestHeadReader::Result::Kind;

struct Outcome {
  Kind kind = Kind::kNeedMore;
  int status = 0;
  size_t consumed = 0;  // of the whole input, for kHead
  std::string method, target;
  int major = 0, minor = 0;
  size_t fields = 0;
  bool keep_alive = false;
  bool operator==(const Outcome&) const = default;
};

Outcome readInPieces(const std::string& input, size_t cut, size_t max_bytes) {
  RequestHeadReader reader(max_bytes);
  Outcome out;
  size_t fed = 0;
  while (fed < input.size()) {
    size_t n = cut == 0 ? input.size() - fed : std::min(cut, input.size() - fed);
    RequestHeadReader::Result r = reader.feed(input.data() + fed, n);
    if (r.kind == Kind::kError) {
      out.kind = Kind::kError;
      out.status = r.status;
      return out;
    }
    if (r.kind == Kind::kHead) {
      out.kind = Kind::kHead;
      out.consumed = fed + r.consumed;
      out.method = reader.head().method;
      out.target = reader.head().target;
      out.major = reader.head().http_major;
      out.minor = reader.head().http_minor;
      out.fields = reader.head().headers.size();
      out.keep_alive = reader.keepAlive();
      EXPECT_EQ(reader.headBytes(), out.consumed);
      return out;
    }
    fed += n;
  }
  return out;
}

struct Case {
  const char* name;
  std::string input;
  Kind kind;
  int status;  // for kError
};

std::string fields(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += "X" + std::to_string(i) + ": 1\r\n";
  }
  return s;
}

TEST(RequestHeadReader, SameAnswerAtEverySplit) {
  const std::vector<Case> cases = {
      {"get", "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kHead, 0},
      {"head-then-pipelined", "HEAD /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
       Kind::kHead, 0},
      {"http10-close", "GET / HTTP/1.0\r\nHost: h\r\n\r\n", Kind::kHead, 0},
      {"http11-close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", Kind::kHead, 0},
      {"leading-crlf", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kHead, 0},
      {"obs-fold-read-as-space", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", Kind::kHead, 0},
      {"incomplete", "GET / HTTP/1.1\r\nHost: h\r\n", Kind::kNeedMore, 0},
      {"bare-lf", "GET / HTTP/1.1\nHost: h\n\n", Kind::kError, 400},
      {"bare-cr-in-value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", Kind::kError, 400},
      {"nul-in-value", std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27), Kind::kError, 400},
      {"space-before-colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", Kind::kError, 400},
      {"bad-version", "GET / HTTP/1.x\r\n\r\n", Kind::kError, 400},
      {"tab-after-method", "GET\t/ HTTP/1.1\r\n\r\n", Kind::kError, 400},
      {"two-content-lengths", "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       Kind::kError, 400},
      {"te-and-cl", "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
       Kind::kError, 400},
      {"256-fields", "GET / HTTP/1.1\r\n" + fields(256) + "\r\n", Kind::kHead, 0},
      {"257-fields", "GET / HTTP/1.1\r\n" + fields(257) + "\r\n", Kind::kError, 431},
      {"head-at-limit", "GET / HTTP/1.1\r\nX: " + std::string(4096 - 23, 'a') + "\r\n\r\n",
       Kind::kHead, 0},
      {"head-over-limit", "GET / HTTP/1.1\r\nX: " + std::string(4096 - 22, 'a') + "\r\n\r\n",
       Kind::kError, 431},
      {"unterminated-over-limit", "GET / HTTP/1.1\r\nX: " + std::string(5000, 'a'), Kind::kError,
       431},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Outcome whole = readInPieces(c.input, 0, 4096);
    EXPECT_EQ(whole.kind, c.kind);
    if (c.kind == Kind::kError) {
      EXPECT_EQ(whole.status, c.status);
    }
    for (size_t cut = 1; cut < c.input.size(); cut = cut < 64 ? cut + 1 : cut * 2) {
      Outcome split = readInPieces(c.input, cut, 4096);
      EXPECT_TRUE(split == whole) << "differs when fed " << cut << " bytes at a time";
    }
  }
}

TEST(RequestHeadReader, HeadFieldsAndKeepAlive) {
  Outcome a = readInPieces("HEAD /a?b HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\nrest", 0, 4096);
  EXPECT_EQ(a.method, "HEAD");
  EXPECT_EQ(a.target, "/a?b");
  EXPECT_EQ(a.fields, 2u);
  EXPECT_TRUE(a.keep_alive);
  EXPECT_EQ(a.consumed, std::string("HEAD /a?b HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n").size());
  EXPECT_FALSE(readInPieces("GET / HTTP/1.0\r\n\r\n", 0, 4096).keep_alive);
  EXPECT_TRUE(readInPieces("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, 4096).keep_alive);
  EXPECT_FALSE(readInPieces("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, 4096).keep_alive);
  Outcome v2 = readInPieces("GET / HTTP/2.0\r\n\r\n", 0, 4096);
  EXPECT_EQ(v2.kind, Kind::kHead);  // the owner answers 505
  EXPECT_EQ(v2.major, 2);
}

TEST(RequestHeadReader, ResetReadsTheNextHead) {
  RequestHeadReader reader(4096);
  std::string two = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
  RequestHeadReader::Result r = reader.feed(two.data(), two.size());
  ASSERT_EQ(r.kind, Kind::kHead);
  EXPECT_EQ(reader.head().target, "/1");
  reader.reset();
  EXPECT_FALSE(reader.started());
  r = reader.feed(two.data() + r.consumed, two.size() - r.consumed);
  ASSERT_EQ(r.kind, Kind::kHead);
  EXPECT_EQ(reader.head().target, "/2");
}

}  // namespace
}  // namespace switchyard
