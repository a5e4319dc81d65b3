// Proxy authentication: the `access.users_file` (one `user:hash` line per
// user, written by `switchyard passwd`), Basic credentials as clients send
// them, and the 407 / 401 answers that ask for them.
//
// Hashes are salted and slow on purpose, computed by OpenSSL:
//   scrypt$N$r$p$<salt>$<key>           (what `switchyard passwd` writes)
//   pbkdf2-sha256$<iterations>$<salt>$<key>   (accepted, for imported files)
// with N, r, p and iterations in decimal and salt and key in standard base64.
//
// A scrypt verification costs tens of milliseconds and 32 MiB, so
//  - it must never run on the event loop thread: AuthJob runs UserDb::verify()
//    on libuv's thread pool, and UserDb::verify() is thread-safe;
//  - successful verifications are remembered for kCacheTtl in a bounded
//    in-memory cache, so a client that opens a connection per request pays
//    the KDF once per few minutes, not per request. The cache keys are
//    HMAC-SHA256(per-database random key, user ":" password): neither the
//    password nor an offline-crackable digest of it is kept in memory. Only
//    successes are cached; every wrong password pays the full KDF. The cache
//    belongs to one UserDb, so a reload (SIGHUP) starts with an empty one and
//    a changed or deleted user stops working at once.
//
// Timing: the key comparison is CRYPTO_memcmp, and an unknown user costs a
// scrypt with the default parameters too, so response times do not reveal
// which users exist (a user whose line has other parameters than the
// default is distinguishable by timing; `switchyard passwd` writes defaults).
#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/http_message.h"
#include "daemon/proxy_status.h"

namespace switchyard {

// The realm of our challenges. One realm for the whole proxy: the users file
// is the only protection space.
inline constexpr std::string_view kAuthRealm = "switchyard";

// The longest user name `switchyard passwd` accepts and the users file may
// hold; real names are far shorter, this only bounds the work on garbage.
inline constexpr size_t kMaxUserNameBytes = 256;
// The longest password accepted from stdin or in a credential.
inline constexpr size_t kMaxPasswordBytes = 1024;

struct ScryptParams {
  uint64_t n = uint64_t{1} << 15;  // CPU/memory cost, a power of two
  uint32_t r = 8;                  // block size
  uint32_t p = 1;                  // parallelism
};

// Bounds for the parameters of a users file line. Lines outside them are
// errors: weaker ones are not worth protecting, stronger ones would let a
// file entry cost seconds or gigabytes per verification.
inline constexpr uint64_t kScryptMinN = uint64_t{1} << 14;
inline constexpr uint64_t kScryptMaxN = uint64_t{1} << 20;
// N * r * p: 16 times the default cost at most.
inline constexpr uint64_t kScryptMaxCost = uint64_t{1} << 22;
// OpenSSL's memory estimate, 128 * r * (N + 2 + p) bytes, must stay below this.
inline constexpr uint64_t kScryptMaxMemory = uint64_t{256} << 20;
// RFC 8018's minimum; `switchyard passwd` never writes PBKDF2.
inline constexpr uint64_t kPbkdf2MinIterations = 1000;
inline constexpr uint64_t kPbkdf2MaxIterations = 10'000'000;
inline constexpr size_t kMinSaltBytes = 8;
inline constexpr size_t kMaxSaltBytes = 64;
inline constexpr size_t kMinKeyBytes = 16;
inline constexpr size_t kMaxKeyBytes = 64;
// What hashPassword() writes.
inline constexpr size_t kSaltBytes = 16;
inline constexpr size_t kKeyBytes = 32;

// True when `user` may appear in a users file: not empty, at most
// kMaxUserNameBytes, no ':' (the field separator), no control characters
// (RFC 7617 2), and not starting with '#' (a comment line). Otherwise sets
// *why to a sentence naming the problem.
bool validUserName(std::string_view user, std::string* why);

// A new users file hash of `password` with a fresh random 16-byte salt:
// "scrypt$32768$8$1$<salt b64>$<key b64>". Empty on failure (OpenSSL could
// not produce randomness or the KDF failed), with *error set.
std::string hashPassword(std::string_view password, std::string* error);
std::string hashPassword(std::string_view password, const ScryptParams& params, std::string* error);

// Parses a `Proxy-Authorization` / `Authorization` value "Basic <token68>":
// the scheme is case-insensitive, spaces and tabs around the token are
// tolerated, the base64 may omit its padding but must be otherwise exact
// (alphabet, no stray '=', zero trailing bits). The decoded text is
// "user:password", split at the first ':' (a password may hold ':'). False
// for anything else: another scheme, no ':', an empty user, control
// characters in either part (RFC 7617 2), or more than kMaxUserNameBytes /
// kMaxPasswordBytes.
bool parseBasicCredentials(std::string_view header_value, std::string* user, std::string* password);

// Base64 (RFC 4648 4, standard alphabet) with OpenSSL's EVP_EncodeBlock /
// EVP_DecodeBlock. decodeBase64 accepts only the canonical encoding of some
// bytes, padded, or unpadded when `allow_unpadded`.
std::string encodeBase64(std::string_view data);
bool decodeBase64(std::string_view text, bool allow_unpadded, std::string* out);

// ---------------------------------------------------------------------------
// The users file.

class UserDb;
using UserDbPtr = std::shared_ptr<const UserDb>;

class UserDb {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // Successful verifications remembered, least recently used dropped first.
  static constexpr size_t kCacheCapacity = 1024;
  // How long a remembered verification stays valid. Short enough that a
  // stolen connection-level secret is not useful for long, long enough that
  // a busy client pays the KDF rarely.
  static constexpr std::chrono::seconds kCacheTtl{300};
  // Refuse files larger than this (a users file is a few KiB).
  static constexpr size_t kMaxFileBytes = 16 << 20;

  // Reads and parses `path`. Any problem makes the whole file invalid (a
  // half-loaded file would lock users out without saying why): returns
  // nullptr and appends "path:line: message" (or "path: message" when the
  // file cannot be read) to *errors. Blank lines and lines starting with
  // '#' are ignored. An empty file is valid and lets nobody in.
  static UserDbPtr load(const std::string& path, std::vector<std::string>* errors);
  // The same for text already in memory; `name` stands for the path in
  // messages. `clock` (default: steady_clock) drives the cache's expiry.
  static UserDbPtr parse(std::string_view text, const std::string& name,
                         std::vector<std::string>* errors, Clock clock = {});

  // True when `password` is `user`'s. Thread-safe; runs the KDF unless a
  // recent success is cached, so call it off the event loop (AuthJob).
  bool verify(std::string_view user, std::string_view password) const;
  // The cache alone, cheap enough for the event loop: true when this exact
  // pair verified within kCacheTtl. False says nothing; call verify().
  bool verifyCached(std::string_view user, std::string_view password) const;

  size_t size() const { return users_.size(); }

  struct Stats {
    uint64_t kdf_runs = 0;    // KDFs for known users
    uint64_t dummy_runs = 0;  // KDFs for unknown users (timing cover)
    uint64_t cache_hits = 0;  // verifications answered from the cache
    uint64_t evictions = 0;   // cache entries dropped for capacity
    size_t cached = 0;        // entries in the cache now
  };
  Stats statsForTest() const;

  UserDb(const UserDb&) = delete;
  UserDb& operator=(const UserDb&) = delete;

 private:
  enum class Scheme { kScrypt, kPbkdf2Sha256 };
  struct Entry {
    Scheme scheme = Scheme::kScrypt;
    ScryptParams scrypt;
    uint64_t iterations = 0;  // pbkdf2
    std::string salt;
    std::string key;
  };
  using CacheKey = std::string;  // 32 bytes of HMAC-SHA256
  struct CacheSlot {
    CacheKey key;
    std::chrono::steady_clock::time_point expires;
  };

  UserDb() = default;
  static bool parseEntry(std::string_view hash, Entry* entry, std::string* error);
  static bool derive(const Entry& entry, std::string_view password, std::string* out);
  CacheKey cacheKey(std::string_view user, std::string_view password) const;
  std::chrono::steady_clock::time_point now() const;
  bool cacheLookup(const CacheKey& key) const;
  void cacheInsert(CacheKey key) const;

  std::unordered_map<std::string, Entry> users_;
  // Stands in for an unknown user so that it costs what a real one does.
  Entry dummy_;
  std::string cache_secret_;  // random, 32 bytes, per UserDb
  Clock clock_;

  // The cache: `lru_` most recent first, `index_` finds a slot by key.
  // Guarded by `mutex_`; verify() runs on several pool threads at once.
  mutable std::mutex mutex_;
  mutable std::list<CacheSlot> lru_;
  mutable std::unordered_map<CacheKey, std::list<CacheSlot>::iterator> index_;

  mutable std::atomic<uint64_t> kdf_runs_{0};
  mutable std::atomic<uint64_t> dummy_runs_{0};
  mutable std::atomic<uint64_t> cache_hits_{0};
  mutable std::atomic<uint64_t> evictions_{0};
};

// ---------------------------------------------------------------------------
// Verification off the event loop.

// One UserDb::verify() on libuv's thread pool. Its completion runs on the
// loop thread. The job owns copies of the database pointer and of the
// credentials (the password copy is wiped when the job ends), so the caller
// may go away: it calls cancel() first, and the job then frees itself when
// the worker is done, without calling back.
class AuthJob {
 public:
  using Done = std::function<void(bool ok)>;

  // Queues the verification; `done(ok)` runs later on the loop thread,
  // never from inside start(). Returns nullptr when libuv refused the work
  // (then `done` is never called).
  static AuthJob* start(uv_loop_t* loop, UserDbPtr users, std::string user, std::string password,
                        Done done);
  // Loop thread only, before `done` ran: `done` will not run. The pointer
  // must not be used afterwards.
  void cancel();

  AuthJob(const AuthJob&) = delete;
  AuthJob& operator=(const AuthJob&) = delete;

 private:
  AuthJob() = default;
  ~AuthJob();

  uv_work_t work_{};
  UserDbPtr users_;
  std::string user_;
  std::string password_;
  Done done_;
  bool ok_ = false;  // written by the worker, read in the completion
};

// ---------------------------------------------------------------------------
// Asking for credentials.

// kProxy: a request to the proxy (absolute-form or CONNECT):
//   Proxy-Authorization, 407, Proxy-Authenticate.
// kOrigin: an origin-form GOPROXY request, where the go command sends
//   .netrc credentials: Authorization, 401, WWW-Authenticate.
enum class AuthKind { kProxy, kOrigin };

enum class AuthFailure {
  kMissing,    // no credentials field
  kMalformed,  // repeated, not Basic, or not decodable
  kRejected,   // unknown user or wrong password (the two are not told apart)
};

// "Proxy-Authorization" | "Authorization".
std::string_view credentialsField(AuthKind kind);
// "Proxy-Authenticate" | "WWW-Authenticate".
std::string_view challengeField(AuthKind kind);
// `Basic realm="switchyard", charset="UTF-8"` (RFC 7617 2.1).
std::string basicChallenge();

// Takes the credentials of `kind` from `headers`. Returns true and fills
// *user / *password for exactly one well-formed Basic field; otherwise
// false with *failure = kMissing or kMalformed.
bool extractCredentials(const HeaderList& headers, AuthKind kind, std::string* user,
                        std::string* password, AuthFailure* failure);

// The refusal to hand to recordError(): 407 with Proxy-Authenticate, or 401
// with WWW-Authenticate; kind http_request_denied; details that say what
// was wrong without echoing any credential.
ProxyError authenticationError(AuthKind kind, AuthFailure failure);

}  // namespace switchyard
