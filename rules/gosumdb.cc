#include "rules/gosumdb.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include <openssl/evp.h>

#include "rules/goproxy_list.h"

namespace switchyard::rules {
namespace detail {

void sha256(std::string_view data, unsigned char digest[32]) {
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
}

bool decodeStdBase64(std::string_view in, std::string* out) {
  out->clear();
  // Go ignores CR and LF anywhere; everything else must be padded base64.
  std::string clean;
  clean.reserve(in.size());
  for (char c : in) {
    if (c != '\r' && c != '\n') {
      clean += c;
    }
  }
  // EVP_DecodeBlock skips surrounding blanks, which Go rejects.
  if (clean.size() % 4 != 0 ||
      clean.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
          std::string::npos) {
    return false;
  }
  // '=' only as the last one or two characters: EVP_DecodeBlock would accept
  // padding in the middle of the input, Go does not.
  size_t pad = 0;
  while (pad < 2 && pad < clean.size() && clean[clean.size() - 1 - pad] == '=') {
    ++pad;
  }
  if (clean.find('=') < clean.size() - pad) {
    return false;
  }
  std::string decoded(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) {
    return false;
  }
  decoded.resize(static_cast<size_t>(n) - pad);
  *out = std::move(decoded);
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
