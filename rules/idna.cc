#include "rules/idna.h"

#include <idn2.h>

#include <algorithm>
#include <array>
#include <cstdlib>

namespace switchyard::rules {
namespace {

constexpr char32_t kRuneError = 0xFFFD;

// One run of upper-case runes with the same lowering. `alternate` runs hold
// upper/lower pairs side by side (U+0100 Ā, U+0101 ā, ...): only every other
// rune from `lo` is upper case and it lowers to the rune after it.
struct CaseRange {
  char32_t lo;
  char32_t hi;
  int32_t delta;
  bool alternate;
};

// Simple lowercase mappings generated from the Unicode Character Database
// (14.0): every rune whose lowercase is a single different rune. U+0130 (İ)
// lowers to plain 'i' as in Go's unicode.ToLower.
constexpr CaseRange kLowerRanges[] = {
    {0x0041, 0x005A, 32, false},     {0x00C0, 0x00D6, 32, false},
    {0x00D8, 0x00DE, 32, false},     {0x0100, 0x012E, 1, true},
    {0x0130, 0x0130, -199, false},   {0x0132, 0x0136, 1, true},
    {0x0139, 0x0147, 1, true},       {0x014A, 0x0176, 1, true},
    {0x0178, 0x0178, -121, false},   {0x0179, 0x017D, 1, true},
    {0x0181, 0x0181, 210, false},    {0x0182, 0x0184, 1, true},
    {0x0186, 0x0186, 206, false},    {0x0187, 0x0187, 1, false},
    {0x0189, 0x018A, 205, false},    {0x018B, 0x018B, 1, false},
    {0x018E, 0x018E, 79, false},     {0x018F, 0x018F, 202, false},
    {0x0190, 0x0190, 203, false},    {0x0191, 0x0191, 1, false},
    {0x0193, 0x0193, 205, false},    {0x0194, 0x0194, 207, false},
    {0x0196, 0x0196, 211, false},    {0x0197, 0x0197, 209, false},
    {0x0198, 0x0198, 1, false},      {0x019C, 0x019C, 211, false},
    {0x019D, 0x019D, 213, false},    {0x019F, 0x019F, 214, false},
    {0x01A0, 0x01A4, 1, true},       {0x01A6, 0x01A6, 218, false},
    {0x01A7, 0x01A7, 1, false},      {0x01A9, 0x01A9, 218, false},
    {0x01AC, 0x01AC, 1, false},      {0x01AE, 0x01AE, 218, false},
    {0x01AF, 0x01AF, 1, false},      {0x01B1, 0x01B2, 217, false},
    {0x01B3, 0x01B5, 1, true},       {0x01B7, 0x01B7, 219, false},
    {0x01B8, 0x01B8, 1, false},      {0x01BC, 0x01BC, 1, false},
    {0x01C4, 0x01C4, 2, false},      {0x01C5, 0x01C5, 1, false},
    {0x01C7, 0x01C7, 2, false},      {0x01C8, 0x01C8, 1, false},
    {0x01CA, 0x01CA, 2, false},      {0x01CB, 0x01DB, 1, true},
    {0x01DE, 0x01EE, 1, true},       {0x01F1, 0x01F1, 2, false},
    {0x01F2, 0x01F4, 1, true},       {0x01F6, 0x01F6, -97, false},
    {0x01F7, 0x01F7, -56, false},    {0x01F8, 0x021E, 1, true},
    {0x0220, 0x0220, -130, false},   {0x0222, 0x0232, 1, true},
    {0x023A, 0x023A, 10795, false},  {0x023B, 0x023B, 1, false},
    {0x023D, 0x023D, -163, false},   {0x023E, 0x023E, 10792, false},
    {0x0241, 0x0241, 1, false},      {0x0243, 0x0243, -195, false},
    {0x0244, 0x0244, 69, false},     {0x0245, 0x0245, 71, false},
    {0x0246, 0x024E, 1, true},       {0x0370, 0x0372, 1, true},
    {0x0376, 0x0376, 1, false},      {0x037F, 0x037F, 116, false},
    {0x0386, 0x0386, 38, false},     {0x0388, 0x038A, 37, false},
    {0x038C, 0x038C, 64, false},     {0x038E, 0x038F, 63, false},
    {0x0391, 0x03A1, 32, false},     {0x03A3, 0x03AB, 32, false},
    {0x03CF, 0x03CF, 8, false},      {0x03D8, 0x03EE, 1, true},
    {0x03F4, 0x03F4, -60, false},    {0x03F7, 0x03F7, 1, false},
    {0x03F9, 0x03F9, -7, false},     {0x03FA, 0x03FA, 1, false},
    {0x03FD, 0x03FF, -130, false},   {0x0400, 0x040F, 80, false},
    {0x0410, 0x042F, 32, false},     {0x0460, 0x0480, 1, true},
    {0x048A, 0x04BE, 1, true},       {0x04C0, 0x04C0, 15, false},
    {0x04C1, 0x04CD, 1, true},       {0x04D0, 0x052E, 1, true},
    {0x0531, 0x0556, 48, false},     {0x10A0, 0x10C5, 7264, false},
    {0x10C7, 0x10C7, 7264, false},   {0x10CD, 0x10CD, 7264, false},
    {0x13A0, 0x13EF, 38864, false},  {0x13F0, 0x13F5, 8, false},
    {0x1C90, 0x1CBA, -3008, false},  {0x1CBD, 0x1CBF, -3008, false},
    {0x1E00, 0x1E94, 1, true},       {0x1E9E, 0x1E9E, -7615, false},
    {0x1EA0, 0x1EFE, 1, true},       {0x1F08, 0x1F0F, -8, false},
    {0x1F18, 0x1F1D, -8, false},     {0x1F28, 0x1F2F, -8, false},
    {0x1F38, 0x1F3F, -8, false},     {0x1F48, 0x1F4D, -8, false},
    {0x1F59, 0x1F59, -8, false},     {0x1F5B, 0x1F5B, -8, false},
    {0x1F5D, 0x1F5D, -8, false},     {0x1F5F, 0x1F5F, -8, false},
    {0x1F68, 0x1F6F, -8, false},     {0x1F88, 0x1F8F, -8, false},
    {0x1F98, 0x1F9F, -8, false},     {0x1FA8, 0x1FAF, -8, false},
    {0x1FB8, 0x1FB9, -8, false},     {0x1FBA, 0x1FBB, -74, false},
    {0x1FBC, 0x1FBC, -9, false},     {0x1FC8, 0x1FCB, -86, false},
    {0x1FCC, 0x1FCC, -9, false},     {0x1FD8, 0x1FD9, -8, false},
    {0x1FDA, 0x1FDB, -100, false},   {0x1FE8, 0x1FE9, -8, false},
    {0x1FEA, 0x1FEB, -112, false},   {0x1FEC, 0x1FEC, -7, false},
    {0x1FF8, 0x1FF9, -128, false},   {0x1FFA, 0x1FFB, -126, false},
    {0x1FFC, 0x1FFC, -9, false},     {0x2126, 0x2126, -7517, false},
    {0x212A, 0x212A, -8383, false},  {0x212B, 0x212B, -8262, false},
    {0x2132, 0x2132, 28, false},     {0x2160, 0x216F, 16, false},
    {0x2183, 0x2183, 1, false},      {0x24B6, 0x24CF, 26, false},
    {0x2C00, 0x2C2F, 48, false},     {0x2C60, 0x2C60, 1, false},
    {0x2C62, 0x2C62, -10743, false}, {0x2C63, 0x2C63, -3814, false},
    {0x2C64, 0x2C64, -10727, false}, {0x2C67, 0x2C6B, 1, true},
    {0x2C6D, 0x2C6D, -10780, false}, {0x2C6E, 0x2C6E, -10749, false},
    {0x2C6F, 0x2C6F, -10783, false}, {0x2C70, 0x2C70, -10782, false},
    {0x2C72, 0x2C72, 1, false},      {0x2C75, 0x2C75, 1, false},
    {0x2C7E, 0x2C7F, -10815, false}, {0x2C80, 0x2CE2, 1, true},
    {0x2CEB, 0x2CED, 1, true},       {0x2CF2, 0x2CF2, 1, false},
    {0xA640, 0xA66C, 1, true},       {0xA680, 0xA69A, 1, true},
    {0xA722, 0xA72E, 1, true},       {0xA732, 0xA76E, 1, true},
    {0xA779, 0xA77B, 1, true},       {0xA77D, 0xA77D, -35332, false},
    {0xA77E, 0xA786, 1, true},       {0xA78B, 0xA78B, 1, false},
    {0xA78D, 0xA78D, -42280, false}, {0xA790, 0xA792, 1, true},
    {0xA796, 0xA7A8, 1, true},       {0xA7AA, 0xA7AA, -42308, false},
    {0xA7AB, 0xA7AB, -42319, false}, {0xA7AC, 0xA7AC, -42315, false},
    {0xA7AD, 0xA7AD, -42305, false}, {0xA7AE, 0xA7AE, -42308, false},
    {0xA7B0, 0xA7B0, -42258, false}, {0xA7B1, 0xA7B1, -42282, false},
    {0xA7B2, 0xA7B2, -42261, false}, {0xA7B3, 0xA7B3, 928, false},
    {0xA7B4, 0xA7C2, 1, true},       {0xA7C4, 0xA7C4, -48, false},
    {0xA7C5, 0xA7C5, -42307, false}, {0xA7C6, 0xA7C6, -35384, false},
    {0xA7C7, 0xA7C9, 1, true},       {0xA7D0, 0xA7D0, 1, false},
    {0xA7D6, 0xA7D8, 1, true},       {0xA7F5, 0xA7F5, 1, false},
    {0xFF21, 0xFF3A, 32, false},     {0x10400, 0x10427, 40, false},
    {0x104B0, 0x104D3, 40, false},   {0x10570, 0x1057A, 39, false},
    {0x1057C, 0x1058A, 39, false},   {0x1058C, 0x10592, 39, false},
    {0x10594, 0x10595, 39, false},   {0x10C80, 0x10CB2, 64, false},
    {0x118A0, 0x118BF, 32, false},   {0x16E40, 0x16E5F, 32, false},
    {0x1E900, 0x1E921, 34, false},
};

// True for bytes allowed in a STD3 host name once converted to ASCII.
bool isLdhOrDot(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

// Go's utf8.DecodeLastRuneInString: the last rune of s and its length.
std::pair<char32_t, size_t> decodeLastRune(std::string_view s) {
  if (s.empty()) {
    return {kRuneError, 0};
  }
  const auto last = static_cast<unsigned char>(s.back());
  if (last < 0x80) {
    return {last, 1};
  }
  // Step back over at most three continuation bytes to a possible lead byte.
  size_t start = s.size() - 1;
  const size_t limit = s.size() >= 4 ? s.size() - 4 : 0;
  while (start > limit && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
    --start;
  }
  auto [rune, size] = decodeUtf8Rune(s.substr(start));
  if (start + size != s.size()) {
    return {kRuneError, 1};
  }
  return {rune, size};
}

}  // namespace

std::optional<std::string> idnaToAscii(std::string_view host) {
  if (isAscii(host)) {
    return std::string(host);
  }
  // libidn2 reads a C string: an embedded NUL would silently cut the name.
  if (host.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string input(host);
  uint8_t* output = nullptr;
  const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(input.c_str()), &output,
                                IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc != IDN2_OK || output == nullptr) {
    idn2_free(output);
    return std::nullopt;
  }
  std::string result(reinterpret_cast<const char*>(output));
  idn2_free(output);
  // STD3 rules, as in Go's Lookup profile (see the header).
  if (!std::all_of(result.begin(), result.end(),
                   [](char c) { return isLdhOrDot(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  return result;
}

std::pair<char32_t, size_t> decodeUtf8Rune(std::string_view s) {
  if (s.empty()) {
    return {kRuneError, 0};
  }
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    return {b0, 1};
  }
  size_t len = 0;
  char32_t rune = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    rune = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    rune = b0 & 0x0F;
    if (b0 == 0xE0) {
      lo = 0xA0;  // No overlong three-byte forms.
    } else if (b0 == 0xED) {
      hi = 0x9F;  // No surrogates.
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    rune = b0 & 0x07;
    if (b0 == 0xF0) {
      lo = 0x90;  // No overlong four-byte forms.
    } else if (b0 == 0xF4) {
      hi = 0x8F;  // Nothing above U+10FFFF.
    }
  } else {
    return {kRuneError, 1};
  }
  if (s.size() < len) {
    return {kRuneError, 1};
  }
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) {
      return {kRuneError, 1};
    }
    rune = (rune << 6) | (b & 0x3F);
  }
  return {rune, len};
}

void appendUtf8Rune(std::string* out, char32_t rune) {
  if (rune < 0x80) {
    out->push_back(static_cast<char>(rune));
  } else if (rune < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (rune >> 6)));
    out->push_back(static_cast<char>(0x80 | (rune & 0x3F)));
  } else if (rune < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (rune >> 12)));
    out->push_back(static_cast<char>(0x80 | ((rune >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (rune & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (rune >> 18)));
    out->push_back(static_cast<char>(0x80 | ((rune >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((rune >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (rune & 0x3F)));
  }
}

bool isGoSpace(char32_t rune) {
  switch (rune) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return rune >= 0x2000 && rune <= 0x200A;
  }
}

std::string_view goTrimSpace(std::string_view s) {
  while (!s.empty()) {
    auto [rune, size] = decodeUtf8Rune(s);
    // An invalid byte decodes as U+FFFD, which is not a space: trimming stops.
    if (size == 1 && static_cast<unsigned char>(s[0]) >= 0x80) {
      break;
    }
    if (!isGoSpace(rune)) {
      break;
    }
    s.remove_prefix(size);
  }
  while (!s.empty()) {
    auto [rune, size] = decodeLastRune(s);
    if (size == 1 && static_cast<unsigned char>(s.back()) >= 0x80) {
      break;
    }
    if (!isGoSpace(rune)) {
      break;
    }
    s.remove_suffix(size);
  }
  return s;
}

char32_t simpleLowerRune(char32_t rune) {
  if (rune < 0x80) {
    return (rune >= 'A' && rune <= 'Z') ? rune + 32 : rune;
  }
  const auto* end = std::end(kLowerRanges);
  const auto* it =
      std::upper_bound(std::begin(kLowerRanges), end, rune,
                       [](char32_t r, const CaseRange& range) { return r < range.lo; });
  if (it == std::begin(kLowerRanges)) {
    return rune;
  }
  --it;
  if (rune > it->hi) {
    return rune;
  }
  if (it->alternate) {
    return ((rune - it->lo) % 2 == 0) ? rune + 1 : rune;
  }
  return static_cast<char32_t>(static_cast<int32_t>(rune) + it->delta);
}

std::string goToLower(std::string_view s) {
  if (isAscii(s)) {
    return asciiToLower(s);
  }
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    auto [rune, size] = decodeUtf8Rune(s);
    // strings.Map writes U+FFFD for each invalid byte; a real U+FFFD (three
    // bytes) is kept as it is, which comes to the same bytes.
    appendUtf8Rune(&out, simpleLowerRune(rune));
    s.remove_prefix(size);
  }
  return out;
}

std::string asciiToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
  }
  return out;
}

bool isAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace switchyard::rules
