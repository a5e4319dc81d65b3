// The local CA on disk and the leaves it mints, checked by parsing them back
// with OpenSSL and verifying them the way a TLS client would.
#include "certs/ca.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/unit/test_support/ca_fixture.h"
#include "tests/unit/test_support/temp_dir.h"

namespace switchyard::certs {
namespace {

namespace fs = std::filesystem;

// Every directory of this file is named sy-certs-test-XXXXXX.
class TempDir : public test::TempDir {
 public:
  TempDir() : test::TempDir("sy-certs-test") {}
};

unsigned fileMode(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return 0xffff;
  }
  return st.st_mode & 07777;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string& path, const std::string& data, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  }
  chmod(path.c_str(), mode);
}

X509Ptr readCert(const std::string& path) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) {
    return nullptr;
  }
  X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

PkeyPtr readKey(const std::string& path) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) {
    return nullptr;
  }
  PkeyPtr key(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return key;
}

std::string keyPem(EVP_PKEY* key, const EVP_CIPHER* cipher = nullptr) {
  BIO* bio = BIO_new(BIO_s_mem());
  unsigned char pass[] = "secret";
  PEM_write_bio_PrivateKey(bio, key, cipher, cipher ? pass : nullptr, cipher ? 6 : 0, nullptr,
                           nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string certPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

// Returns the days between notBefore and notAfter (and the leftover seconds).
void validitySpan(const X509* cert, int* days, int* secs) {
  ASSERT_EQ(ASN1_TIME_diff(days, secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)), 1);
}

// Seconds from now to `t` (negative in the past).
long secondsFromNow(const ASN1_TIME* t) {
  int days = 0;
  int secs = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, t), 1);
  return days * 86400L + secs;
}

std::string commonName(const X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) {
    return {};
  }
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                     static_cast<size_t>(ASN1_STRING_length(value)));
}

bool extensionCritical(const X509* cert, int nid) {
  int idx = X509_get_ext_by_NID(cert, nid, -1);
  return idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, idx)) == 1;
}

// The SAN entries as "DNS:name" / "IP:address".
std::vector<std::string> subjectAltNames(const X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const ASN1_STRING* s = name->d.dNSName;
      out.push_back("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                         static_cast<size_t>(ASN1_STRING_length(s))));
    } else if (name->type == GEN_IPADD) {
      const ASN1_STRING* s = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      int family = ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6;
      inet_ntop(family, ASN1_STRING_get0_data(s), text, sizeof(text));
      out.push_back(std::string("IP:") + text);
    } else {
      out.push_back("other");
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string serialHex(const X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

int serialBits(const X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  int bits = BN_num_bits(bn);
  BN_free(bn);
  return bits;
}

// Verifies `leaf` against a store holding only `ca`, as a TLS client checking
// a server for `expected` would. Returns X509_V_OK or the verify error.
int verifyLeaf(X509* ca, X509* leaf, const std::string& expected) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, expected.c_str()) != 1) {
    X509_VERIFY_PARAM_set1_host(param, expected.c_str(), expected.size());
  }
  int rc = X509_verify_cert(ctx);
  int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return rc == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

// Writes DIR/ca.crt + DIR/ca.key for a hand-made certificate, to test how
// load() judges CAs that createCa() would never produce.
struct CraftSpec {
  const char* basic_constraints;  // nullptr: extension absent
  const char* key_usage;          // nullptr: extension absent
  long not_before;                // seconds from now
  long not_after;                 // seconds from now
};

void writeCraftedCa(const std::string& dir, const CraftSpec& spec) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  X509* x = cert.get();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
  X509_gmtime_adj(X509_getm_notBefore(x), spec.not_before);
  X509_gmtime_adj(X509_getm_notAfter(x), spec.not_after);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("crafted CA"), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_set_pubkey(x, key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  auto add = [&](int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  };
  if (spec.basic_constraints != nullptr) {
    add(NID_basic_constraints, spec.basic_constraints);
  }
  if (spec.key_usage != nullptr) {
    add(NID_key_usage, spec.key_usage);
  }
  add(NID_subject_key_identifier, "hash");
  ASSERT_GT(X509_sign(x, key.get(), EVP_sha256()), 0);
  fs::create_directories(dir);
  writeFile(dir + "/ca.crt", certPem(x), 0644);
  writeFile(dir + "/ca.key", keyPem(key.get()), 0600);
}

std::vector<std::string> dirEntries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// createCa()

TEST(CreateCa, CertificateHasTheCaProperties) {
  TempDir tmp;
  std::string dir = tmp.sub("ca");
  std::string error;
  CaFiles files;
  ASSERT_TRUE(createCa(dir, false, &error, &files)) << error;
  EXPECT_EQ(files.cert_path, dir + "/ca.crt");
  EXPECT_EQ(files.key_path, dir + "/ca.key");

  X509Ptr cert = readCert(files.cert_path);
  ASSERT_TRUE(cert);
  X509* x = cert.get();
  EXPECT_EQ(X509_get_version(x), X509_VERSION_3);
  EXPECT_NE(X509_get_extension_flags(x) & EXFLAG_CA, 0u);
  EXPECT_EQ(X509_check_ca(x), 1);
  EXPECT_EQ(X509_get_pathlen(x), 0);
  EXPECT_TRUE(extensionCritical(x, NID_basic_constraints));
  EXPECT_TRUE(extensionCritical(x, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(x), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(x), nullptr);
  EXPECT_EQ(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1) << "a CA with an EKU limits leaves";

  // Self-signed with its own EC P-256 key, ECDSA with SHA-256.
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
  EVP_PKEY* pub = X509_get0_pubkey(x);
  ASSERT_NE(pub, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(pub, "EC"));
  char group[64] = {};
  size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof(group), &group_len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_verify(x, pub), 1);
  EXPECT_EQ(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);

  // About ten years, starting (an hour) before now.
  int days = 0;
  int secs = 0;
  validitySpan(x, &days, &secs);
  EXPECT_EQ(days, 3650);
  EXPECT_EQ(secs, 3600);
  EXPECT_LE(secondsFromNow(X509_get0_notBefore(x)), -3590);
  EXPECT_GE(secondsFromNow(X509_get0_notBefore(x)), -3700);

  // A random positive serial of at most 127 bits; at least 100 bits unless
  // we are astonishingly unlucky.
  EXPECT_LE(serialBits(x), 127);
  EXPECT_GE(serialBits(x), 100);
  EXPECT_EQ(ASN1_STRING_type(X509_get0_serialNumber(x)), V_ASN1_INTEGER);

  std::string cn = commonName(x);
  EXPECT_EQ(cn.rfind("Switchyard local CA (", 0), 0u) << cn;
  EXPECT_EQ(cn.back(), ')');
  EXPECT_LE(cn.size(), kMaxCommonNameLength);

  PkeyPtr key = readKey(files.key_path);
  ASSERT_TRUE(key);
  EXPECT_EQ(X509_check_private_key(x, key.get()), 1);

  EXPECT_EQ(fileMode(files.key_path), 0600u);
  EXPECT_EQ(fileMode(files.cert_path), 0644u);
  EXPECT_EQ(fileMode(dir), 0700u);
  EXPECT_EQ(dirEntries(dir), (std::vector<std::string>{"ca.crt", "ca.key"}));
  EXPECT_NE(readFile(files.key_path).find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
}

TEST(CreateCa, KeyModeIsExactly0600WhateverTheUmask) {
  for (mode_t mask : {0000, 0002, 0022, 0027, 0077}) {
    SCOPED_TRACE(mask);
    TempDir tmp;
    mode_t old = umask(mask);
    std::string error;
    bool ok = createCa(tmp.path(), false, &error);
    umask(old);
    ASSERT_TRUE(ok) << error;
    EXPECT_EQ(fileMode(tmp.sub("ca.key")), 0600u);
    EXPECT_EQ(fileMode(tmp.sub("ca.crt")), 0644u);
  }
}

TEST(CreateCa, CreatesMissingParentsPrivately) {
  TempDir tmp;
  std::string dir = tmp.sub("a/b/c/");
  std::string error;
  CaFiles files;
  ASSERT_TRUE(createCa(dir, false, &error, &files)) << error;
  EXPECT_EQ(files.cert_path, dir + "ca.crt");
  for (const char* sub : {"a", "a/b", "a/b/c"}) {
    EXPECT_EQ(fileMode(tmp.sub(sub)), 0700u) << sub;
  }
  // An existing directory keeps its mode.
  TempDir other;
  chmod(other.path().c_str(), 0755);
  ASSERT_TRUE(createCa(other.path(), false, &error)) << error;
  EXPECT_EQ(fileMode(other.path()), 0755u);
}

TEST(CreateCa, RefusesToOverwriteWithoutForce) {
  struct Case {
    const char* name;
    bool keep_cert;
    bool keep_key;
  };
  const Case cases[] = {
      {"both files", true, true},
      {"only ca.crt", true, false},
      {"only ca.key", false, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir tmp;
    std::string error;
    ASSERT_TRUE(createCa(tmp.path(), false, &error)) << error;
    if (!c.keep_cert) {
      unlink(tmp.sub("ca.crt").c_str());
    }
    if (!c.keep_key) {
      unlink(tmp.sub("ca.key").c_str());
    }
    std::string cert_before = readFile(tmp.sub("ca.crt"));
    std::string key_before = readFile(tmp.sub("ca.key"));
    EXPECT_FALSE(createCa(tmp.path(), false, &error));
    EXPECT_NE(error.find("already exists"), std::string::npos) << error;
    EXPECT_NE(error.find("--force"), std::string::npos) << error;
    EXPECT_EQ(readFile(tmp.sub("ca.crt")), cert_before);
    EXPECT_EQ(readFile(tmp.sub("ca.key")), key_before);
    // Nothing half-written is left behind.
    size_t expected = (c.keep_cert ? 1 : 0) + (c.keep_key ? 1 : 0);
    EXPECT_EQ(dirEntries(tmp.path()).size(), expected);
  }
}

TEST(CreateCa, ForceReplacesBothFiles) {
  TempDir tmp;
  std::string error;
  ASSERT_TRUE(createCa(tmp.path(), false, &error)) << error;
  X509Ptr first = readCert(tmp.sub("ca.crt"));
  std::string first_key = readFile(tmp.sub("ca.key"));
  // A loose mode on the old key must not survive the replacement.
  chmod(tmp.sub("ca.key").c_str(), 0644);

  ASSERT_TRUE(createCa(tmp.path(), true, &error)) << error;
  X509Ptr second = readCert(tmp.sub("ca.crt"));
  ASSERT_TRUE(first && second);
  EXPECT_NE(sha256Fingerprint(first.get()), sha256Fingerprint(second.get()));
  EXPECT_NE(readFile(tmp.sub("ca.key")), first_key);
  EXPECT_EQ(fileMode(tmp.sub("ca.key")), 0600u);
  PkeyPtr key = readKey(tmp.sub("ca.key"));
  ASSERT_TRUE(key);
  EXPECT_EQ(X509_check_private_key(second.get(), key.get()), 1);
  EXPECT_EQ(dirEntries(tmp.path()), (std::vector<std::string>{"ca.crt", "ca.key"}));

  // --force on an empty directory is just a creation.
  TempDir fresh;
  ASSERT_TRUE(createCa(fresh.path(), true, &error)) << error;
  EXPECT_EQ(fileMode(fresh.sub("ca.key")), 0600u);
}

TEST(CreateCa, ReportsUnusableDirectories) {
  TempDir tmp;
  writeFile(tmp.sub("plainfile"), "x", 0644);
  struct Case {
    std::string dir;
    const char* message;
  };
  const Case cases[] = {
      {"", "no CA directory"},
      {tmp.sub("plainfile"), "not a directory"},
      {tmp.sub("plainfile/ca"), "Not a directory"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dir);
    std::string error;
    EXPECT_FALSE(createCa(c.dir, false, &error));
    EXPECT_NE(error.find(c.message), std::string::npos) << error;
    EXPECT_FALSE(createCa(c.dir, true, &error));
  }
}

TEST(CreateCa, ReportsReadOnlyDirectory) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "root ignores directory permissions";
  }
  TempDir tmp;
  std::string dir = tmp.sub("ro");
  ASSERT_EQ(mkdir(dir.c_str(), 0500), 0);
  std::string error;
  EXPECT_FALSE(createCa(dir, false, &error));
  EXPECT_NE(error.find("Permission denied"), std::string::npos) << error;
  EXPECT_FALSE(createCa(dir + "/sub", false, &error));
  EXPECT_NE(error.find("Permission denied"), std::string::npos) << error;
}

TEST(Fingerprint, MatchesOpensslFormat) {
  TempDir tmp;
  std::string error;
  ASSERT_TRUE(createCa(tmp.path(), false, &error)) << error;
  X509Ptr cert = readCert(tmp.sub("ca.crt"));
  std::string fp = sha256Fingerprint(cert.get());
  ASSERT_EQ(fp.size(), 32u * 3 - 1);
  unsigned char md[32];
  unsigned int len = 0;
  ASSERT_EQ(X509_digest(cert.get(), EVP_sha256(), md, &len), 1);
  char first[3];
  std::snprintf(first, sizeof(first), "%02X", md[0]);
  EXPECT_EQ(fp.substr(0, 2), first);
  for (size_t i = 2; i < fp.size(); i += 3) {
    EXPECT_EQ(fp[i], ':');
  }
  EXPECT_EQ(fp.find_first_not_of("0123456789ABCDEF:"), std::string::npos);
  EXPECT_EQ(sha256Fingerprint(nullptr), "");
}

// ---------------------------------------------------------------------------
// CertificateAuthority::load()

TEST(LoadCa, LoadsWhatCreateCaWrote) {
  TempDir tmp;
  std::string error;
  ASSERT_TRUE(createCa(tmp.path(), false, &error)) << error;
  auto ca = CertificateAuthority::load(tmp.path(), &error);
  ASSERT_TRUE(ca) << error;
  EXPECT_EQ(error, "");
  EXPECT_EQ(ca->files().cert_path, tmp.sub("ca.crt"));
  X509Ptr cert = readCert(tmp.sub("ca.crt"));
  EXPECT_EQ(X509_cmp(ca->cert(), cert.get()), 0);
  EXPECT_EQ(ca->fingerprint(), sha256Fingerprint(cert.get()));
  long to_end = secondsFromNow(X509_get0_notAfter(cert.get()));
  EXPECT_NEAR(static_cast<double>(ca->notAfter() - std::time(nullptr)), static_cast<double>(to_end),
              5.0);
}

TEST(LoadCa, RejectsBadFiles) {
  struct Case {
    const char* name;
    // Damages a good CA directory.
    void (*damage)(const std::string& dir);
    const char* message;
  };
  static const Case cases[] = {
      {"missing directory", [](const std::string& dir) { fs::remove_all(dir); },
       "No such file or directory"},
      {"missing key", [](const std::string& dir) { unlink((dir + "/ca.key").c_str()); },
       "cannot open"},
      {"missing cert", [](const std::string& dir) { unlink((dir + "/ca.crt").c_str()); },
       "cannot open"},
      {"key mode 0640", [](const std::string& dir) { chmod((dir + "/ca.key").c_str(), 0640); },
       "chmod 600"},
      {"key mode 0604", [](const std::string& dir) { chmod((dir + "/ca.key").c_str(), 0604); },
       "mode 0604"},
      {"key mode 0620", [](const std::string& dir) { chmod((dir + "/ca.key").c_str(), 0620); },
       "accessible by group or others"},
      {"key is a symlink",
       [](const std::string& dir) {
         rename((dir + "/ca.key").c_str(), (dir + "/real.key").c_str());
         symlink("real.key", (dir + "/ca.key").c_str());
       },
       "cannot open"},
      {"key is a directory",
       [](const std::string& dir) {
         unlink((dir + "/ca.key").c_str());
         mkdir((dir + "/ca.key").c_str(), 0700);
       },
       "not a regular file"},
      {"garbage cert", [](const std::string& dir) { writeFile(dir + "/ca.crt", "hello\n", 0644); },
       "does not hold a PEM certificate"},
      {"garbage key", [](const std::string& dir) { writeFile(dir + "/ca.key", "hello\n", 0600); },
       "does not hold an unencrypted PEM private key"},
      {"encrypted key",
       [](const std::string& dir) {
         PkeyPtr key = readKey(dir + "/ca.key");
         writeFile(dir + "/ca.key", keyPem(key.get(), EVP_aes_128_cbc()), 0600);
       },
       "does not hold an unencrypted PEM private key"},
      {"key of another CA",
       [](const std::string& dir) {
         TempDir other;
         std::string error;
         createCa(other.path(), false, &error);
         writeFile(dir + "/ca.key", readFile(other.sub("ca.key")), 0600);
       },
       "is not the key of"},
      {"not a CA",
       [](const std::string& dir) {
         writeCraftedCa(dir, {"critical,CA:FALSE", nullptr, -60, 86400});
       },
       "is not a CA certificate"},
      {"no basicConstraints",
       [](const std::string& dir) {
         writeCraftedCa(dir, {nullptr, nullptr, -60, 86400});
       },
       "is not a CA certificate"},
      {"keyUsage without keyCertSign",
       [](const std::string& dir) {
         writeCraftedCa(dir, {"critical,CA:TRUE", "critical,digitalSignature", -60, 86400});
       },
       "keyCertSign"},
      {"expired",
       [](const std::string& dir) {
         writeCraftedCa(dir, {"critical,CA:TRUE", nullptr, -10 * 86400, -86400});
       },
       "expired on"},
      {"not yet valid",
       [](const std::string& dir) {
         writeCraftedCa(dir, {"critical,CA:TRUE", nullptr, 86400, 10 * 86400});
       },
       "is not valid before"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir tmp;
    std::string dir = tmp.sub("ca");
    std::string error;
    ASSERT_TRUE(createCa(dir, false, &error)) << error;
    c.damage(dir);
    auto ca = CertificateAuthority::load(dir, &error);
    EXPECT_FALSE(ca);
    EXPECT_NE(error.find(c.message), std::string::npos) << error;
  }
}

TEST(LoadCa, AcceptsForeignCasThatQualify) {
  struct Case {
    const char* name;
    CraftSpec spec;
  };
  const Case cases[] = {
      {"CA:TRUE without keyUsage", {"critical,CA:TRUE", nullptr, -60, 86400 * 30}},
      {"non-critical basicConstraints", {"CA:TRUE", "keyCertSign", -60, 86400 * 30}},
      {"keyUsage with keyCertSign", {"critical,CA:TRUE", "critical,keyCertSign", -60, 86400}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir tmp;
    writeCraftedCa(tmp.path(), c.spec);
    std::string error;
    auto ca = CertificateAuthority::load(tmp.path(), &error);
    ASSERT_TRUE(ca) << error;
    auto leaf = ca->mint("example.com", &error);
    ASSERT_TRUE(leaf) << error;
    X509* ca_cert = const_cast<X509*>(ca->cert());
    EXPECT_EQ(verifyLeaf(ca_cert, leaf->cert.get(), "example.com"), X509_V_OK);
  }
}

// ---------------------------------------------------------------------------
// canonicalLeafHost()

TEST(CanonicalLeafHost, NormalisesValidHosts) {
  struct Case {
    const char* in;
    const char* out;
    bool ip;
  };
  const Case cases[] = {
      {"example.com", "example.com", false},
      {"WWW.Example.COM", "www.example.com", false},
      {"example.com.", "example.com", false},
      {"localhost", "localhost", false},
      {"a", "a", false},
      {"xn--bcher-kva.example", "xn--bcher-kva.example", false},
      {"_acme-challenge.example.com", "_acme-challenge.example.com", false},
      {"1-2-3.example", "1-2-3.example", false},
      {"127.0.0.1", "127.0.0.1", true},
      {"10.1.2.3", "10.1.2.3", true},
      {"::1", "::1", true},
      {"[::1]", "::1", true},
      {"2001:DB8:0:0:0:0:0:1", "2001:db8::1", true},
      {"[2001:db8::1]", "2001:db8::1", true},
      {"::ffff:10.1.2.3", "::ffff:10.1.2.3", true},
      {"1.2.3", "1.2.3", false},  // not an IPv4 literal for inet_pton: a name
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    std::string out;
    std::string error;
    bool ip = !c.ip;
    ASSERT_TRUE(canonicalLeafHost(c.in, &out, &ip, &error)) << error;
    EXPECT_EQ(out, c.out);
    EXPECT_EQ(ip, c.ip);
  }
}

TEST(CanonicalLeafHost, RejectsInvalidHosts) {
  const std::string long_label(64, 'a');
  const std::string long_name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                std::string(63, 'c') + "." + std::string(63, 'd');  // 255
  struct Case {
    std::string in;
    const char* message;
  };
  const Case cases[] = {
      {"", "empty host"},
      {".", "length"},
      {"[]", "empty host"},
      {"[example.com]", "bracketed"},
      {"[10.0.0.1]", "bracketed"},
      {"[fe80::1%eth0]", "bracketed"},
      {"fe80::1%eth0", "not allowed"},
      {"bücher.example", "IDNA A-label"},
      {"exa mple.com", "not allowed"},
      {"example.com:443", "not allowed"},
      {"*.example.com", "not allowed"},
      {"a..b", "empty label"},
      {".example.com", "empty label"},
      {"example.com..", "empty label"},
      {"ex/ample.com", "not allowed"},
      {std::string("nul\0byte", 8), "not allowed"},
      {long_label + ".example", "longer than 63"},
      {long_name, "length"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    std::string out;
    std::string error;
    bool ip = false;
    EXPECT_FALSE(canonicalLeafHost(c.in, &out, &ip, &error));
    EXPECT_NE(error.find(c.message), std::string::npos) << error;
  }
  // 253 characters is the longest name that fits.
  std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                        std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(longest.size(), 253u);
  std::string out;
  std::string error;
  bool ip = true;
  EXPECT_TRUE(canonicalLeafHost(longest, &out, &ip, &error)) << error;
}

// ---------------------------------------------------------------------------
// mint()

class MintTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    test_ca_ = new test::TestCa("sy-certs-test");
    ca_ = &test_ca_->authority();
  }
  static void TearDownTestSuite() {
    ca_ = nullptr;
    delete test_ca_;
    test_ca_ = nullptr;
  }
  static X509* caCert() { return const_cast<X509*>(ca_->cert()); }

  static test::TestCa* test_ca_;
  static const CertificateAuthority* ca_;  // test_ca_'s, for the mint() tables
};
test::TestCa* MintTest::test_ca_ = nullptr;
const CertificateAuthority* MintTest::ca_ = nullptr;

struct LeafCase {
  std::string host;       // as given to mint()
  std::string canonical;  // Leaf::host and the name a client checks
  std::string san;        // the one SAN entry expected
  std::string cn;         // subject CN
  std::string other;      // a host the leaf must not be valid for
};

TEST_F(MintTest, LeafPropertiesPerHostKind) {
  const std::string long_host = std::string(60, 'x') + ".example.com";  // 72 characters
  const std::vector<LeafCase> cases = {
      {"example.com", "example.com", "DNS:example.com", "example.com", "www.example.com"},
      {"proxy.golang.org", "proxy.golang.org", "DNS:proxy.golang.org", "proxy.golang.org",
       "golang.org"},
      {"WWW.Example.COM.", "www.example.com", "DNS:www.example.com", "www.example.com",
       "example.com"},
      {"xn--bcher-kva.example", "xn--bcher-kva.example", "DNS:xn--bcher-kva.example",
       "xn--bcher-kva.example", "xn--bcher-kvb.example"},
      {"127.0.0.1", "127.0.0.1", "IP:127.0.0.1", "127.0.0.1", "127.0.0.2"},
      {"10.1.2.3", "10.1.2.3", "IP:10.1.2.3", "10.1.2.3", "10.1.2.30"},
      {"::1", "::1", "IP:::1", "::1", "::2"},
      {"[2001:db8::1]", "2001:db8::1", "IP:2001:db8::1", "2001:db8::1", "2001:db8::2"},
      {"2001:DB8:0:0:0:0:0:a", "2001:db8::a", "IP:2001:db8::a", "2001:db8::a", "10.0.0.1"},
      {long_host, long_host, "DNS:" + long_host, long_host.substr(0, 64), "example.com"},
  };
  for (const LeafCase& c : cases) {
    SCOPED_TRACE(c.host);
    std::string error;
    auto leaf = ca_->mint(c.host, &error);
    ASSERT_TRUE(leaf) << error;
    EXPECT_EQ(error, "");
    X509* x = leaf->cert.get();
    EXPECT_EQ(leaf->host, c.canonical);
    EXPECT_EQ(subjectAltNames(x), std::vector<std::string>{c.san});
    EXPECT_EQ(commonName(x), c.cn);
    EXPECT_LE(commonName(x).size(), kMaxCommonNameLength);
    EXPECT_FALSE(extensionCritical(x, NID_subject_alt_name));

    // A server certificate, not a CA.
    EXPECT_EQ(X509_get_version(x), X509_VERSION_3);
    EXPECT_EQ(X509_get_extension_flags(x) & EXFLAG_CA, 0u);
    EXPECT_EQ(X509_check_ca(x), 0);
    EXPECT_TRUE(extensionCritical(x, NID_basic_constraints));
    EXPECT_TRUE(extensionCritical(x, NID_key_usage));
    EXPECT_EQ(X509_get_key_usage(x), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
    EXPECT_EQ(X509_get_extended_key_usage(x), static_cast<uint32_t>(XKU_SSL_SERVER));
    EXPECT_EQ(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);

    // Key identifiers chain the leaf to the CA.
    ASSERT_NE(X509_get0_subject_key_id(x), nullptr);
    ASSERT_NE(X509_get0_authority_key_id(x), nullptr);
    EXPECT_EQ(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x), X509_get0_subject_key_id(caCert())),
        0);
    EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(caCert())), 0);
    EXPECT_EQ(X509_check_issued(caCert(), x), X509_V_OK);

    // EC P-256 key, the shared one.
    EVP_PKEY* pub = X509_get0_pubkey(x);
    ASSERT_NE(pub, nullptr);
    EXPECT_TRUE(EVP_PKEY_is_a(pub, "EC"));
    EXPECT_EQ(EVP_PKEY_get_bits(pub), 256);
    EXPECT_EQ(X509_check_private_key(x, leaf->key.get()), 1);
    EXPECT_EQ(leaf->issuer.get(), caCert());

    // An hour back, at most eight days in all.
    int days = 0;
    int secs = 0;
    validitySpan(x, &days, &secs);
    EXPECT_EQ(days * 86400L + secs, 7 * 86400L + 3600);
    EXPECT_LE(days, 8);
    long start = secondsFromNow(X509_get0_notBefore(x));
    EXPECT_LE(start, -3595);
    EXPECT_GE(start, -3700);
    long end = secondsFromNow(X509_get0_notAfter(x));
    EXPECT_NEAR(static_cast<double>(leaf->not_after - std::time(nullptr)), static_cast<double>(end),
                5.0);

    // Verifies for its host, and only for its host.
    EXPECT_EQ(verifyLeaf(caCert(), x, c.canonical), X509_V_OK);
    int wrong = verifyLeaf(caCert(), x, c.other);
    EXPECT_TRUE(wrong == X509_V_ERR_HOSTNAME_MISMATCH || wrong == X509_V_ERR_IP_ADDRESS_MISMATCH)
        << X509_verify_cert_error_string(wrong);
    if (c.san.rfind("DNS:", 0) == 0) {
      EXPECT_EQ(X509_check_host(x, c.canonical.data(), c.canonical.size(), 0, nullptr), 1);
      EXPECT_EQ(X509_check_host(x, c.other.data(), c.other.size(), 0, nullptr), 0);
    } else {
      EXPECT_EQ(X509_check_ip_asc(x, c.canonical.c_str(), 0), 1);
      EXPECT_EQ(X509_check_ip_asc(x, c.other.c_str(), 0), 0);
      // The address is not in the SAN as a DNS name (the CN, which OpenSSL
      // would fall back to, is left out of this check).
      EXPECT_EQ(X509_check_host(x, c.canonical.data(), c.canonical.size(),
                                X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr),
                0);
    }

    // pem() round-trips to the same certificate.
    std::string pem = leaf->pem();
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509Ptr back(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    ASSERT_TRUE(back);
    EXPECT_EQ(X509_cmp(back.get(), x), 0);
  }
}

TEST_F(MintTest, LeafDoesNotVerifyAgainstAnotherCa) {
  TempDir other_dir;
  std::string error;
  ASSERT_TRUE(createCa(other_dir.path(), false, &error)) << error;
  X509Ptr other = readCert(other_dir.sub("ca.crt"));
  auto leaf = ca_->mint("example.com", &error);
  ASSERT_TRUE(leaf) << error;
  int rc = verifyLeaf(other.get(), leaf->cert.get(), "example.com");
  EXPECT_EQ(rc, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY) << X509_verify_cert_error_string(rc);
}

TEST_F(MintTest, SerialsDiffer) {
  std::set<std::string> serials;
  const int kLeaves = 64;
  for (int i = 0; i < kLeaves; ++i) {
    std::string error;
    auto leaf = ca_->mint(i % 2 == 0 ? "same.example" : "10.0.0.1", &error);
    ASSERT_TRUE(leaf) << error;
    EXPECT_LE(serialBits(leaf->cert.get()), 127);
    serials.insert(serialHex(leaf->cert.get()));
  }
  EXPECT_EQ(serials.size(), static_cast<size_t>(kLeaves));
  EXPECT_EQ(serials.count(serialHex(caCert())), 0u);
}

TEST_F(MintTest, AllLeavesShareOneKey) {
  std::string error;
  auto a = ca_->mint("a.example", &error);
  auto b = ca_->mint("b.example", &error);
  ASSERT_TRUE(a && b) << error;
  EXPECT_EQ(a->key.get(), b->key.get());
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(a->cert.get()), X509_get0_pubkey(b->cert.get())), 1);
}

TEST_F(MintTest, RejectsInvalidHosts) {
  const char* hosts[] = {
      "", "[]", "bücher.example", "a..b", "*.example.com", "exa mple", "[example.com]", "host:443"};
  for (const char* host : hosts) {
    SCOPED_TRACE(host);
    std::string error;
    EXPECT_EQ(ca_->mint(host, &error), nullptr);
    EXPECT_FALSE(error.empty());
  }
}

TEST_F(MintTest, ConcurrentMintingFromFourThreads) {
  const int kThreads = 4;
  const int kPerThread = 40;
  std::vector<std::vector<std::shared_ptr<const CertificateAuthority::Leaf>>> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &results, &errors] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string host = i % 3 == 0
                               ? "10.0." + std::to_string(t) + "." + std::to_string(i)
                               : "h" + std::to_string(i) + ".t" + std::to_string(t) + ".example";
        std::string error;
        auto leaf = ca_->mint(host, &error);
        if (!leaf) {
          errors[t] = error;
          return;
        }
        results[t].push_back(std::move(leaf));
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  std::set<std::string> serials;
  for (int t = 0; t < kThreads; ++t) {
    SCOPED_TRACE(t);
    EXPECT_EQ(errors[t], "");
    ASSERT_EQ(results[t].size(), static_cast<size_t>(kPerThread));
    for (const auto& leaf : results[t]) {
      EXPECT_EQ(verifyLeaf(caCert(), leaf->cert.get(), leaf->host), X509_V_OK) << leaf->host;
      serials.insert(serialHex(leaf->cert.get()));
    }
  }
  EXPECT_EQ(serials.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(MintShortLivedCa, LeafNeverOutlivesItsCa) {
  TempDir tmp;
  writeCraftedCa(tmp.path(), {"critical,CA:TRUE", nullptr, -3600, 2 * 86400});
  std::string error;
  auto ca = CertificateAuthority::load(tmp.path(), &error);
  ASSERT_TRUE(ca) << error;
  auto leaf = ca->mint("example.com", &error);
  ASSERT_TRUE(leaf) << error;
  EXPECT_EQ(ASN1_TIME_compare(X509_get0_notAfter(leaf->cert.get()), X509_get0_notAfter(ca->cert())),
            0);
  EXPECT_EQ(leaf->not_after, ca->notAfter());
  EXPECT_EQ(verifyLeaf(const_cast<X509*>(ca->cert()), leaf->cert.get(), "example.com"), X509_V_OK);
}

}  // namespace
}  // namespace switchyard::certs
