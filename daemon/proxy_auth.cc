#include "daemon/proxy_auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace switchyard {

namespace {

constexpr std::string_view kScryptScheme = "scrypt";
constexpr std::string_view kPbkdf2Scheme = "pbkdf2-sha256";
constexpr size_t kCacheSecretBytes = 32;

bool isControl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

bool hasControl(std::string_view s) {
  for (char c : s) {
    if (isControl(static_cast<unsigned char>(c))) {
      return true;
    }
  }
  return false;
}

bool isBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

bool isOws(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isOws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// A decimal number without sign or leading zeros, at most `max`.
bool parseDecimal(std::string_view text, uint64_t max, uint64_t* out) {
  if (text.empty() || (text.size() > 1 && text.front() == '0')) {
    return false;
  }
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value > max) {
    return false;
  }
  *out = value;
  return true;
}

std::vector<std::string_view> splitDollar(std::string_view s) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t at = s.find('$');
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) {
      return parts;
    }
    s.remove_prefix(at + 1);
  }
}

bool randomBytes(size_t n, std::string* out) {
  out->assign(n, '\0');
  return RAND_bytes(reinterpret_cast<unsigned char*>(out->data()), static_cast<int>(n)) == 1;
}

void wipe(std::string* s) {
  if (!s->empty()) {
    OPENSSL_cleanse(s->data(), s->size());
  }
  s->clear();
}

// The salt or key of a line: canonical padded base64 of a length in range.
bool decodeField(std::string_view text, const char* what, size_t min, size_t max, std::string* out,
                 std::string* error) {
  if (!decodeBase64(text, /*allow_unpadded=*/false, out)) {
    *error = std::string(what) + " is not valid base64";
    return false;
  }
  if (out->size() < min || out->size() > max) {
    *error = std::string(what) + " must be " + std::to_string(min) + " to " + std::to_string(max) +
             " bytes, not " + std::to_string(out->size());
    return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// Free functions.

bool validUserName(std::string_view user, std::string* why) {
  if (user.empty()) {
    *why = "the user name is empty";
    return false;
  }
  if (user.size() > kMaxUserNameBytes) {
    *why = "the user name is longer than " + std::to_string(kMaxUserNameBytes) + " bytes";
    return false;
  }
  if (user.find(':') != std::string_view::npos) {
    *why = "the user name contains ':', which separates it from the password";
    return false;
  }
  if (hasControl(user)) {
    *why = "the user name contains a control character";
    return false;
  }
  if (user.front() == '#') {
    *why = "the user name starts with '#', which marks a comment line";
    return false;
  }
  return true;
}

std::string encodeBase64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

bool decodeBase64(std::string_view text, bool allow_unpadded, std::string* out) {
  out->clear();
  // EVP_DecodeBlock is lenient in ways we are not: it skips surrounding
  // whitespace, and it counts padding as decoded zero bytes. So the alphabet
  // and the padding are checked here, the padding added when it was left
  // out, and its bytes taken off the result afterwards.
  size_t pad = 0;
  while (pad < text.size() && text[text.size() - 1 - pad] == '=') {
    ++pad;
  }
  if (pad > 2) {
    return false;
  }
  std::string_view body = text.substr(0, text.size() - pad);
  for (char c : body) {
    if (!isBase64Char(c)) {
      return false;
    }
  }
  if (body.size() % 4 == 1) {
    return false;
  }
  std::string padded(body);
  if (pad == 0) {
    if (body.size() % 4 != 0 && !allow_unpadded) {
      return false;
    }
    pad = (4 - body.size() % 4) % 4;
    padded.append(pad, '=');
  } else {
    padded.append(pad, '=');
    if (padded.size() % 4 != 0) {
      return false;
    }
  }
  if (padded.empty()) {
    return true;
  }
  out->assign(padded.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()),
                          reinterpret_cast<const unsigned char*>(padded.data()),
                          static_cast<int>(padded.size()));
  if (n < 0 || static_cast<size_t>(n) != out->size()) {
    out->clear();
    return false;
  }
  out->resize(out->size() - pad);
  // Only the canonical form: "QR==" and "QQ==" must not both mean "A".
  if (encodeBase64(*out) != padded) {
    wipe(out);
    return false;
  }
  return true;
}

std::string hashPassword(std::string_view password, std::string* error) {
  return hashPassword(password, ScryptParams{}, error);
}

std::string hashPassword(std::string_view password, const ScryptParams& params,
                         std::string* error) {
  std::string salt;
  if (!randomBytes(kSaltBytes, &salt)) {
    *error = "OpenSSL could not produce random bytes for the salt";
    return {};
  }
  std::string key(kKeyBytes, '\0');
  if (EVP_PBE_scrypt(password.data(), password.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), params.n,
                     params.r, params.p, kScryptMaxMemory,
                     reinterpret_cast<unsigned char*>(key.data()), key.size()) != 1) {
    *error = "scrypt failed (N=" + std::to_string(params.n) + ", r=" + std::to_string(params.r) +
             ", p=" + std::to_string(params.p) + ")";
    return {};
  }
  std::string out = std::string(kScryptScheme) + "$" + std::to_string(params.n) + "$" +
                    std::to_string(params.r) + "$" + std::to_string(params.p) + "$" +
                    encodeBase64(salt) + "$" + encodeBase64(key);
  wipe(&key);
  return out;
}

bool parseBasicCredentials(std::string_view header_value, std::string* user,
                           std::string* password) {
  std::string_view value = trimOws(header_value);
  size_t space = 0;
  while (space < value.size() && !isOws(value[space])) {
    ++space;
  }
  if (!equalsIgnoreCase(value.substr(0, space), "Basic") || space == value.size()) {
    return false;
  }
  std::string_view token = trimOws(value.substr(space));
  // Longest possible encoding of "user:password" within our limits; bounds
  // the decoding work for garbage.
  constexpr size_t kMaxToken = 4 * ((kMaxUserNameBytes + 1 + kMaxPasswordBytes + 2) / 3);
  if (token.empty() || token.size() > kMaxToken) {
    return false;
  }
  std::string decoded;
  if (!decodeBase64(token, /*allow_unpadded=*/true, &decoded)) {
    return false;
  }
  size_t colon = decoded.find(':');
  bool ok = colon != std::string::npos && colon > 0 && colon <= kMaxUserNameBytes &&
            decoded.size() - colon - 1 <= kMaxPasswordBytes && !hasControl(decoded);
  if (ok) {
    user->assign(decoded, 0, colon);
    password->assign(decoded, colon + 1);
  }
  wipe(&decoded);
  return ok;
}

// ---------------------------------------------------------------------------
// UserDb.

UserDbPtr UserDb::load(const std::string& path, std::vector<std::string>* errors) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errors->push_back(path + ": cannot open: " + std::strerror(errno));
    return nullptr;
  }
  std::string text;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      errors->push_back(path + ": cannot read: " + std::strerror(errno));
      ::close(fd);
      return nullptr;
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxFileBytes) {
      errors->push_back(path + ": larger than " + std::to_string(kMaxFileBytes >> 20) +
                        " MiB; not a users file");
      ::close(fd);
      return nullptr;
    }
  }
  ::close(fd);
  return parse(text, path, errors);
}

UserDbPtr UserDb::parse(std::string_view text, const std::string& name,
                        std::vector<std::string>* errors, Clock clock) {
  std::shared_ptr<UserDb> db(new UserDb());
  db->clock_ = std::move(clock);
  std::unordered_map<std::string, size_t> first_line;
  bool ok = true;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    auto fail = [&](const std::string& message) {
      errors->push_back(name + ":" + std::to_string(line_no) + ": " + message);
      ok = false;
    };
    if (trimOws(line).empty() || line.front() == '#') {
      continue;
    }
    if (line.back() == '\r') {
      fail("the line ends with a carriage return (CRLF line endings are not supported)");
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      // The line is not echoed: it may be a password pasted in by mistake.
      fail("expected user:hash, found no ':'");
      continue;
    }
    std::string user(line.substr(0, colon));
    std::string why;
    if (!validUserName(user, &why)) {
      fail(why);
      continue;
    }
    Entry entry;
    if (!parseEntry(line.substr(colon + 1), &entry, &why)) {
      fail("user \"" + user + "\": " + why);
      continue;
    }
    auto [it, inserted] = first_line.emplace(user, line_no);
    if (!inserted) {
      fail("user \"" + user + "\" again (first on line " + std::to_string(it->second) + ")");
      continue;
    }
    db->users_.emplace(std::move(user), std::move(entry));
  }
  if (!ok) {
    return nullptr;
  }
  // The stand-in for unknown users costs what a default entry costs; its
  // salt and key are random, so no password matches it.
  db->dummy_.scheme = Scheme::kScrypt;
  if (!randomBytes(kSaltBytes, &db->dummy_.salt) || !randomBytes(kKeyBytes, &db->dummy_.key) ||
      !randomBytes(kCacheSecretBytes, &db->cache_secret_)) {
    errors->push_back(name + ": OpenSSL could not produce random bytes");
    return nullptr;
  }
  return db;
}

bool UserDb::parseEntry(std::string_view hash, Entry* entry, std::string* error) {
  std::vector<std::string_view> parts = splitDollar(hash);
  if (parts[0] == kScryptScheme) {
    if (parts.size() != 6) {
      *error = "expected scrypt$N$r$p$salt$key";
      return false;
    }
    entry->scheme = Scheme::kScrypt;
    uint64_t n = 0;
    uint64_t r = 0;
    uint64_t p = 0;
    if (!parseDecimal(parts[1], kScryptMaxN, &n) || n < kScryptMinN || (n & (n - 1)) != 0) {
      *error = "scrypt N must be a power of two from " + std::to_string(kScryptMinN) + " to " +
               std::to_string(kScryptMaxN);
      return false;
    }
    if (!parseDecimal(parts[2], kScryptMaxCost, &r) || r == 0) {
      *error = "scrypt r must be a positive integer";
      return false;
    }
    if (!parseDecimal(parts[3], kScryptMaxCost, &p) || p == 0) {
      *error = "scrypt p must be a positive integer";
      return false;
    }
    // N <= 2^20 and r, p <= 2^22 here, and N*r*p is only formed once N*r
    // passed, so no product overflows.
    if (n * r > kScryptMaxCost || n * r * p > kScryptMaxCost) {
      *error = "scrypt parameters cost more than N*r*p = " + std::to_string(kScryptMaxCost);
      return false;
    }
    if (128 * r * (n + 2 + p) > kScryptMaxMemory) {
      *error =
          "scrypt parameters need more than " + std::to_string(kScryptMaxMemory >> 20) + " MiB";
      return false;
    }
    entry->scrypt = ScryptParams{n, static_cast<uint32_t>(r), static_cast<uint32_t>(p)};
    return decodeField(parts[4], "salt", kMinSaltBytes, kMaxSaltBytes, &entry->salt, error) &&
           decodeField(parts[5], "key", kMinKeyBytes, kMaxKeyBytes, &entry->key, error);
  }
  if (parts[0] == kPbkdf2Scheme) {
    if (parts.size() != 4) {
      *error = "expected pbkdf2-sha256$iterations$salt$key";
      return false;
    }
    entry->scheme = Scheme::kPbkdf2Sha256;
    if (!parseDecimal(parts[1], kPbkdf2MaxIterations, &entry->iterations) ||
        entry->iterations < kPbkdf2MinIterations) {
      *error = "pbkdf2-sha256 iterations must be from " + std::to_string(kPbkdf2MinIterations) +
               " to " + std::to_string(kPbkdf2MaxIterations);
      return false;
    }
    return decodeField(parts[2], "salt", kMinSaltBytes, kMaxSaltBytes, &entry->salt, error) &&
           decodeField(parts[3], "key", kMinKeyBytes, kMaxKeyBytes, &entry->key, error);
  }
  // The scheme is not echoed: a plain password in its place would end up in
  // the log.
  *error = "unknown hash scheme (expected scrypt$... or pbkdf2-sha256$...)";
  return false;
}

bool UserDb::derive(const Entry& entry, std::string_view password, std::string* out) {
  out->assign(entry.key.size(), '\0');
  auto* key = reinterpret_cast<unsigned char*>(out->data());
  const auto* salt = reinterpret_cast<const unsigned char*>(entry.salt.data());
  if (entry.scheme == Scheme::kScrypt) {
    return EVP_PBE_scrypt(password.data(), password.size(), salt, entry.salt.size(), entry.scrypt.n,
                          entry.scrypt.r, entry.scrypt.p, kScryptMaxMemory, key, out->size()) == 1;
  }
  // The int casts are safe: passwords, salts and keys are bounded far below
  // INT_MAX, and so are the iterations.
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt,
                           static_cast<int>(entry.salt.size()), static_cast<int>(entry.iterations),
                           EVP_sha256(), static_cast<int>(out->size()), key) == 1;
}

bool UserDb::verify(std::string_view user, std::string_view password) const {
  if (password.size() > kMaxPasswordBytes) {
    return false;
  }
  std::string derived;
  auto it = users_.find(std::string(user));
  if (it == users_.end()) {
    // Pay for a KDF anyway, so that an unknown name answers as slowly as a
    // known one with a wrong password.
    derive(dummy_, password, &derived);
    wipe(&derived);
    dummy_runs_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  CacheKey key = cacheKey(user, password);
  if (cacheLookup(key)) {
    cache_hits_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  const Entry& entry = it->second;
  kdf_runs_.fetch_add(1, std::memory_order_relaxed);
  bool ok = derive(entry, password, &derived) &&
            CRYPTO_memcmp(derived.data(), entry.key.data(), entry.key.size()) == 0;
  wipe(&derived);
  if (ok) {
    cacheInsert(std::move(key));
  }
  return ok;
}

bool UserDb::verifyCached(std::string_view user, std::string_view password) const {
  // The cache holds successes only, so the users map need not be consulted
  // (and its lookup cannot hint at which names exist).
  if (password.size() > kMaxPasswordBytes) {
    return false;
  }
  if (cacheLookup(cacheKey(user, password))) {
    cache_hits_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

UserDb::CacheKey UserDb::cacheKey(std::string_view user, std::string_view password) const {
  std::string message;
  message.reserve(user.size() + 1 + password.size());
  message.append(user);
  message.push_back(':');
  message.append(password);
  CacheKey key(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), cache_secret_.data(), static_cast<int>(cache_secret_.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(),
           reinterpret_cast<unsigned char*>(key.data()), &len) == nullptr) {
    len = 0;  // an empty key is never looked up nor stored
  }
  key.resize(len);
  wipe(&message);
  return key;
}

std::chrono::steady_clock::time_point UserDb::now() const {
  return clock_ ? clock_() : std::chrono::steady_clock::now();
}

bool UserDb::cacheLookup(const CacheKey& key) const {
  if (key.empty()) {
    return false;
  }
  auto t = now();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    return false;
  }
  if (t >= it->second->expires) {
    lru_.erase(it->second);
    index_.erase(it);
    return false;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return true;
}

void UserDb::cacheInsert(CacheKey key) const {
  if (key.empty()) {
    return;
  }
  auto expires = now() + kCacheTtl;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= kCacheCapacity) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  lru_.push_front(CacheSlot{key, expires});
  index_.emplace(std::move(key), lru_.begin());
}

UserDb::Stats UserDb::statsForTest() const {
  Stats s;
  s.kdf_runs = kdf_runs_.load();
  s.dummy_runs = dummy_runs_.load();
  s.cache_hits = cache_hits_.load();
  s.evictions = evictions_.load();
  std::lock_guard<std::mutex> lock(mutex_);
  s.cached = lru_.size();
  return s;
}

// ---------------------------------------------------------------------------
// AuthJob.

AuthJob* AuthJob::start(uv_loop_t* loop, UserDbPtr users, std::string user, std::string password,
                        Done done) {
  auto* job = new AuthJob();
  job->users_ = std::move(users);
  job->user_ = std::move(user);
  job->password_ = std::move(password);
  job->done_ = std::move(done);
  job->work_.data = job;
  int rc = uv_queue_work(
      loop, &job->work_,
      [](uv_work_t* w) {
        // A pool thread: only the job's own fields and the thread-safe
        // verify() are touched here.
        auto* j = static_cast<AuthJob*>(w->data);
        j->ok_ = j->users_ != nullptr && j->users_->verify(j->user_, j->password_);
      },
      [](uv_work_t* w, int status) {
        // The loop thread. `done` is moved out before it runs and the job
        // freed only after it returns, so a cancel() from inside it is
        // harmless.
        auto* j = static_cast<AuthJob*>(w->data);
        Done done = std::move(j->done_);
        j->done_ = nullptr;
        if (done) {
          done(status == 0 && j->ok_);
        }
        delete j;
      });
  if (rc != 0) {
    delete job;
    return nullptr;
  }
  return job;
}

void AuthJob::cancel() {
  done_ = nullptr;
  // Skips the KDF when the work has not started; otherwise it finishes and
  // the completion only frees the job.
  uv_cancel(reinterpret_cast<uv_req_t*>(&work_));
}

AuthJob::~AuthJob() {
  wipe(&password_);
}

// ---------------------------------------------------------------------------
// Challenges and refusals.

std::string_view credentialsField(AuthKind kind) {
  return kind == AuthKind::kProxy ? "Proxy-Authorization" : "Authorization";
}

std::string_view challengeField(AuthKind kind) {
  return kind == AuthKind::kProxy ? "Proxy-Authenticate" : "WWW-Authenticate";
}

std::string basicChallenge() {
  return "Basic realm=\"" + std::string(kAuthRealm) + "\", charset=\"UTF-8\"";
}

bool extractCredentials(const HeaderList& headers, AuthKind kind, std::string* user,
                        std::string* password, AuthFailure* failure) {
  std::string_view field = credentialsField(kind);
  size_t count = headers.count(field);
  if (count == 0) {
    *failure = AuthFailure::kMissing;
    return false;
  }
  // Two fields could be read two ways (the first, the last): refuse both.
  if (count > 1 || !parseBasicCredentials(*headers.find(field), user, password)) {
    *failure = AuthFailure::kMalformed;
    return false;
  }
  return true;
}

ProxyError authenticationError(AuthKind kind, AuthFailure failure) {
  ProxyError e;
  bool proxy = kind == AuthKind::kProxy;
  e.status = proxy ? 407 : 401;
  e.kind = ProxyErrorKind::kHttpRequestDenied;
  switch (failure) {
    case AuthFailure::kMissing:
      e.details = proxy ? "proxy authentication required: send Basic credentials (curl "
                          "--proxy-user NAME, or http://NAME:PASSWORD@host:port as the proxy)"
                        : "authentication required: send Basic credentials (the go command "
                          "takes them from a ~/.netrc entry for this host)";
      break;
    case AuthFailure::kMalformed:
      e.details = "the " + std::string(credentialsField(kind)) +
                  " field is not exactly one set of Basic credentials";
      break;
    case AuthFailure::kRejected:
      e.details = proxy ? "the proxy rejected the user name or password"
                        : "the user name or password was rejected";
      break;
  }
  e.extra_headers.add(std::string(challengeField(kind)), basicChallenge());
  return e;
}

}  // namespace switchyard
