// Host-name text handling shared by the NO_PROXY readings: UTS #46 lookup
// (what Go's idna.Lookup does) and the few Unicode rules Go's strings package
// applies to NO_PROXY pieces and hosts (TrimSpace, ToLower).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace switchyard::rules {

// UTS #46 lookup processing, non-transitional (SEMANTICS.md A.1): `straße.de`
// becomes `xn--strae-oqa.de`. ASCII input is returned unchanged, as Go's
// httpproxy skips the conversion for it. Returns nullopt when conversion
// fails; callers then keep the raw text, as Go does.
//
// libidn2 does the work (IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT). Go's Lookup
// profile also applies the STD3 rules (only letters, digits and '-' in a
// label); libidn2's flag for that silently deletes the offending characters
// instead of failing, so the rule is enforced by rejecting any result with
// other ASCII characters. Known difference: libidn2 refuses labels longer than
// 63 octets, which Go's Lookup profile accepts.
std::optional<std::string> idnaToAscii(std::string_view host);

// Go's utf8.DecodeRuneInString: the first rune of s and its byte length;
// (U+FFFD, 1) for an invalid sequence (overlong, surrogate, > U+10FFFF,
// truncated), (U+FFFD, 0) for an empty string.
std::pair<char32_t, size_t> decodeUtf8Rune(std::string_view s);

// Appends the UTF-8 encoding of a valid rune.
void appendUtf8Rune(std::string* out, char32_t rune);

// Go's unicode.IsSpace: ASCII blanks plus U+0085, U+00A0 and the other
// Unicode White_Space characters.
bool isGoSpace(char32_t rune);

// Go's strings.TrimSpace: removes leading and trailing isGoSpace() runes.
// Invalid UTF-8 is never trimmed.
std::string_view goTrimSpace(std::string_view s);

// Go's unicode.ToLower for the scripts that appear in host names (Latin,
// Greek, Cyrillic, Armenian, Georgian, fullwidth forms, ...). Runes outside
// the covered ranges are returned unchanged.
char32_t simpleLowerRune(char32_t rune);

// Go's strings.ToLower: ASCII fast path; otherwise every rune is lowered with
// simpleLowerRune() and every invalid UTF-8 byte becomes U+FFFD, exactly as
// strings.Map does.
std::string goToLower(std::string_view s);

// ASCII-only lowercase (bytes >= 0x80 untouched).
std::string asciiToLower(std::string_view s);

bool isAscii(std::string_view s);

}  // namespace switchyard::rules
