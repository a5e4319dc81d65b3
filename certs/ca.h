// The local certificate authority: creating it on disk (`switchyard ca init`),
// loading it at startup, and minting short-lived leaf certificates for the
// hosts whose TLS the proxy terminates (`intercept: true`).
//
// Only OpenSSL 3's EVP/X509 interfaces are used; nothing deprecated.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace switchyard::certs {

// RAII owners for the OpenSSL objects that cross our interfaces.
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct X509ExtensionDeleter {
  void operator()(X509_EXTENSION* ext) const { X509_EXTENSION_free(ext); }
};
struct X509NameDeleter {
  void operator()(X509_NAME* name) const { X509_NAME_free(name); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, X509ExtensionDeleter>;
using X509NamePtr = std::unique_ptr<X509_NAME, X509NameDeleter>;

// File names inside the CA directory.
inline constexpr const char* kCaCertName = "ca.crt";
inline constexpr const char* kCaKeyName = "ca.key";

// Lifetimes. The CA lives long because every client must be taught to trust
// it by hand; leaves live a week because they are minted on demand and cached
// only in memory. Leaves start an hour in the past to tolerate client clocks
// running slightly behind ours.
inline constexpr long kCaValidityDays = 3650;
inline constexpr long kLeafValidityDays = 7;
inline constexpr long kLeafBackdateSeconds = 3600;
// The subject CN attribute is at most 64 characters (RFC 5280 ub-common-name).
inline constexpr size_t kMaxCommonNameLength = 64;

struct CaFiles {
  std::string cert_path;  // DIR/ca.crt, PEM, mode 0644
  std::string key_path;   // DIR/ca.key, PEM (PKCS#8, unencrypted), mode 0600
};

// Paths of the CA files inside `dir` (nothing is touched on disk).
CaFiles caFilesIn(const std::string& dir);

// Creates DIR/ca.crt and DIR/ca.key: an EC P-256 key and a self-signed
// certificate (CA:TRUE critical with pathlen:0, keyUsage keyCertSign + cRLSign
// critical, subjectKeyIdentifier, ~10 years, random 128-bit serial, CN
// "Switchyard local CA (<hostname>)"). DIR is created with mode 0700 when
// missing. The key file is created 0600 from its first byte. Existing files are
// replaced only when `force` is set (atomically, by rename); otherwise the
// call fails and the message mentions --force. On failure returns false and
// sets *error; on success fills *files when given.
bool createCa(const std::string& dir, bool force, std::string* error, CaFiles* files = nullptr);

// "AB:CD:…" — the SHA-256 digest of the DER certificate, as printed by
// `openssl x509 -noout -fingerprint -sha256`.
std::string sha256Fingerprint(const X509* cert);

// Pops every entry of this thread's OpenSSL error queue and joins their texts
// with "; " (empty when the queue was empty). Worker threads call it after a
// failure so that the next job starts with a clean queue.
std::string drainOpensslErrors();

// A CA loaded from disk, ready to mint leaves. Immutable after load(), so
// mint() may run concurrently on any number of threads (libuv workers).
class CertificateAuthority {
 public:
  // One minted leaf. The key is shared by every leaf of the same CA: an EC
  // key pair per host would cost a key generation per first visit and buy
  // nothing, since every leaf already shares the CA as its single point of
  // trust.
  struct Leaf {
    X509Ptr cert;
    std::shared_ptr<EVP_PKEY> key;
    // The CA certificate, sent after the leaf so clients see the full chain.
    std::shared_ptr<X509> issuer;
    std::string host;           // canonical host the leaf was minted for
    std::time_t not_after = 0;  // end of validity, for cache renewal

    // The leaf certificate in PEM.
    std::string pem() const;
  };

  ~CertificateAuthority();
  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  // Loads DIR/ca.crt and DIR/ca.key. Fails (nullptr + *error) when a file is
  // missing or unreadable, the key is accessible by group or others, the key
  // does not belong to the certificate, the certificate is not a CA (no
  // basicConstraints CA:TRUE, or a keyUsage without keyCertSign), or it is
  // outside its validity period. Also generates the shared leaf key.
  static std::unique_ptr<CertificateAuthority> load(const std::string& dir, std::string* error);

  // Mints a leaf for `host`: a DNS name in ASCII (IDNs as their xn-- A-label)
  // or an IP literal (IPv6 with or without brackets). The SAN carries the
  // name (DNS) or the address (IP); the subject CN is the host cut to 64
  // characters. Valid from an hour ago for 7 days, but never past the CA's
  // own end. Returns nullptr + *error for a host that is not a valid name or
  // address, or if OpenSSL fails. Thread-safe.
  std::shared_ptr<const Leaf> mint(const std::string& host, std::string* error) const;

  const X509* cert() const { return cert_.get(); }
  const CaFiles& files() const { return files_; }
  std::string fingerprint() const { return sha256Fingerprint(cert_.get()); }
  std::time_t notAfter() const { return not_after_; }

 private:
  CertificateAuthority() = default;

  CaFiles files_;
  std::shared_ptr<X509> cert_;
  PkeyPtr key_;
  // The key every leaf carries (see Leaf).
  std::shared_ptr<EVP_PKEY> leaf_key_;
  // Built once at load and only read by mint(): X509_add_ext() and
  // X509_set_issuer_name() copy them into each leaf, so workers never touch
  // an object another thread could be modifying.
  X509NamePtr issuer_name_;
  std::vector<X509ExtensionPtr> leaf_extensions_;
  std::time_t not_after_ = 0;
};

// Normalises a leaf host: lowercases names, strips one trailing dot and IPv6
// brackets, and prints IP addresses canonically. Sets *is_ip and returns false
// + *error for anything that cannot go into a certificate (empty, non-ASCII,
// bad characters, labels over 63 or names over 253 characters, IPv6 zones).
bool canonicalLeafHost(const std::string& host, std::string* canonical, bool* is_ip,
                       std::string* error);

}  // namespace switchyard::certs
