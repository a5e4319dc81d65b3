// GOSUMDB parsing (SEMANTICS.md §d), including verifier key checking.
#include "rules/gosumdb.h"

#include <gtest/gtest.h>

#include <string>

namespace switchyard::rules {
namespace {

// Verifier keys for test databases, made independently of this code
// (Python hashlib + base64): name "+" first 4 bytes of SHA-256(name "\n"
// key) in hex "+" base64(0x01 || 32-byte key).
constexpr const char* kExampleDbKey =
    "sumdb.example.com/db+3309895e+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
constexpr const char* kExamplePortKey =
    "sumdb.example.com:8443+4aebe34b+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
constexpr const char* kAlgorithm2Key =
    "sumdb.example.com+733a80e6+AgABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
constexpr const char* kShortKey =
    "sumdb.example.com+a1c3f8db+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4=";
constexpr const char* kTrailingSlashKey =
    "sumdb.example.com/+321c3913+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
constexpr const char* kUserKey =
    "user@sumdb.example.com+c45396b0+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
constexpr const char* kQueryKey =
    "sumdb.example.com?x+1e7be918+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
constexpr const char* kEscapedSlashKey =
    "sumdb.example.com/a%2Fb+d2ad50be+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
constexpr const char* kEscapedSpaceKey =
    "sumdb.example.com/a%20b+badc094c+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";

struct Case {
  std::string value;
  bool ok;
  bool off;
  std::string name;  // when ok; else a substring of the error
  std::string url;   // "" = no URL
};

TEST(ParseGosumdb, Table) {
  const std::string golang_key(kSumGolangOrgKey);
  const Case cases[] = {
      {"", true, false, "sum.golang.org", ""},
      {"sum.golang.org", true, false, "sum.golang.org", ""},
      {"off", true, true, "", ""},
      {"sum.golang.google.cn", true, false, "sum.golang.org", "https://sum.golang.google.cn"},
      {golang_key, true, false, "sum.golang.org", ""},
      {"sum.golang.org https://sum.example.com/db", true, false, "sum.golang.org",
       "https://sum.example.com/db"},
      {"  sum.golang.org\thttps://sum.example.com  ", true, false, "sum.golang.org",
       "https://sum.example.com"},
      {kExampleDbKey, true, false, "sumdb.example.com/db", ""},
      {std::string(kExamplePortKey) + " http://127.0.0.1:9000", true, false,
       "sumdb.example.com:8443", "http://127.0.0.1:9000"},
      {std::string(kExampleDbKey) + " file:///srv/sumdb", true, false, "sumdb.example.com/db",
       "file:///srv/sumdb"},
      {kEscapedSpaceKey, true, false, "sumdb.example.com/a%20b", ""},
      {"example.com", false, false, "invalid GOSUMDB: malformed verifier id", ""},
      {"a b c", false, false, "invalid GOSUMDB: too many fields", ""},
      {"   ", false, false, "missing GOSUMDB", ""},
      {" off", false, false, "invalid GOSUMDB: malformed verifier id", ""},
      {"OFF", false, false, "invalid GOSUMDB: malformed verifier id", ""},
      {"sum.golang.google.cn https://x.example", false, false, "malformed verifier id", ""},
      {"sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", false, false,
       "invalid GOSUMDB: invalid verifier hash", ""},
      {"sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn", false, false,
       "invalid GOSUMDB: malformed verifier id", ""},  // base64 length not a multiple of 4
      {"sum.golang.org+33de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", false, false,
       "malformed verifier id", ""},  // 7 hex digits
      {"sum.golang.org+033de0ag+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", false, false,
       "malformed verifier id", ""},
      {"+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", false, false,
       "malformed verifier id", ""},  // empty name
      {"sum.golang.org+033de0ae", false, false, "malformed verifier id", ""},
      {kAlgorithm2Key, false, false, "invalid GOSUMDB: unknown verifier algorithm", ""},
      {kShortKey, false, false, "invalid GOSUMDB: malformed verifier id", ""},
      {kTrailingSlashKey, false, false, "invalid sumdb name (must be host[/path])", ""},
      {kUserKey, false, false, "invalid sumdb name (must be host[/path])", ""},
      {kQueryKey, false, false, "invalid sumdb name (must be host[/path])", ""},
      {kEscapedSlashKey, false, false, "invalid sumdb name (must be host[/path])", ""},
      {"sum.golang.org sum.example.com", false, false, "invalid GOSUMDB URL", ""},
      {"sum.golang.org ftp://sum.example.com", false, false, "invalid GOSUMDB URL", ""},
      {"sum.golang.org https://sum.example.com:x", false, false,
       "invalid GOSUMDB URL: parse \"https://sum.example.com:x\": invalid port", ""},
      {"sum.golang.org https://u:pw@", false, false, "invalid GOSUMDB URL", ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("GOSUMDB=\"" + c.value + "\"");
    GosumdbConfig cfg;
    std::string error;
    bool ok = parseGosumdb(c.value, &cfg, &error);
    ASSERT_EQ(ok, c.ok) << error;
    if (ok) {
      EXPECT_EQ(cfg.off, c.off);
      EXPECT_EQ(cfg.name, c.name);
      EXPECT_EQ(cfg.url.value_or(""), c.url);
      EXPECT_EQ(cfg.url.has_value(), !c.url.empty());
      if (!c.off) {
        EXPECT_EQ(cfg.key.substr(0, cfg.name.size() + 1), cfg.name + "+");
      }
    } else {
      EXPECT_NE(error.find(c.name), std::string::npos) << error;
    }
    ++n;
  }
  EXPECT_GE(n, 12);
}

TEST(ParseGosumdb, KnownNameUsesBuiltInKey) {
  GosumdbConfig cfg;
  std::string error;
  ASSERT_TRUE(parseGosumdb("sum.golang.org", &cfg, &error));
  EXPECT_EQ(cfg.key, kSumGolangOrgKey);
  ASSERT_TRUE(parseGosumdb("sum.golang.google.cn", &cfg, &error));
  EXPECT_EQ(cfg.key, kSumGolangOrgKey);
}

TEST(ParseGosumdb, UrlErrorsRedactPasswords) {
  GosumdbConfig cfg;
  std::string error;
  ASSERT_FALSE(parseGosumdb("sum.golang.org ftp://u:secret@h", &cfg, &error));
  EXPECT_EQ(error.find("secret"), std::string::npos) << error;
}

TEST(Sha256, FipsVectors) {
  auto hex = [](std::string_view data) {
    unsigned char d[32];
    detail::sha256(data, d);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : d) {
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    }
    return out;
  };
  EXPECT_EQ(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(Base64, StdEncoding) {
  std::string out;
  EXPECT_TRUE(detail::decodeStdBase64("aGVsbG8=", &out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(detail::decodeStdBase64("aGk=\r\n", &out));
  EXPECT_EQ(out, "hi");
  EXPECT_TRUE(detail::decodeStdBase64("aA==", &out));
  EXPECT_EQ(out, "h");
  EXPECT_TRUE(detail::decodeStdBase64("", &out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(detail::decodeStdBase64("aGk", &out));
  EXPECT_FALSE(detail::decodeStdBase64("a===", &out));
  EXPECT_FALSE(detail::decodeStdBase64("aG=k", &out));
  EXPECT_FALSE(detail::decodeStdBase64("aA==aA==", &out));
  EXPECT_FALSE(detail::decodeStdBase64("aG-k", &out));
}

}  // namespace
}  // namespace switchyard::rules
