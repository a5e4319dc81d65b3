#include "certs/ca.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace switchyard::certs {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free_all(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
struct GeneralNamesDeleter {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesDeleter>;

std::string errnoText(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// Sets *error to `what` followed by whatever OpenSSL queued, and returns false
// so that callers can `return fail(...)`.
bool fail(std::string* error, const std::string& what) {
  std::string detail = drainOpensslErrors();
  *error = detail.empty() ? what : what + " (" + detail + ")";
  return false;
}

std::string joinPath(const std::string& dir, const char* name) {
  if (!dir.empty() && dir.back() == '/') {
    return dir + name;
  }
  return dir + "/" + name;
}

// A fresh EC P-256 key: small, fast to sign with, and accepted by every TLS
// client that matters.
PkeyPtr generateKey(std::string* error) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    fail(error, "cannot generate an EC P-256 key");
  }
  return key;
}

// A random positive 128-bit serial. The top bit is cleared so the DER
// INTEGER stays within 16 octets and never reads as negative; a zero serial is
// not allowed, hence the retry.
bool setRandomSerial(X509* cert, std::string* error) {
  unsigned char bytes[16];
  BnPtr bn;
  do {
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
      return fail(error, "no randomness for a serial number");
    }
    bytes[0] &= 0x7f;
    bn.reset(BN_bin2bn(bytes, sizeof(bytes), nullptr));
    if (!bn) {
      return fail(error, "cannot build a serial number");
    }
  } while (BN_is_zero(bn.get()));
  ASN1_INTEGER* serial = X509_get_serialNumber(cert);
  if (BN_to_ASN1_INTEGER(bn.get(), serial) == nullptr) {
    return fail(error, "cannot set the serial number");
  }
  return true;
}

// Adds an extension given in openssl.cnf syntax. `ctx` supplies the subject
// certificate for "hash" key identifiers.
bool addConfExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value, std::string* error) {
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return fail(error, std::string("cannot add extension ") + OBJ_nid2sn(nid));
  }
  return true;
}

X509ExtensionPtr makeConfExtension(int nid, const char* value, std::string* error) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, nullptr, nullptr, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext) {
    fail(error, std::string("cannot build extension ") + OBJ_nid2sn(nid));
  }
  return ext;
}

bool addNameEntry(X509_NAME* name, const char* field, const std::string& value,
                  std::string* error) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return fail(error, std::string("cannot set subject ") + field);
  }
  return true;
}

std::string pemOf(const X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), const_cast<X509*>(cert)) != 1) {
    return {};
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// The private key as PKCS#8 PEM. The caller wipes the string after use.
bool keyPemOf(EVP_PKEY* key, std::string* pem, std::string* error) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail(error, "cannot encode the CA key");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  pem->assign(data, static_cast<size_t>(len));
  OPENSSL_cleanse(data, static_cast<size_t>(len));
  return true;
}

void wipe(std::string* secret) {
  if (!secret->empty()) {
    OPENSSL_cleanse(secret->data(), secret->size());
  }
  secret->clear();
}

std::string localHostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
    return "localhost";
  }
  return name;
}

// An empty X.509 v3 certificate with a random serial: the start of both the
// CA and every leaf.
X509Ptr newV3Certificate(std::string* error) {
  X509Ptr cert(X509_new());
  if (!cert) {
    fail(error, "out of memory");
    return nullptr;
  }
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 || !setRandomSerial(cert.get(), error)) {
    if (error->empty()) {
      fail(error, "cannot set the certificate version");
    }
    return nullptr;
  }
  return cert;
}

X509Ptr makeCaCertificate(EVP_PKEY* key, std::string* error) {
  X509Ptr cert = newV3Certificate(error);
  if (!cert) {
    return nullptr;
  }
  // Back-dated like the leaves, for clients whose clocks run behind. Both
  // ends come from one reading of the clock so the span is exact.
  std::time_t now = std::time(nullptr);
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), now - kLeafBackdateSeconds) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), now + kCaValidityDays * 86400) == nullptr) {
    fail(error, "cannot set the validity period");
    return nullptr;
  }
  // The CN names the machine so that a person looking at a trust store with
  // several Switchyard CAs can tell them apart. It must fit in 64 characters.
  const std::string prefix = "Switchyard local CA (";
  std::string host = localHostName();
  size_t room = kMaxCommonNameLength - prefix.size() - 1;
  if (host.size() > room) {
    host.resize(room);
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!addNameEntry(name, "O", "Switchyard", error) ||
      !addNameEntry(name, "CN", prefix + host + ")", error) ||
      X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key) != 1) {
    if (error->empty()) {
      fail(error, "cannot set the CA names");
    }
    return nullptr;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  // pathlen:0: the CA signs leaves only, so a stolen key cannot mint
  // intermediate CAs that clients would accept.
  if (!addConfExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0",
                        error) ||
      !addConfExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", error) ||
      !addConfExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash", error)) {
    return nullptr;
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) {
    fail(error, "cannot sign the CA certificate");
    return nullptr;
  }
  return cert;
}

// Creates `path` exclusively and writes `data` to it, durably. The mode is set
// on the descriptor before the first byte is written, so a secret is never
// readable by others, not even for an instant, whatever the umask.
bool writeNewFile(const std::string& path, const std::string& data, mode_t mode,
                  std::string* error) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    *error = errnoText("cannot create", path);
    return false;
  }
  bool ok = fchmod(fd, mode) == 0;
  size_t done = 0;
  while (ok && done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    ok = n > 0;
    if (ok) {
      done += static_cast<size_t>(n);
    }
  }
  ok = ok && fsync(fd) == 0;
  if (!ok) {
    *error = errnoText("cannot write", path);
  }
  if (close(fd) != 0 && ok) {
    *error = errnoText("cannot write", path);
    ok = false;
  }
  if (!ok) {
    unlink(path.c_str());
  }
  return ok;
}

// A name for a temporary file next to `final_path`, unique enough with the
// pid and a random number; O_EXCL catches the rest.
std::string tempPathFor(const std::string& final_path) {
  unsigned int salt = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&salt), sizeof(salt));
  size_t slash = final_path.rfind('/');
  std::string dir = final_path.substr(0, slash + 1);
  std::string base = final_path.substr(slash + 1);
  return dir + "." + base + ".tmp." + std::to_string(getpid()) + "." + std::to_string(salt);
}

// Creates `dir` and its missing parents with mode 0700: the directory will
// hold the CA key, and parents we create ourselves have no reason to be more
// open than that.
bool makeDirectories(const std::string& dir, std::string* error) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      *error = dir + " exists and is not a directory";
      return false;
    }
    return true;
  }
  if (errno != ENOENT) {
    *error = errnoText("cannot use directory", dir);
    return false;
  }
  size_t slash = dir.find_last_not_of('/');
  slash = slash == std::string::npos ? std::string::npos : dir.rfind('/', slash);
  if (slash != std::string::npos && slash > 0) {
    if (!makeDirectories(dir.substr(0, slash), error)) {
      return false;
    }
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = errnoText("cannot create directory", dir);
    return false;
  }
  return true;
}

bool readWholeFd(int fd, std::string* out) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return false;
    }
    if (n == 0) {
      return true;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

// Reads a regular file. The stat comes from the same descriptor as the bytes,
// so the mode we check is the mode of the file we read.
bool readRegularFile(const std::string& path, std::string* data, struct stat* st,
                     std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    *error = errnoText("cannot open", path);
    return false;
  }
  bool ok = fstat(fd, st) == 0;
  if (ok && !S_ISREG(st->st_mode)) {
    close(fd);
    *error = path + " is not a regular file";
    return false;
  }
  ok = ok && readWholeFd(fd, data);
  if (!ok) {
    *error = errnoText("cannot read", path);
  }
  close(fd);
  return ok;
}

// Refuses encrypted keys instead of letting OpenSSL prompt on a terminal.
int noPassphrase(char*, int, int, void*) {
  return -1;
}

bool timeToEpoch(const ASN1_TIME* t, std::time_t* out) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) {
    return false;
  }
  *out = timegm(&tm);
  return true;
}

std::string formatTime(const ASN1_TIME* t) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), t) != 1) {
    return "?";
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

bool isLdhChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Builds the subjectAltName for one host: iPAddress with the raw address
// bytes, or dNSName with the ASCII name.
GeneralNamesPtr makeSubjectAltName(const std::string& host, bool is_ip) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (!names || name == nullptr) {
    GENERAL_NAME_free(name);
    return nullptr;
  }
  bool ok = false;
  if (is_ip) {
    unsigned char addr[16];
    int len = 0;
    if (inet_pton(AF_INET, host.c_str(), addr) == 1) {
      len = 4;
    } else if (inet_pton(AF_INET6, host.c_str(), addr) == 1) {
      len = 16;
    }
    ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
    ok = len > 0 && value != nullptr && ASN1_OCTET_STRING_set(value, addr, len) == 1;
    if (ok) {
      GENERAL_NAME_set0_value(name, GEN_IPADD, value);
    } else {
      ASN1_OCTET_STRING_free(value);
    }
  } else {
    ASN1_IA5STRING* value = ASN1_IA5STRING_new();
    ok =
        value != nullptr && ASN1_STRING_set(value, host.data(), static_cast<int>(host.size())) == 1;
    if (ok) {
      GENERAL_NAME_set0_value(name, GEN_DNS, value);
    } else {
      ASN1_IA5STRING_free(value);
    }
  }
  if (!ok || sk_GENERAL_NAME_push(names.get(), name) == 0) {
    GENERAL_NAME_free(name);
    return nullptr;
  }
  return names;
}

}  // namespace

std::string drainOpensslErrors() {
  std::string out;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out;
}

CaFiles caFilesIn(const std::string& dir) {
  return CaFiles{joinPath(dir, kCaCertName), joinPath(dir, kCaKeyName)};
}

std::string sha256Fingerprint(const X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), md, &len) != 1) {
    drainOpensslErrors();
    return {};
  }
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i > 0) {
      out += ':';
    }
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

bool createCa(const std::string& dir, bool force, std::string* error, CaFiles* files) {
  error->clear();
  if (dir.empty()) {
    *error = "no CA directory given";
    return false;
  }
  CaFiles paths = caFilesIn(dir);
  if (!force) {
    for (const std::string* path : {&paths.cert_path, &paths.key_path}) {
      struct stat st;
      if (lstat(path->c_str(), &st) == 0) {
        *error = *path +
                 " already exists; use --force to replace the CA (every client that trusts "
                 "the old one must then be given the new ca.crt)";
        return false;
      }
    }
  }
  if (!makeDirectories(dir, error)) {
    return false;
  }
  // Checked up front so the message names the directory, not a temporary file.
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    *error = errnoText("cannot write in directory", dir);
    return false;
  }

  PkeyPtr key = generateKey(error);
  if (!key) {
    return false;
  }
  X509Ptr cert = makeCaCertificate(key.get(), error);
  if (!cert) {
    return false;
  }
  std::string cert_pem = pemOf(cert.get());
  std::string key_pem;
  if (cert_pem.empty()) {
    return fail(error, "cannot encode the CA certificate");
  }
  if (!keyPemOf(key.get(), &key_pem, error)) {
    return false;
  }

  // Both files are written under temporary names first and then put in place,
  // so a reader never sees half a file. Without --force the final step is
  // link(), which fails atomically if someone created the file meanwhile;
  // with --force it is rename(), which replaces the old file in one step.
  // The key goes first: if we die between the two steps, load() reports a
  // key that does not match the certificate rather than using a stale pair.
  std::string key_tmp = tempPathFor(paths.key_path);
  std::string cert_tmp = tempPathFor(paths.cert_path);
  bool ok = writeNewFile(key_tmp, key_pem, 0600, error);
  wipe(&key_pem);
  if (!ok) {
    return false;
  }
  if (!writeNewFile(cert_tmp, cert_pem, 0644, error)) {
    unlink(key_tmp.c_str());
    return false;
  }
  auto place = [force, error](const std::string& tmp, const std::string& final_path) {
    int rc =
        force ? rename(tmp.c_str(), final_path.c_str()) : link(tmp.c_str(), final_path.c_str());
    if (rc != 0) {
      if (errno == EEXIST) {
        *error = final_path + " already exists; use --force to replace the CA";
      } else {
        *error = errnoText("cannot create", final_path);
      }
      return false;
    }
    return true;
  };
  ok = place(key_tmp, paths.key_path);
  if (ok && !place(cert_tmp, paths.cert_path)) {
    // Undo the key we just linked, but never a key we renamed over an old
    // one (that old key is gone either way).
    if (!force) {
      unlink(paths.key_path.c_str());
    }
    ok = false;
  }
  // After link() the temporary names still exist; after rename() they are gone
  // and these calls fail harmlessly.
  unlink(key_tmp.c_str());
  unlink(cert_tmp.c_str());
  if (!ok) {
    return false;
  }
  // Make the new directory entries durable too.
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  if (files != nullptr) {
    *files = paths;
  }
  return true;
}

bool canonicalLeafHost(const std::string& host, std::string* canonical, bool* is_ip,
                       std::string* error) {
  std::string h = host;
  bool bracketed = h.size() >= 2 && h.front() == '[' && h.back() == ']';
  if (bracketed) {
    h = h.substr(1, h.size() - 2);
  }
  if (h.empty()) {
    *error = "empty host";
    return false;
  }
  unsigned char addr[16];
  char text[INET6_ADDRSTRLEN];
  if (!bracketed && inet_pton(AF_INET, h.c_str(), addr) == 1) {
    inet_ntop(AF_INET, addr, text, sizeof(text));
    *canonical = text;
    *is_ip = true;
    return true;
  }
  if (inet_pton(AF_INET6, h.c_str(), addr) == 1) {
    inet_ntop(AF_INET6, addr, text, sizeof(text));
    *canonical = text;
    *is_ip = true;
    return true;
  }
  if (bracketed) {
    *error = "'" + host + "' is bracketed but not an IPv6 address (zones are not allowed)";
    return false;
  }
  // A name. Certificates carry names in ASCII: an IDN must arrive as its
  // A-label (xn--…), converted by the caller with the same IDNA rules it
  // used for matching.
  if (h.back() == '.') {
    h.pop_back();
  }
  if (h.empty() || h.size() > 253) {
    *error = "'" + host + "' is not a valid host name (length)";
    return false;
  }
  size_t label_len = 0;
  for (char& c : h) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      *error = "'" + host + "' is not ASCII; give its IDNA A-label (xn--...)";
      return false;
    }
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c == '.') {
      if (label_len == 0) {
        *error = "'" + host + "' has an empty label";
        return false;
      }
      label_len = 0;
      continue;
    }
    if (!isLdhChar(c)) {
      *error = "'" + host + "' contains a character not allowed in a host name";
      return false;
    }
    if (++label_len > 63) {
      *error = "'" + host + "' has a label longer than 63 characters";
      return false;
    }
  }
  if (label_len == 0) {
    *error = "'" + host + "' has an empty label";
    return false;
  }
  *canonical = h;
  *is_ip = false;
  return true;
}

std::string CertificateAuthority::Leaf::pem() const {
  return cert ? pemOf(cert.get()) : std::string();
}

CertificateAuthority::~CertificateAuthority() = default;

std::unique_ptr<CertificateAuthority> CertificateAuthority::load(const std::string& dir,
                                                                 std::string* error) {
  error->clear();
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->files_ = caFilesIn(dir);
  const std::string& cert_path = ca->files_.cert_path;
  const std::string& key_path = ca->files_.key_path;

  std::string cert_pem;
  struct stat st;
  if (!readRegularFile(cert_path, &cert_pem, &st, error)) {
    return nullptr;
  }
  BioPtr cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  X509* raw_cert =
      cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (raw_cert == nullptr) {
    fail(error, cert_path + " does not hold a PEM certificate");
    return nullptr;
  }
  ca->cert_.reset(raw_cert, X509_free);

  std::string key_pem;
  if (!readRegularFile(key_path, &key_pem, &st, error)) {
    return nullptr;
  }
  if ((st.st_mode & 077) != 0) {
    wipe(&key_pem);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *error = key_path + " is accessible by group or others (mode " + mode + "); run chmod 600 " +
             key_path;
    return nullptr;
  }
  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  ca->key_.reset(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, noPassphrase, nullptr)
                         : nullptr);
  key_bio.reset();
  wipe(&key_pem);
  if (!ca->key_) {
    fail(error, key_path + " does not hold an unencrypted PEM private key");
    return nullptr;
  }

  X509* cert = ca->cert_.get();
  if (X509_check_private_key(cert, ca->key_.get()) != 1) {
    fail(error, key_path + " is not the key of " + cert_path);
    return nullptr;
  }
  // X509_get_extension_flags() also decodes the extensions; EXFLAG_INVALID
  // means one of them is malformed.
  uint32_t flags = X509_get_extension_flags(cert);
  if ((flags & EXFLAG_INVALID) != 0 || (flags & EXFLAG_CA) == 0) {
    drainOpensslErrors();
    *error = cert_path + " is not a CA certificate (needs basicConstraints CA:TRUE)";
    return nullptr;
  }
  if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
    *error = cert_path + " may not sign certificates (keyUsage lacks keyCertSign)";
    return nullptr;
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
    *error = cert_path + " is not valid before " + formatTime(X509_get0_notBefore(cert));
    return nullptr;
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
    *error = cert_path + " expired on " + formatTime(X509_get0_notAfter(cert)) +
             "; create a new CA with `switchyard ca init --force`";
    return nullptr;
  }
  if (!timeToEpoch(X509_get0_notAfter(cert), &ca->not_after_)) {
    fail(error, cert_path + " has an unreadable notAfter");
    return nullptr;
  }

  PkeyPtr leaf_key = generateKey(error);
  if (!leaf_key) {
    return nullptr;
  }
  ca->leaf_key_.reset(leaf_key.release(), EVP_PKEY_free);
  ca->issuer_name_.reset(X509_NAME_dup(X509_get_subject_name(cert)));
  if (!ca->issuer_name_) {
    fail(error, "out of memory");
    return nullptr;
  }

  // The extensions that are the same in every leaf, built once.
  struct ConfExt {
    int nid;
    const char* value;
  };
  static const ConfExt kLeafExtensions[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
  };
  for (const ConfExt& e : kLeafExtensions) {
    X509ExtensionPtr ext = makeConfExtension(e.nid, e.value, error);
    if (!ext) {
      return nullptr;
    }
    ca->leaf_extensions_.push_back(std::move(ext));
  }
  // authorityKeyIdentifier = the CA's subjectKeyIdentifier, when it has one
  // (ours always does; a CA brought from elsewhere may not).
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert);
  if (ski != nullptr) {
    AUTHORITY_KEYID* akid = AUTHORITY_KEYID_new();
    if (akid == nullptr || (akid->keyid = ASN1_OCTET_STRING_dup(ski)) == nullptr) {
      AUTHORITY_KEYID_free(akid);
      fail(error, "out of memory");
      return nullptr;
    }
    X509ExtensionPtr ext(X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid));
    AUTHORITY_KEYID_free(akid);
    if (!ext) {
      fail(error, "cannot build authorityKeyIdentifier");
      return nullptr;
    }
    ca->leaf_extensions_.push_back(std::move(ext));
  }
  return ca;
}

std::shared_ptr<const CertificateAuthority::Leaf> CertificateAuthority::mint(
    const std::string& host, std::string* error) const {
  error->clear();
  std::string name;
  bool is_ip = false;
  if (!canonicalLeafHost(host, &name, &is_ip, error)) {
    return nullptr;
  }
  X509Ptr cert = newV3Certificate(error);
  if (!cert) {
    return nullptr;
  }

  // Validity: an hour back for skewed clients, a week ahead, clipped to the
  // CA's own end so that no leaf outlives its issuer.
  std::time_t now = std::time(nullptr);
  if (now >= not_after_) {
    *error = files_.cert_path + " has expired; create a new CA with `switchyard ca init --force`";
    return nullptr;
  }
  std::time_t not_after = now + kLeafValidityDays * 86400;
  if (not_after > not_after_) {
    not_after = not_after_;
  }
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), now - kLeafBackdateSeconds) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after) == nullptr) {
    fail(error, "cannot set the validity period");
    return nullptr;
  }

  std::string cn = name.substr(0, kMaxCommonNameLength);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!addNameEntry(subject, "CN", cn, error)) {
    return nullptr;
  }
  if (X509_set_issuer_name(cert.get(), issuer_name_.get()) != 1 ||
      X509_set_pubkey(cert.get(), leaf_key_.get()) != 1) {
    fail(error, "cannot set issuer or public key");
    return nullptr;
  }
  for (const X509ExtensionPtr& ext : leaf_extensions_) {
    if (X509_add_ext(cert.get(), ext.get(), -1) != 1) {
      fail(error, "cannot add a leaf extension");
      return nullptr;
    }
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, nullptr, cert.get(), nullptr, nullptr, 0);
  if (!addConfExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash", error)) {
    return nullptr;
  }
  GeneralNamesPtr san = makeSubjectAltName(name, is_ip);
  if (!san ||
      X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, san.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    fail(error, "cannot add subjectAltName for " + name);
    return nullptr;
  }
  // Ed25519/Ed448 CA keys sign without a separate digest.
  const EVP_MD* md = EVP_PKEY_is_a(key_.get(), "ED25519") || EVP_PKEY_is_a(key_.get(), "ED448")
                         ? nullptr
                         : EVP_sha256();
  if (X509_sign(cert.get(), key_.get(), md) == 0) {
    fail(error, "cannot sign the leaf for " + name);
    return nullptr;
  }

  auto leaf = std::make_shared<Leaf>();
  leaf->cert = std::move(cert);
  leaf->key = leaf_key_;
  leaf->issuer = cert_;
  leaf->host = name;
  leaf->not_after = not_after;
  return leaf;
}

}  // namespace switchyard::certs
