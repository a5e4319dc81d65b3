#include "rules/gosumdb.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rules/goproxy_list.h"

namespace switchyard::rules {
namespace detail {
namespace {

constexpr std::array<uint32_t, 64> kSha256K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

void sha256Block(const unsigned char* block, std::array<uint32_t, 8>* state) {
  std::array<uint32_t, 64> w{};
  for (int i = 0; i < 16; ++i) {
    w[i] = static_cast<uint32_t>(block[4 * i]) << 24 |
           static_cast<uint32_t>(block[4 * i + 1]) << 16 |
           static_cast<uint32_t>(block[4 * i + 2]) << 8 | static_cast<uint32_t>(block[4 * i + 3]);
  }
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = (*state)[0], b = (*state)[1], c = (*state)[2], d = (*state)[3];
  uint32_t e = (*state)[4], f = (*state)[5], g = (*state)[6], h = (*state)[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + s1 + ch + kSha256K[i] + w[i];
    uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  (*state)[0] += a;
  (*state)[1] += b;
  (*state)[2] += c;
  (*state)[3] += d;
  (*state)[4] += e;
  (*state)[5] += f;
  (*state)[6] += g;
  (*state)[7] += h;
}

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

}  // namespace

void sha256(std::string_view data, unsigned char digest[32]) {
  std::array<uint32_t, 8> state = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  size_t full = data.size() / 64 * 64;
  for (size_t i = 0; i < full; i += 64) {
    sha256Block(bytes + i, &state);
  }
  // Padding: 0x80, zeros, then the bit length as a 64-bit big-endian number,
  // in one or two final blocks.
  std::array<unsigned char, 128> tail{};
  size_t rest = data.size() - full;
  std::memcpy(tail.data(), bytes + full, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (int i = 0; i < 8; ++i) {
    tail[tail_len - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
  }
  for (size_t i = 0; i < tail_len; i += 64) {
    sha256Block(tail.data() + i, &state);
  }
  for (int i = 0; i < 8; ++i) {
    digest[4 * i] = static_cast<unsigned char>(state[i] >> 24);
    digest[4 * i + 1] = static_cast<unsigned char>(state[i] >> 16);
    digest[4 * i + 2] = static_cast<unsigned char>(state[i] >> 8);
    digest[4 * i + 3] = static_cast<unsigned char>(state[i]);
  }
}

bool decodeStdBase64(std::string_view in, std::string* out) {
  out->clear();
  std::string clean;
  clean.reserve(in.size());
  for (char c : in) {
    if (c != '\r' && c != '\n') {
      clean += c;
    }
  }
  if (clean.size() % 4 != 0) {
    return false;
  }
  for (size_t i = 0; i < clean.size(); i += 4) {
    const bool last = i + 4 == clean.size();
    int pad = 0;
    if (last && clean[i + 3] == '=') {
      pad = clean[i + 2] == '=' ? 2 : 1;
    }
    uint32_t group = 0;
    for (int j = 0; j < 4; ++j) {
      int v = 0;
      if (j >= 4 - pad) {
        v = 0;
      } else {
        v = base64Value(clean[i + j]);
        if (v < 0) {
          return false;  // a stray '=' lands here too
        }
      }
      group = group << 6 | static_cast<uint32_t>(v);
    }
    out->push_back(static_cast<char>(group >> 16));
    if (pad < 2) {
      out->push_back(static_cast<char>(group >> 8));
    }
    if (pad < 1) {
      out->push_back(static_cast<char>(group));
    }
  }
  return true;
}

}  // namespace detail

namespace {

bool validUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80                   ? 1
                 : (b >= 0xC2 && b <= 0xDF) ? 2
                 : (b >= 0xE0 && b <= 0xEF) ? 3
                 : (b >= 0xF0 && b <= 0xF4) ? 4
                                            : 0;
    if (len == 0 || i + len > s.size()) {
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      unsigned char lo = 0x80;
      unsigned char hi = 0xBF;
      if (k == 1 && b == 0xE0) {
        lo = 0xA0;
      } else if (k == 1 && b == 0xED) {
        hi = 0x9F;
      } else if (k == 1 && b == 0xF0) {
        lo = 0x90;
      } else if (k == 1 && b == 0xF4) {
        hi = 0x8F;
      }
      if (c < lo || c > hi) {
        return false;
      }
    }
    i += len;
  }
  return true;
}

bool isHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// note.NewVerifier: `<name>+<8 hex hash>+<base64 of 0x01 || 32-byte Ed25519
// key>`, the hash being the first four bytes of SHA-256(name "\n" key).
bool checkVerifierKey(std::string_view vkey, std::string* name, std::string* why) {
  size_t plus1 = vkey.find('+');
  std::string_view n = vkey.substr(0, plus1);
  std::string_view rest =
      plus1 == std::string_view::npos ? std::string_view() : vkey.substr(plus1 + 1);
  size_t plus2 = rest.find('+');
  std::string_view hash16 = rest.substr(0, plus2);
  std::string_view key64 =
      plus2 == std::string_view::npos ? std::string_view() : rest.substr(plus2 + 1);

  bool hash_ok = hash16.size() == 8;
  uint32_t hash = 0;
  for (char c : hash16) {
    if (!isHexDigit(c)) {
      hash_ok = false;
      break;
    }
    hash = hash << 4 | static_cast<uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  std::string key;
  bool key_ok = detail::decodeStdBase64(key64, &key);
  // isValidName: non-empty, valid UTF-8, no white space, no '+'.
  bool name_ok = !n.empty() && validUtf8(n) && detail::goFields(n).size() == 1 &&
                 detail::goFields(n)[0].size() == n.size();
  if (!hash_ok || !key_ok || !name_ok || key.empty()) {
    *why = "malformed verifier id";
    return false;
  }
  unsigned char digest[32];
  std::string material(n);
  material += '\n';
  material += key;
  detail::sha256(material, digest);
  uint32_t want = static_cast<uint32_t>(digest[0]) << 24 | static_cast<uint32_t>(digest[1]) << 16 |
                  static_cast<uint32_t>(digest[2]) << 8 | static_cast<uint32_t>(digest[3]);
  if (want != hash) {
    *why = "invalid verifier hash";
    return false;
  }
  constexpr char kAlgEd25519 = 1;
  if (key[0] != kAlgEd25519) {
    *why = "unknown verifier algorithm";
    return false;
  }
  if (key.size() != 33) {
    *why = "malformed verifier id";
    return false;
  }
  name->assign(n);
  return true;
}

// dbDial's "no funny business" check: https://<name> must parse to a URL
// with only a host and a path, spelled in Go's default escaping, and no
// trailing slash.
bool checkDatabaseName(const std::string& name) {
  if (!name.empty() && name.back() == '/') {
    return false;
  }
  detail::GoUrl u;
  if (!detail::parseGoUrl("https://" + name, &u, nullptr)) {
    return false;
  }
  return u.scheme == "https" && !u.host.empty() && !u.has_user && u.opaque.empty() &&
         u.raw_query.empty() && !u.force_query && u.fragment.empty() && !u.has_raw_path &&
         !u.omit_host;
}

bool checkDatabaseUrl(std::string_view raw, std::string* error) {
  detail::GoUrl u;
  std::string why;
  if (!detail::parseGoUrl(raw, &u, &why)) {
    *error = "invalid GOSUMDB URL: " + why;
    return false;
  }
  bool ok = false;
  if (u.scheme == "http" || u.scheme == "https") {
    ok = !u.host.empty();
  } else if (u.scheme == "file") {
    ok = !u.has_user && u.host.empty() && u.opaque.empty() && u.raw_query.empty() &&
         !u.force_query && u.fragment.empty() && !u.omit_host;
  }
  if (!ok) {
    *error = "invalid GOSUMDB URL (must be http(s)://host[/path] or file:///path): " +
             detail::redactUrl(raw);
  }
  return ok;
}

}  // namespace

bool parseGosumdb(std::string_view value, GosumdbConfig* out, std::string* error) {
  *out = GosumdbConfig();
  std::string v(value.empty() ? kDefaultGosumdb : value);
  // The one alias the go command knows: a mirror of sum.golang.org that is
  // reachable from mainland China, verified with the same key.
  if (v == "sum.golang.google.cn") {
    v = "sum.golang.org https://sum.golang.google.cn";
  }
  if (v == "off") {
    out->off = true;
    return true;
  }
  std::vector<std::string_view> fields = detail::goFields(v);
  std::string key = fields.empty() ? std::string() : std::string(fields[0]);
  if (key == "sum.golang.org") {
    key = std::string(kSumGolangOrgKey);
  }
  if (fields.empty()) {
    *error = "missing GOSUMDB";
    return false;
  }
  if (fields.size() > 2) {
    *error = "invalid GOSUMDB: too many fields";
    return false;
  }
  std::string name;
  std::string why;
  if (!checkVerifierKey(key, &name, &why)) {
    *error = "invalid GOSUMDB: " + why;
    return false;
  }
  if (!checkDatabaseName(name)) {
    *error = "invalid sumdb name (must be host[/path]): " + name;
    return false;
  }
  if (fields.size() == 2 && !checkDatabaseUrl(fields[1], error)) {
    return false;
  }
  out->name = std::move(name);
  out->key = std::move(key);
  if (fields.size() == 2) {
    out->url = std::string(fields[1]);
  }
  return true;
}

}  // namespace switchyard::rules
