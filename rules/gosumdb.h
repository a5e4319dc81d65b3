// GOSUMDB (SEMANTICS.md §d): which checksum database the go command trusts,
// parsed as the go command's dbDial does. Whether a module may be looked up
// at all is GONOSUMDB's business (module_pattern.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace switchyard::rules {

inline constexpr std::string_view kDefaultGosumdb = "sum.golang.org";
// The verifier key built into the go command for sum.golang.org.
inline constexpr std::string_view kSumGolangOrgKey =
    "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

struct GosumdbConfig {
  bool off = false;  // GOSUMDB=off: no database for any module
  std::string name;  // database name, `host[/path]` ("sum.golang.org")
  std::string key;   // full verifier key `<name>+<hash>+<base64 key>`
  // Explicit base URL (field 2, or the sum.golang.google.cn alias). When
  // set it is used directly, bypassing GOPROXY; otherwise the GOPROXY list
  // is probed with `<proxy>/sumdb/<name>/supported`, then https://<name>.
  std::optional<std::string> url;
};

// Parses a GOSUMDB value. Empty means the default. "off" (exactly) disables
// the database. Otherwise one or two white-space separated fields: a known
// name (sum.golang.org) or a full verifier key whose hash must match its
// name and Ed25519 key, then an optional URL. "sum.golang.google.cn" alone
// is an alias for "sum.golang.org https://sum.golang.google.cn". Errors use
// the go command's wording ("invalid GOSUMDB: malformed verifier id"…).
//
// Deliberately stricter than the go command, which would only fail on first
// use: the URL must be http(s) with a host, or a path-only file URL.
bool parseGosumdb(std::string_view value, GosumdbConfig* out, std::string* error);

namespace detail {

// SHA-256 of data (FIPS 180-4), used for the verifier key hash.
void sha256(std::string_view data, unsigned char digest[32]);

// encoding/base64 StdEncoding.DecodeString: padded alphabet, '\r' and '\n'
// ignored, non-zero trailing bits accepted.
bool decodeStdBase64(std::string_view in, std::string* out);

}  // namespace detail
}  // namespace switchyard::rules
