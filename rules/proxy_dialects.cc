#include "rules/proxy_dialects.h"

#include <climits>
#include <cstdint>
#include <string>

#include "rules/idna.h"

#include <idn2.h>

namespace switchyard::rules {
namespace {

// curl keeps its buffers for IP tokens at this size; longer tokens never match.
constexpr size_t kCurlCheckIpBuffer = 128;

// The C functions curl calls stop at the first NUL byte.
std::string_view cString(std::string_view s) {
  return s.substr(0, s.find('\0'));
}

bool isCurlBlank(char c) {
  return c == ' ' || c == '\t';
}

char asciiUpper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
}

// curl's strncasecompare over two ranges of the same length.
bool curlCaseEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiUpper(a[i]) != asciiUpper(b[i])) {
      return false;
    }
  }
  return true;
}

// glibc's inet_pton(AF_INET): four decimal fields, no leading zeros, each at
// most 255, nothing else. Returns the address in host byte order.
std::optional<uint32_t> inetPton4(std::string_view s) {
  uint32_t address = 0;
  uint32_t octet = 0;
  int octets = 0;
  bool saw_digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      const uint32_t next = octet * 10 + static_cast<uint32_t>(c - '0');
      if (saw_digit && octet == 0) {
        return std::nullopt;
      }
      if (next > 255) {
        return std::nullopt;
      }
      octet = next;
      if (!saw_digit) {
        if (++octets > 4) {
          return std::nullopt;
        }
        saw_digit = true;
      }
    } else if (c == '.' && saw_digit) {
      if (octets == 4) {
        return std::nullopt;
      }
      address = (address << 8) | octet;
      octet = 0;
      saw_digit = false;
    } else {
      return std::nullopt;
    }
  }
  if (octets < 4) {
    return std::nullopt;
  }
  return (address << 8) | octet;
}

// glibc's atoi(): (int)strtol(s, NULL, 10) on a 64-bit long. strtol skips
// leading C-locale white space, takes a sign, and saturates on overflow; the
// cast to int then keeps the low 32 bits.
int curlAtoi(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) {
    ++i;
  }
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    negative = s[i] == '-';
    ++i;
  }
  // Accumulate the magnitude, saturating at LONG_MAX + 1 (LONG_MIN's size).
  const uint64_t limit = negative ? uint64_t{1} << 63 : static_cast<uint64_t>(LONG_MAX);
  uint64_t magnitude = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    const auto digit = static_cast<uint64_t>(s[i] - '0');
    if (magnitude > (limit - digit) / 10) {
      magnitude = limit;
    } else {
      magnitude = magnitude * 10 + digit;
    }
  }
  const uint64_t as_long = negative ? (~magnitude + 1) : magnitude;
  return static_cast<int>(static_cast<uint32_t>(as_long));
}

// Curl_cidr4_match(): bits 0 and 32 mean exact equality.
bool curlCidr4Match(std::string_view host, std::string_view network, unsigned int bits) {
  if (bits > 32) {
    return false;
  }
  const auto address = inetPton4(host);
  const auto check = inetPton4(network);
  if (!address || !check) {
    return false;
  }
  if (bits != 0 && bits != 32) {
    const uint32_t mask = 0xFFFFFFFFu << (32 - bits);
    return ((*address ^ *check) & mask) == 0;
  }
  return *address == *check;
}

bool curlNameMatch(std::string_view token, std::string_view name) {
  if (token.back() == '.') {
    token.remove_suffix(1);
  }
  if (!token.empty() && token.front() == '.') {
    token.remove_prefix(1);
  }
  if (token.size() == name.size()) {
    return curlCaseEqual(token, name);
  }
  if (token.size() < name.size()) {
    const size_t tail = name.size() - token.size();
    return name[tail - 1] == '.' && curlCaseEqual(token, name.substr(tail));
  }
  return false;
}

bool curlIpv4Match(std::string_view token, std::string_view name) {
  if (token.size() >= kCurlCheckIpBuffer) {
    return false;
  }
  unsigned int bits = 0;
  const size_t slash = token.find('/');
  if (slash != std::string_view::npos) {
    bits = static_cast<unsigned int>(curlAtoi(token.substr(slash + 1)));
    token = token.substr(0, slash);
  }
  return curlCidr4Match(name, token, bits);
}

// curl 7.88.1 converts a non-ASCII host to ACE before the no_proxy check:
// libidn2 lookup, non-transitional, retried as transitional. When both fail
// curl refuses the URL; the raw name is kept here so the answer stays defined.
std::string curlAceHost(std::string_view name) {
  if (isAscii(name)) {
    return std::string(name);
  }
  const std::string input(name);
  for (int flags : {IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL, int{IDN2_TRANSITIONAL}}) {
    uint8_t* output = nullptr;
    const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(input.c_str()), &output, flags);
    if (rc == IDN2_OK && output != nullptr) {
      std::string ace(reinterpret_cast<const char*>(output));
      idn2_free(output);
      return ace;
    }
    idn2_free(output);
  }
  return input;
}

bool isPythonSpace(char32_t rune) {
  return (rune >= 0x1C && rune <= 0x1F) || isGoSpace(rune);
}

// Python's str.strip() with no argument. Bytes that are not valid UTF-8 stand
// for surrogate escapes, which are not white space.
std::string_view pythonStrip(std::string_view s) {
  while (!s.empty()) {
    auto [rune, size] = decodeUtf8Rune(s);
    if ((size == 1 && static_cast<unsigned char>(s[0]) >= 0x80) || !isPythonSpace(rune)) {
      break;
    }
    s.remove_prefix(size);
  }
  while (!s.empty()) {
    // Find the start of the last rune, then check that it decodes exactly.
    size_t start = s.size() - 1;
    while (start > 0 && s.size() - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
      --start;
    }
    auto [rune, size] = decodeUtf8Rune(s.substr(start));
    const bool valid =
        start + size == s.size() && !(size == 1 && static_cast<unsigned char>(s[start]) >= 0x80);
    if (!valid || !isPythonSpace(rune)) {
      break;
    }
    s.remove_suffix(size);
  }
  return s;
}

// Python's str.lower(): full lowercase mapping. Only U+0130 lowers to two
// characters; the context-dependent final sigma rule is not reproduced.
// Undecodable bytes (surrogate escapes) are kept as they are.
std::string pythonLower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    auto [rune, size] = decodeUtf8Rune(s);
    if (size == 1 && static_cast<unsigned char>(s[0]) >= 0x80) {
      out.push_back(s[0]);
    } else if (rune == 0x130) {
      out += "i\xCC\x87";
    } else {
      appendUtf8Rune(&out, simpleLowerRune(rune));
    }
    s.remove_prefix(size);
  }
  return out;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool curlBypass(std::string_view no_proxy, std::string_view host, uint16_t effective_port) {
  (void)effective_port;  // curl 7.88.1 has no port matching at all.
  no_proxy = cString(no_proxy);
  const std::string ace = curlAceHost(cString(host));
  std::string_view name = ace;
  if (name.empty() || no_proxy.empty()) {
    return false;
  }
  if (no_proxy == "*") {
    return true;
  }
  // curl 7.88.1's URL layer strips the brackets of an IPv6 host before the
  // no_proxy check, which then treats the address as a name.
  if (name.front() == '[') {
    const size_t end = name.find(']');
    if (end == std::string_view::npos) {
      return false;
    }
    name = name.substr(1, end - 1);
  }
  const bool ipv4 = inetPton4(name).has_value();
  if (!ipv4 && !name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  size_t p = 0;
  while (p < no_proxy.size()) {
    while (p < no_proxy.size() && isCurlBlank(no_proxy[p])) {
      ++p;
    }
    const size_t start = p;
    while (p < no_proxy.size() && !isCurlBlank(no_proxy[p]) && no_proxy[p] != ',') {
      ++p;
    }
    const std::string_view token = no_proxy.substr(start, p - start);
    if (!token.empty()) {
      if (ipv4 ? curlIpv4Match(token, name) : curlNameMatch(token, name)) {
        return true;
      }
    }
    while (p < no_proxy.size() && isCurlBlank(no_proxy[p])) {
      ++p;
    }
    while (p < no_proxy.size() && no_proxy[p] == ',') {
      ++p;
    }
  }
  return false;
}

bool pythonBypass(std::string_view no_proxy, std::string_view host,
                  std::optional<uint16_t> explicit_port) {
  if (no_proxy == "*") {
    return true;
  }
  // Rebuild the URL authority urllib sees: IPv6 in brackets, the port only
  // when the URL wrote one.
  std::string authority;
  if (host.find(':') != std::string_view::npos && (host.empty() || host.front() != '[')) {
    authority = "[" + std::string(host) + "]";
  } else {
    authority = std::string(host);
  }
  if (explicit_port) {
    authority += ":" + std::to_string(*explicit_port);
  }
  const std::string full = pythonLower(authority);
  // _splitport(): the regex (.*):([0-9]*) must match the whole string, so
  // only the last ':' can split, and only when ASCII digits (or nothing)
  // follow it. An empty port still cuts the colon off.
  std::string_view host_only = full;
  const size_t colon = full.rfind(':');
  if (colon != std::string::npos &&
      full.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    host_only = std::string_view(full).substr(0, colon);
  }
  size_t start = 0;
  while (start <= no_proxy.size()) {
    size_t comma = no_proxy.find(',', start);
    if (comma == std::string_view::npos) {
      comma = no_proxy.size();
    }
    std::string_view piece = pythonStrip(no_proxy.substr(start, comma - start));
    start = comma + 1;
    if (piece.empty()) {
      continue;
    }
    while (!piece.empty() && piece.front() == '.') {
      piece.remove_prefix(1);
    }
    const std::string entry = pythonLower(piece);
    if (host_only == entry || full == entry) {
      return true;
    }
    const std::string dotted = "." + entry;
    if (endsWith(host_only, dotted) || endsWith(full, dotted)) {
      return true;
    }
  }
  return false;
}

}  // namespace switchyard::rules
