// Proxy authentication: base64, user names, Basic credentials, the users
// file (scrypt and PBKDF2 lines, published test vectors, every kind of bad
// line with its line number), verification with its timing cover and its
// cache (observed through counters, never through time), AuthJob on a real
// libuv loop, and the 407 / 401 answers.
#include "daemon/proxy_auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace switchyard {
namespace {

// RFC 7914 section 12, third vector: scrypt("pleaseletmein", "SodiumChloride",
// N=16384, r=8, p=1, dkLen=64).
constexpr const char* kRfc7914Line =
    "rfc:scrypt$16384$8$1$U29kaXVtQ2hsb3JpZGU=$cCO9yzr9c0hGHAbNgf046/2o+7qQT44+qbVD9lRdofLVQylVYT8P"
    "z2LUlwUkKpr55h6F3A1lHkDfzwF7RVdYhw==";
constexpr const char* kRfc7914Password = "pleaseletmein";

// The widely published PBKDF2-HMAC-SHA256 vector: P="passwordPASSWORDpassword",
// S="saltSALTsaltSALTsaltSALTsaltSALTsalt", c=4096, dkLen=40.
constexpr const char* kPbkdf2Line =
    "pb:pbkdf2-sha256$4096$c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0$"
    "NIyJ28vTKy8y2BS4EW6EzysX"
    "NH68GAAYHE4qH7jdU+HGNVGMfaxH6Q==";
constexpr const char* kPbkdf2Password = "passwordPASSWORDpassword";

// The cheapest scrypt a users file accepts, to keep the tests quick.
const ScryptParams kFastScrypt{uint64_t{1} << 14, 8, 1};

std::string fastHash(const std::string& password) {
  std::string error;
  std::string hash = hashPassword(password, kFastScrypt, &error);
  EXPECT_FALSE(hash.empty()) << error;
  return hash;
}

// A PBKDF2 line made with OpenSSL directly (1000 iterations: cheap).
std::string pbkdf2Line(const std::string& user, const std::string& password,
                       const std::string& salt) {
  unsigned char key[32];
  EXPECT_EQ(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                              reinterpret_cast<const unsigned char*>(salt.data()),
                              static_cast<int>(salt.size()), 1000, EVP_sha256(), sizeof(key), key),
            1);
  return user + ":pbkdf2-sha256$1000$" + encodeBase64(salt) + "$" +
         encodeBase64(std::string(reinterpret_cast<char*>(key), sizeof(key)));
}

UserDbPtr parseOk(const std::string& text, UserDb::Clock clock = {}) {
  std::vector<std::string> errors;
  UserDbPtr db = UserDb::parse(text, "users", &errors, std::move(clock));
  EXPECT_NE(db, nullptr);
  for (const std::string& e : errors) {
    ADD_FAILURE() << e;
  }
  return db;
}

std::string joinErrors(const std::vector<std::string>& errors) {
  std::string out;
  for (const std::string& e : errors) {
    out += e + "\n";
  }
  return out;
}

// ---------------------------------------------------------------------------
// Base64.

TEST(ProxyAuthBase64, RoundTripsEveryLength) {
  std::string data;
  for (int i = 0; i < 70; ++i) {
    SCOPED_TRACE(i);
    std::string encoded = encodeBase64(data);
    EXPECT_EQ(encoded.size() % 4, 0u);
    std::string decoded;
    ASSERT_TRUE(decodeBase64(encoded, false, &decoded));
    EXPECT_EQ(decoded, data);
    // Without padding, when allowed.
    std::string bare = encoded.substr(0, encoded.find('='));
    ASSERT_TRUE(decodeBase64(bare, true, &decoded));
    EXPECT_EQ(decoded, data);
    EXPECT_EQ(decodeBase64(bare, false, &decoded), bare.size() == encoded.size());
    data.push_back(static_cast<char>(i * 37 + 200));
  }
}

TEST(ProxyAuthBase64, Table) {
  struct Case {
    const char* text;
    bool allow_unpadded;
    bool ok;
    const char* decoded;
  };
  const Case cases[] = {
      {"", false, true, ""},
      {"QQ==", false, true, "A"},
      {"QUI=", false, true, "AB"},
      {"QUJD", false, true, "ABC"},
      {"QQ", true, true, "A"},
      {"QUI", true, true, "AB"},
      {"QQ", false, false, ""},
      {"QUI", false, false, ""},
      {"QQ=", true, false, ""},      // padding that is neither full nor absent
      {"QQ===", true, false, ""},    // three '='
      {"Q", true, false, ""},        // one leftover character
      {"QUJDR", true, false, ""},    // five characters
      {"QR==", false, false, ""},    // non-zero trailing bits
      {"QUJ=", false, false, ""},    // non-zero trailing bits
      {"Q=Q=", false, false, ""},    // '=' inside
      {"QU JD", false, false, ""},   // space inside
      {" QUJD", false, false, ""},   // EVP_DecodeBlock would skip it; we do not
      {"QUJD\n", false, false, ""},  // newline
      {"QU-D", false, false, ""},    // URL-safe alphabet is not ours
      {"QU_D", false, false, ""},
      {"QUJD====", false, false, ""},  // padding after a full group
      {"+/+/", false, true, "\xfb\xff\xbf"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    std::string out = "junk";
    EXPECT_EQ(decodeBase64(c.text, c.allow_unpadded, &out), c.ok);
    if (c.ok) {
      EXPECT_EQ(out, c.decoded);
    }
  }
}

// ---------------------------------------------------------------------------
// User names.

TEST(ProxyAuthUserName, Table) {
  struct Case {
    std::string user;
    bool ok;
    const char* why;  // a word of the reason
  };
  const Case cases[] = {
      {"alice", true, ""},
      {"Alice.Smith@example.com", true, ""},
      {"b\xc3\xa9"
       "atrice",
       true, ""},  // UTF-8
      {"with space", true, ""},
      {"a#b", true, ""},
      {std::string(kMaxUserNameBytes, 'u'), true, ""},
      {"", false, "empty"},
      {std::string(kMaxUserNameBytes + 1, 'u'), false, "longer"},
      {"a:b", false, "':'"},
      {":", false, "':'"},
      {"tab\there", false, "control"},
      {"nl\n", false, "control"},
      {std::string("nul\0x", 5), false, "control"},
      {"del\x7f", false, "control"},
      {"#comment", false, "'#'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.user);
    std::string why;
    EXPECT_EQ(validUserName(c.user, &why), c.ok);
    EXPECT_NE(why.find(c.why), std::string::npos) << why;
  }
}

// ---------------------------------------------------------------------------
// Basic credentials.

TEST(ProxyAuthBasic, Table) {
  struct Case {
    std::string value;
    bool ok;
    std::string user;
    std::string password;
  };
  const std::string long_user = std::string(kMaxUserNameBytes, 'u');
  const std::string long_password = std::string(kMaxPasswordBytes, 'p');
  const Case cases[] = {
      {"Basic YWxpY2U6c2VjcmV0", true, "alice", "secret"},
      {"basic YWxpY2U6c2VjcmV0", true, "alice", "secret"},
      {"BASIC YWxpY2U6c2VjcmV0", true, "alice", "secret"},
      {"bAsIc YWxpY2U6c2VjcmV0", true, "alice", "secret"},
      {"  Basic \t YWxpY2U6c2VjcmV0 \t", true, "alice", "secret"},
      {"Basic\tYWxpY2U6c2VjcmV0", true, "alice", "secret"},
      // A password may hold ':'; the user ends at the first one.
      {"Basic YWxpY2U6cGE6c3M6d29yZA==", true, "alice", "pa:ss:word"},
      {"Basic YWxpY2U6cGE6c3M6d29yZA", true, "alice", "pa:ss:word"},  // unpadded
      {"Basic YWJjOmQ=", true, "abc", "d"},
      {"Basic YWJjOmQ", true, "abc", "d"},
      {"Basic YWI6Yw==", true, "ab", "c"},
      {"Basic YWI6Yw", true, "ab", "c"},
      {"Basic YTo=", true, "a", ""},  // an empty password parses; it never verifies
      {"Basic " + encodeBase64("b\xc3\xa9"
                               "a:p\xc3\xa4ss"),
       true,
       "b\xc3\xa9"
       "a",
       "p\xc3\xa4ss"},
      {"Basic " + encodeBase64(long_user + ":" + long_password), true, long_user, long_password},
      // Refused.
      {"", false, "", ""},
      {"Basic", false, "", ""},
      {"Basic ", false, "", ""},
      {"Basic    ", false, "", ""},
      {"BasicYWxpY2U6c2VjcmV0", false, "", ""},
      {"Bearer YWxpY2U6c2VjcmV0", false, "", ""},
      {"Digest username=\"alice\"", false, "", ""},
      {"Basics YWxpY2U6c2VjcmV0", false, "", ""},
      {"Basic " + encodeBase64("alicesecret"), false, "", ""},  // no ':'
      {"Basic " + encodeBase64(":secret"), false, "", ""},      // empty user
      {"Basic YWxpY2U6c2VjcmV0=", false, "", ""},               // bad padding
      {"Basic YWxpY2U6c2VjcmV0==", false, "", ""},
      {"Basic YWxpY2U6c2Vjc!V0", false, "", ""},   // not base64
      {"Basic YWxp Y2U6c2VjcmV0", false, "", ""},  // space inside the token
      {"Basic YWxpY2U6c2VjcmV0 extra", false, "", ""},
      {"Basic " + encodeBase64("al\tice:secret"), false, "", ""},  // control in user
      {"Basic " + encodeBase64("alice:sec\nret"), false, "", ""},  // control in password
      {"Basic " + encodeBase64(std::string("alice:a\0b", 9)), false, "", ""},
      {"Basic " + encodeBase64(long_user + "u:p"), false, "", ""},
      {"Basic " + encodeBase64("u:" + long_password + "p"), false, "", ""},
      {"Basic " + std::string(5000, 'A'), false, "", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    std::string user = "untouched";
    std::string password = "untouched";
    ASSERT_EQ(parseBasicCredentials(c.value, &user, &password), c.ok);
    if (c.ok) {
      EXPECT_EQ(user, c.user);
      EXPECT_EQ(password, c.password);
    } else {
      EXPECT_EQ(user, "untouched");
      EXPECT_EQ(password, "untouched");
    }
  }
}

// ---------------------------------------------------------------------------
// Hashing and verification.

TEST(ProxyAuthHash, DefaultFormatAndFreshSalt) {
  std::string error;
  std::string a = hashPassword("secret", &error);
  std::string b = hashPassword("secret", &error);
  const std::regex format(R"(scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=)");
  EXPECT_TRUE(std::regex_match(a, format)) << a;
  EXPECT_TRUE(std::regex_match(b, format)) << b;
  EXPECT_NE(a, b);  // a new salt each time
  UserDbPtr db = parseOk("alice:" + a + "\n");
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->verify("alice", "secret"));
}

TEST(ProxyAuthHash, RoundTripWrongPasswordUnknownUser) {
  UserDbPtr db =
      parseOk("alice:" + fastHash("correct horse") + "\nbob:" + fastHash("battery") + "\n");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->size(), 2u);
  EXPECT_TRUE(db->verify("alice", "correct horse"));
  EXPECT_TRUE(db->verify("bob", "battery"));
  EXPECT_FALSE(db->verify("alice", "battery"));         // another user's password
  EXPECT_FALSE(db->verify("alice", "correct horse "));  // one byte more
  EXPECT_FALSE(db->verify("alice", "correct hors"));
  EXPECT_FALSE(db->verify("alice", ""));
  EXPECT_FALSE(db->verify("Alice", "correct horse"));  // names are case-sensitive
  UserDb::Stats s = db->statsForTest();
  EXPECT_EQ(s.kdf_runs, 6u);  // "Alice" is unknown: the dummy ran
  EXPECT_EQ(s.dummy_runs, 1u);
  EXPECT_EQ(s.cache_hits, 0u);
  EXPECT_EQ(s.cached, 2u);
}

TEST(ProxyAuthHash, UnknownUserPaysTheDummyKdf) {
  UserDbPtr db = parseOk("alice:" + fastHash("secret") + "\n");
  ASSERT_NE(db, nullptr);
  for (const char* name : {"mallory", "", "alice ", "ALICE", "a:b"}) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(db->verify(name, "secret"));
  }
  UserDb::Stats s = db->statsForTest();
  EXPECT_EQ(s.dummy_runs, 5u);
  EXPECT_EQ(s.kdf_runs, 0u);
  EXPECT_EQ(s.cached, 0u);
  // The cache path is not a shortcut around the cover either.
  EXPECT_FALSE(db->verifyCached("mallory", "secret"));
}

TEST(ProxyAuthHash, EmptyDatabaseStillPaysTheDummyKdf) {
  UserDbPtr db = parseOk("# nobody yet\n\n");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->size(), 0u);
  EXPECT_FALSE(db->verify("alice", "secret"));
  EXPECT_EQ(db->statsForTest().dummy_runs, 1u);
}

TEST(ProxyAuthHash, Rfc7914ScryptVector) {
  UserDbPtr db = parseOk(std::string(kRfc7914Line) + "\n");
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->verify("rfc", kRfc7914Password));
  EXPECT_FALSE(db->verify("rfc", "pleaseletmeout"));
}

TEST(ProxyAuthHash, Pbkdf2Sha256Vector) {
  UserDbPtr db = parseOk(std::string(kPbkdf2Line) + "\n" + pbkdf2Line("carol", "pw", "12345678"));
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->size(), 2u);
  EXPECT_TRUE(db->verify("pb", kPbkdf2Password));
  EXPECT_FALSE(db->verify("pb", "passwordPASSWORDpasswor"));
  EXPECT_TRUE(db->verify("carol", "pw"));
  EXPECT_FALSE(db->verify("carol", "pW"));
}

TEST(ProxyAuthHash, OverlongPasswordNeverVerifies) {
  std::string password(kMaxPasswordBytes + 1, 'x');
  UserDbPtr db = parseOk(pbkdf2Line("dave", password, "saltsalt"));
  ASSERT_NE(db, nullptr);
  EXPECT_FALSE(db->verify("dave", password));
  EXPECT_EQ(db->statsForTest().kdf_runs, 0u);
}

// ---------------------------------------------------------------------------
// The users file.

TEST(ProxyAuthFile, CommentsBlankLinesAndNoFinalNewline) {
  std::string text = "# switchyard users\n\n   \n" + pbkdf2Line("a", "1", "saltsalt") +
                     "\n#b:commented out\n" + pbkdf2Line("b", "2", "saltsalt");
  UserDbPtr db = parseOk(text);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->size(), 2u);
  EXPECT_TRUE(db->verify("b", "2"));
}

TEST(ProxyAuthFile, BadLinesNameTheirLine) {
  const std::string salt = encodeBase64("0123456789abcdef");
  const std::string key = encodeBase64(std::string(32, 'k'));
  const std::string tail = "$" + salt + "$" + key;
  struct Case {
    std::string line;
    const char* message;
  };
  const Case cases[] = {
      {"alice", "expected user:hash, found no ':'"},
      {":scrypt$16384$8$1" + tail, "the user name is empty"},
      {"#x", ""},  // a comment: no error (checked below)
      {"al\tice:scrypt$16384$8$1" + tail, "control character"},
      {"alice:", "unknown hash scheme"},
      {"alice:secret", "unknown hash scheme"},
      {"alice:md5$abc$def", "unknown hash scheme"},
      {"alice:SCRYPT$16384$8$1" + tail, "unknown hash scheme"},
      {"alice:scrypt$16384$8$1$" + salt, "expected scrypt$N$r$p$salt$key"},
      {"alice:scrypt$16384$8$1" + tail + "$x", "expected scrypt$N$r$p$salt$key"},
      {"alice:scrypt$16383$8$1" + tail, "N must be a power of two from 16384 to 1048576"},
      {"alice:scrypt$8192$8$1" + tail, "N must be a power of two"},
      {"alice:scrypt$2097152$8$1" + tail, "N must be a power of two"},
      {"alice:scrypt$016384$8$1" + tail, "N must be a power of two"},
      {"alice:scrypt$+16384$8$1" + tail, "N must be a power of two"},
      {"alice:scrypt$$8$1" + tail, "N must be a power of two"},
      {"alice:scrypt$16384$0$1" + tail, "r must be a positive integer"},
      {"alice:scrypt$16384$x$1" + tail, "r must be a positive integer"},
      {"alice:scrypt$16384$8$0" + tail, "p must be a positive integer"},
      {"alice:scrypt$16384$8$-1" + tail, "p must be a positive integer"},
      {"alice:scrypt$1048576$8$1" + tail, "cost more than"},
      {"alice:scrypt$16384$8$99999999999999999999" + tail, "p must be a positive integer"},
      {"alice:scrypt$16384$8$1$" + salt + "$" + key.substr(0, 43), "key is not valid base64"},
      {"alice:scrypt$16384$8$1$!!!!$" + key, "salt is not valid base64"},
      {"alice:scrypt$16384$8$1$" + encodeBase64("short") + "$" + key,
       "salt must be 8 to 64 bytes, not 5"},
      {"alice:scrypt$16384$8$1$" + salt + "$" + encodeBase64("tiny"),
       "key must be 16 to 64 bytes, not 4"},
      {"alice:scrypt$16384$8$1$" + salt + "$" + encodeBase64(std::string(65, 'k')),
       "key must be 16 to 64 bytes, not 65"},
      {"alice:scrypt$16384$8$1" + tail + " ", "key is not valid base64"},
      {"alice:scrypt$16384$8$1" + tail + "\r", "carriage return"},
      {"alice:pbkdf2-sha256$999" + tail, "iterations must be from 1000 to 10000000"},
      {"alice:pbkdf2-sha256$10000001" + tail, "iterations must be from 1000"},
      {"alice:pbkdf2-sha256$1000$" + salt, "expected pbkdf2-sha256$iterations$salt$key"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    // The bad line is the third of a file whose other lines are fine.
    std::string text = pbkdf2Line("first", "x", "saltsalt") + "\n# comment\n" + c.line + "\n" +
                       pbkdf2Line("last", "y", "saltsalt") + "\n";
    std::vector<std::string> errors;
    UserDbPtr db = UserDb::parse(text, "/etc/switchyard/users", &errors);
    if (c.message[0] == '\0') {
      EXPECT_NE(db, nullptr) << joinErrors(errors);
      continue;
    }
    EXPECT_EQ(db, nullptr);
    ASSERT_EQ(errors.size(), 1u) << joinErrors(errors);
    EXPECT_EQ(errors[0].rfind("/etc/switchyard/users:3: ", 0), 0u) << errors[0];
    EXPECT_NE(errors[0].find(c.message), std::string::npos) << errors[0];
  }
}

TEST(ProxyAuthFile, PlainPasswordsAreNotEchoedInErrors) {
  std::vector<std::string> errors;
  EXPECT_EQ(UserDb::parse("alice:hunter2\nhunter3\n", "users", &errors), nullptr);
  ASSERT_EQ(errors.size(), 2u);
  for (const std::string& e : errors) {
    EXPECT_EQ(e.find("hunter"), std::string::npos) << e;
  }
}

TEST(ProxyAuthFile, EveryErrorIsListedWithItsLine) {
  std::string text = pbkdf2Line("a", "1", "saltsalt") + "\nbroken\n\n" +
                     pbkdf2Line("b", "2", "saltsalt") + "\n" + pbkdf2Line("a", "3", "saltsalt") +
                     "\nb:nope$1\n";
  std::vector<std::string> errors;
  EXPECT_EQ(UserDb::parse(text, "u", &errors), nullptr);
  ASSERT_EQ(errors.size(), 3u) << joinErrors(errors);
  EXPECT_EQ(errors[0], "u:2: expected user:hash, found no ':'");
  EXPECT_EQ(errors[1], "u:5: user \"a\" again (first on line 1)");
  EXPECT_EQ(errors[2].rfind("u:6: user \"b\": unknown hash scheme", 0), 0u) << errors[2];
}

class ProxyAuthFileOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sy-auth-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& f : files_) {
      ::unlink(f.c_str());
    }
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    files_.push_back(path);
    return path;
  }
  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(ProxyAuthFileOnDisk, LoadsAndReportsPaths) {
  std::string good = write("users", pbkdf2Line("alice", "pw", "saltsalt") + "\n");
  std::vector<std::string> errors;
  UserDbPtr db = UserDb::load(good, &errors);
  ASSERT_NE(db, nullptr) << joinErrors(errors);
  EXPECT_TRUE(db->verify("alice", "pw"));

  std::string bad = write("bad", "\n\nalice:x\n");
  EXPECT_EQ(UserDb::load(bad, &errors), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind(bad + ":3: user \"alice\": unknown hash scheme", 0), 0u) << errors[0];

  errors.clear();
  EXPECT_EQ(UserDb::load(dir_ + "/missing", &errors), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], dir_ + "/missing: cannot open: No such file or directory");

  errors.clear();
  EXPECT_EQ(UserDb::load(dir_, &errors), nullptr);  // a directory
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind(dir_ + ": cannot read: ", 0), 0u) << errors[0];
}

// ---------------------------------------------------------------------------
// The cache.

TEST(ProxyAuthCache, SecondVerifyUsesTheCache) {
  UserDbPtr db = parseOk("alice:" + fastHash("secret") + "\n");
  ASSERT_NE(db, nullptr);
  EXPECT_FALSE(db->verifyCached("alice", "secret"));  // nothing verified yet
  EXPECT_TRUE(db->verify("alice", "secret"));
  EXPECT_TRUE(db->verify("alice", "secret"));
  EXPECT_TRUE(db->verifyCached("alice", "secret"));
  UserDb::Stats s = db->statsForTest();
  EXPECT_EQ(s.kdf_runs, 1u);
  EXPECT_EQ(s.cache_hits, 2u);
  EXPECT_EQ(s.cached, 1u);
  // Only that exact pair is remembered.
  EXPECT_FALSE(db->verifyCached("alice", "secreT"));
  EXPECT_FALSE(db->verify("alice", "secreT"));
  EXPECT_EQ(db->statsForTest().kdf_runs, 2u);
}

TEST(ProxyAuthCache, FailuresAreNeverCached) {
  UserDbPtr db = parseOk("alice:" + fastHash("secret") + "\n");
  ASSERT_NE(db, nullptr);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(db->verify("alice", "wrong"));
  }
  UserDb::Stats s = db->statsForTest();
  EXPECT_EQ(s.kdf_runs, 3u);
  EXPECT_EQ(s.cache_hits, 0u);
  EXPECT_EQ(s.cached, 0u);
}

TEST(ProxyAuthCache, EntriesExpireAfterTheTtl) {
  auto now = std::make_shared<std::chrono::steady_clock::time_point>();
  UserDbPtr db = parseOk(pbkdf2Line("alice", "pw", "saltsalt"), [now] { return *now; });
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->verify("alice", "pw"));
  *now += UserDb::kCacheTtl - std::chrono::seconds(1);
  EXPECT_TRUE(db->verifyCached("alice", "pw"));
  *now += std::chrono::seconds(1);
  EXPECT_FALSE(db->verifyCached("alice", "pw"));  // expired, and dropped
  EXPECT_EQ(db->statsForTest().cached, 0u);
  EXPECT_TRUE(db->verify("alice", "pw"));
  UserDb::Stats s = db->statsForTest();
  EXPECT_EQ(s.kdf_runs, 2u);
  EXPECT_EQ(s.cache_hits, 1u);
}

TEST(ProxyAuthCache, ANewDatabaseStartsEmpty) {
  // A reload builds a new UserDb: a password changed in the file must not
  // keep working through the old one's cache.
  std::string line = pbkdf2Line("alice", "old", "saltsalt");
  UserDbPtr before = parseOk(line);
  ASSERT_NE(before, nullptr);
  EXPECT_TRUE(before->verify("alice", "old"));
  UserDbPtr after = parseOk(pbkdf2Line("alice", "new", "saltsalt"));
  ASSERT_NE(after, nullptr);
  EXPECT_FALSE(after->verifyCached("alice", "old"));
  EXPECT_FALSE(after->verify("alice", "old"));
  EXPECT_TRUE(after->verify("alice", "new"));
}

TEST(ProxyAuthCache, BoundedLeastRecentlyUsedFirst) {
  const size_t n = UserDb::kCacheCapacity + 1;
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    text += pbkdf2Line("u" + std::to_string(i), "p" + std::to_string(i), "saltsalt") + "\n";
  }
  UserDbPtr db = parseOk(text);
  ASSERT_NE(db, nullptr);
  for (size_t i = 0; i + 1 < n; ++i) {
    ASSERT_TRUE(db->verify("u" + std::to_string(i), "p" + std::to_string(i)));
  }
  EXPECT_EQ(db->statsForTest().cached, UserDb::kCacheCapacity);
  // Touch u0, so u1 is now the least recently used.
  EXPECT_TRUE(db->verifyCached("u0", "p0"));
  const std::string last = std::to_string(n - 1);
  ASSERT_TRUE(db->verify("u" + last, "p" + last));
  UserDb::Stats s = db->statsForTest();
  EXPECT_EQ(s.cached, UserDb::kCacheCapacity);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_TRUE(db->verifyCached("u0", "p0"));
  EXPECT_FALSE(db->verifyCached("u1", "p1"));
  EXPECT_TRUE(db->verifyCached("u2", "p2"));
  EXPECT_TRUE(db->verifyCached("u" + last, "p" + last));
}

TEST(ProxyAuthCache, ConcurrentVerifications) {
  std::string text;
  for (int i = 0; i < 8; ++i) {
    text += pbkdf2Line("u" + std::to_string(i), "p" + std::to_string(i), "saltsalt") + "\n";
  }
  UserDbPtr db = parseOk(text);
  ASSERT_NE(db, nullptr);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 25; ++round) {
        int i = (t + round) % 8;
        std::string user = "u" + std::to_string(i);
        if (!db->verify(user, "p" + std::to_string(i)) || db->verify(user, "nope")) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(wrong.load(), 0);
  UserDb::Stats s = db->statsForTest();
  EXPECT_EQ(s.cached, 8u);
  // 100 successes and 100 failures: every failure ran the KDF, and the
  // successes ran it at least once per user.
  EXPECT_EQ(s.kdf_runs + s.cache_hits, 200u);
  EXPECT_GE(s.kdf_runs, 108u);
}

// ---------------------------------------------------------------------------
// AuthJob on a real loop.

class ProxyAuthJob : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    db_ = parseOk(pbkdf2Line("alice", "pw", "saltsalt"));
    ASSERT_NE(db_, nullptr);
  }
  void TearDown() override {
    // Every job frees itself in its completion; nothing may be left.
    EXPECT_EQ(uv_run(&loop_, UV_RUN_DEFAULT), 0);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  uv_loop_t loop_{};
  UserDbPtr db_;
};

TEST_F(ProxyAuthJob, ReportsResultsOnTheLoopThread) {
  std::thread::id loop_thread = std::this_thread::get_id();
  std::vector<std::pair<std::string, bool>> results;
  for (const char* password : {"pw", "wrong", "pw"}) {
    std::string p = password;
    AuthJob* job = AuthJob::start(&loop_, db_, "alice", p, [&, p](bool ok) {
      EXPECT_EQ(std::this_thread::get_id(), loop_thread);
      results.emplace_back(p, ok);
    });
    ASSERT_NE(job, nullptr);
  }
  EXPECT_TRUE(results.empty());  // never from inside start()
  uv_run(&loop_, UV_RUN_DEFAULT);
  ASSERT_EQ(results.size(), 3u);
  int ok = 0;
  for (const auto& [p, result] : results) {
    EXPECT_EQ(result, p == "pw") << p;
    ok += result ? 1 : 0;
  }
  EXPECT_EQ(ok, 2);
}

TEST_F(ProxyAuthJob, UnknownUserAndNullDatabaseFail) {
  int calls = 0;
  ASSERT_NE(AuthJob::start(&loop_, db_, "mallory", "pw",
                           [&](bool ok) {
                             EXPECT_FALSE(ok);
                             ++calls;
                           }),
            nullptr);
  ASSERT_NE(AuthJob::start(&loop_, nullptr, "alice", "pw",
                           [&](bool ok) {
                             EXPECT_FALSE(ok);
                             ++calls;
                           }),
            nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(db_->statsForTest().dummy_runs, 1u);
}

TEST_F(ProxyAuthJob, CancelledJobsNeverCallBack) {
  int calls = 0;
  std::vector<AuthJob*> jobs;
  for (int i = 0; i < 16; ++i) {
    jobs.push_back(AuthJob::start(&loop_, db_, "alice", "pw", [&](bool) { ++calls; }));
    ASSERT_NE(jobs.back(), nullptr);
  }
  for (AuthJob* job : jobs) {
    job->cancel();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 0);
}

TEST_F(ProxyAuthJob, CancelFromInsideTheCallbackIsHarmless) {
  AuthJob* job = nullptr;
  int calls = 0;
  job = AuthJob::start(&loop_, db_, "alice", "pw", [&](bool ok) {
    EXPECT_TRUE(ok);
    ++calls;
    job->cancel();
  });
  ASSERT_NE(job, nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 1);
}

// ---------------------------------------------------------------------------
// Asking for credentials.

TEST(ProxyAuthChallenge, ExtractCredentials) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> fields;
    AuthKind kind;
    bool ok;
    AuthFailure failure;
  };
  const std::string good = "Basic YWxpY2U6c2VjcmV0";
  const Case cases[] = {
      {{{"Proxy-Authorization", good}}, AuthKind::kProxy, true, AuthFailure::kMissing},
      {{{"proxy-authorization", good}}, AuthKind::kProxy, true, AuthFailure::kMissing},
      {{}, AuthKind::kProxy, false, AuthFailure::kMissing},
      {{{"Authorization", good}}, AuthKind::kProxy, false, AuthFailure::kMissing},
      {{{"Proxy-Authorization", good}, {"Proxy-Authorization", good}},
       AuthKind::kProxy,
       false,
       AuthFailure::kMalformed},
      {{{"Proxy-Authorization", "Negotiate abc"}},
       AuthKind::kProxy,
       false,
       AuthFailure::kMalformed},
      {{{"Authorization", good}}, AuthKind::kOrigin, true, AuthFailure::kMissing},
      {{{"Proxy-Authorization", good}}, AuthKind::kOrigin, false, AuthFailure::kMissing},
      {{{"Authorization", "Basic !"}}, AuthKind::kOrigin, false, AuthFailure::kMalformed},
  };
  int row = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(row++);
    HeaderList headers;
    headers.add("Host", "example.com");
    for (const auto& [name, value] : c.fields) {
      headers.add(name, value);
    }
    std::string user;
    std::string password;
    AuthFailure failure = AuthFailure::kRejected;
    EXPECT_EQ(extractCredentials(headers, c.kind, &user, &password, &failure), c.ok);
    if (c.ok) {
      EXPECT_EQ(user, "alice");
      EXPECT_EQ(password, "secret");
    } else {
      EXPECT_EQ(failure, c.failure);
    }
  }
}

TEST(ProxyAuthChallenge, ResponsesCarryTheChallenge) {
  struct Case {
    AuthKind kind;
    AuthFailure failure;
    const char* status_line;
    const char* challenge;
    const char* details;
  };
  const Case cases[] = {
      {AuthKind::kProxy, AuthFailure::kMissing, "HTTP/1.1 407 Proxy Authentication Required\r\n",
       "Proxy-Authenticate", "proxy authentication required"},
      {AuthKind::kProxy, AuthFailure::kMalformed, "HTTP/1.1 407 Proxy Authentication Required\r\n",
       "Proxy-Authenticate",
       "the Proxy-Authorization field is not exactly one set of Basic credentials"},
      {AuthKind::kProxy, AuthFailure::kRejected, "HTTP/1.1 407 Proxy Authentication Required\r\n",
       "Proxy-Authenticate", "the proxy rejected the user name or password"},
      {AuthKind::kOrigin, AuthFailure::kMissing, "HTTP/1.1 401 Unauthorized\r\n",
       "WWW-Authenticate", "~/.netrc"},
      {AuthKind::kOrigin, AuthFailure::kMalformed, "HTTP/1.1 401 Unauthorized\r\n",
       "WWW-Authenticate", "the Authorization field"},
      {AuthKind::kOrigin, AuthFailure::kRejected, "HTTP/1.1 401 Unauthorized\r\n",
       "WWW-Authenticate", "rejected"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.status_line + std::string(c.details));
    ProxyError e = authenticationError(c.kind, c.failure);
    EXPECT_EQ(e.kind, ProxyErrorKind::kHttpRequestDenied);
    DecisionRecord record;
    std::string response = recordError(e, /*close=*/true, /*head_only=*/false, &record);
    EXPECT_EQ(response.rfind(c.status_line, 0), 0u) << response;
    EXPECT_NE(response.find(std::string(c.challenge) +
                            ": Basic realm=\"switchyard\", charset=\"UTF-8\"\r\n"),
              std::string::npos)
        << response;
    EXPECT_NE(response.find(c.details), std::string::npos) << response;
    EXPECT_EQ(record.status, c.kind == AuthKind::kProxy ? 407 : 401);
    EXPECT_EQ(record.proxy_status.rfind("switchyard; error=http_request_denied", 0), 0u);
    EXPECT_TRUE(record.user.empty());
  }
  EXPECT_EQ(credentialsField(AuthKind::kProxy), "Proxy-Authorization");
  EXPECT_EQ(credentialsField(AuthKind::kOrigin), "Authorization");
  EXPECT_EQ(basicChallenge(), "Basic realm=\"switchyard\", charset=\"UTF-8\"");
}

}  // namespace
}  // namespace switchyard
