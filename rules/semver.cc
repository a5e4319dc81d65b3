#include "rules/semver.h"

#include <cstddef>

namespace switchyard::rules {
namespace {

constexpr std::string_view kIncompatible = "+incompatible";

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// Semver identifiers are ASCII alphanumerics and '-'.
bool isIdentChar(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

// The pieces of a parsed version, as views into the input. `short_fill` is
// what Canonical appends for the "v1" / "v1.2" shorthands.
struct ParsedSemver {
  std::string_view short_fill;
  std::string_view prerelease;  // includes the leading '-'
  std::string_view build;       // includes the leading '+'
};

// Consumes a decimal number without leading zeros from the front of `*v`.
bool consumeNumber(std::string_view* v) {
  size_t i = 0;
  while (i < v->size() && isDigit((*v)[i])) {
    ++i;
  }
  if (i == 0 || ((*v)[0] == '0' && i > 1)) {
    return false;
  }
  v->remove_prefix(i);
  return true;
}

// True for an all-digit identifier with a leading zero ("01"), which semver
// forbids in prereleases (but allows in build metadata).
bool isBadNumericIdent(std::string_view ident) {
  for (char c : ident) {
    if (!isDigit(c)) {
      return false;
    }
  }
  return ident.size() > 1 && ident[0] == '0';
}

// Consumes "<sep>ident(.ident)*" from the front of `*v`, stopping at `stop`
// (or the end). Identifiers must be non-empty; prereleases also reject
// numeric identifiers with leading zeros.
bool consumeIdents(std::string_view* v, char stop, bool prerelease, std::string_view* out) {
  size_t i = 1;
  size_t start = 1;
  const std::string_view s = *v;
  for (; i < s.size() && s[i] != stop; ++i) {
    if (s[i] == '.') {
      if (start == i || (prerelease && isBadNumericIdent(s.substr(start, i - start)))) {
        return false;
      }
      start = i + 1;
    } else if (!isIdentChar(s[i])) {
      return false;
    }
  }
  if (start == i || (prerelease && isBadNumericIdent(s.substr(start, i - start)))) {
    return false;
  }
  *out = s.substr(0, i);
  v->remove_prefix(i);
  return true;
}

bool parseSemver(std::string_view v, ParsedSemver* p) {
  if (v.empty() || v[0] != 'v') {
    return false;
  }
  v.remove_prefix(1);
  if (!consumeNumber(&v)) {
    return false;
  }
  if (v.empty()) {
    p->short_fill = ".0.0";
    return true;
  }
  if (v[0] != '.') {
    return false;
  }
  v.remove_prefix(1);
  if (!consumeNumber(&v)) {
    return false;
  }
  if (v.empty()) {
    p->short_fill = ".0";
    return true;
  }
  if (v[0] != '.') {
    return false;
  }
  v.remove_prefix(1);
  if (!consumeNumber(&v)) {
    return false;
  }
  if (!v.empty() && v[0] == '-' && !consumeIdents(&v, '+', true, &p->prerelease)) {
    return false;
  }
  if (!v.empty() && v[0] == '+' && !consumeIdents(&v, '\0', false, &p->build)) {
    return false;
  }
  return v.empty();
}

}  // namespace

bool semverIsValid(std::string_view v) {
  ParsedSemver p;
  return parseSemver(v, &p);
}

std::string semverCanonical(std::string_view v) {
  ParsedSemver p;
  if (!parseSemver(v, &p)) {
    return "";
  }
  if (!p.build.empty()) {
    return std::string(v.substr(0, v.size() - p.build.size()));
  }
  std::string out(v);
  out += p.short_fill;
  return out;
}

bool isCanonicalVersion(std::string_view v) {
  ParsedSemver p;
  return parseSemver(v, &p) && p.build.empty() && p.short_fill.empty();
}

bool isCanonicalModuleVersion(std::string_view v) {
  if (v.size() > kIncompatible.size() &&
      v.substr(v.size() - kIncompatible.size()) == kIncompatible) {
    v.remove_suffix(kIncompatible.size());
  }
  return isCanonicalVersion(v);
}

}  // namespace switchyard::rules
