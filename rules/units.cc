#include "rules/units.h"

#include <array>
#include <cctype>

namespace switchyard::rules {

namespace {

// More decimal places than this are refused rather than rounded: nobody
// means "1.0000000001s", and the bound keeps the exact arithmetic in 128 bits.
constexpr size_t kMaxFractionDigits = 9;

void setError(std::string* error, std::string message) {
  if (error != nullptr) {
    *error = std::move(message);
  }
}

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// A decimal number as written: the integer part (exact, or overflowed) and
// the fraction digits, kept separate so that the caller can scale exactly.
struct Number {
  unsigned __int128 integer = 0;
  unsigned __int128 fraction = 0;        // the digits after '.', as an integer
  unsigned __int128 fraction_scale = 1;  // 10^(number of fraction digits)
  bool overflow = false;
};

// Reads [0-9]+ ( '.' [0-9]+ )? at *pos. Returns false (with a reason) when
// there is no well-formed number there.
bool readNumber(std::string_view text, size_t* pos, Number* out, std::string* error) {
  size_t start = *pos;
  size_t i = start;
  // Anything above 2^64 overflows every caller; stopping there keeps
  // integer * 10 and integer * (largest unit, 2^50) well inside 128 bits.
  while (i < text.size() && isDigit(text[i])) {
    if (out->integer > (static_cast<unsigned __int128>(1) << 64)) {
      out->overflow = true;
    } else {
      out->integer = out->integer * 10 + static_cast<unsigned>(text[i] - '0');
    }
    ++i;
  }
  if (i == start) {
    setError(error, "expected a number at " + quoted(text.substr(start)));
    return false;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    size_t frac_start = i;
    while (i < text.size() && isDigit(text[i])) {
      if (i - frac_start >= kMaxFractionDigits) {
        setError(error, "too many decimal places in " + quoted(text));
        return false;
      }
      out->fraction = out->fraction * 10 + static_cast<unsigned>(text[i] - '0');
      out->fraction_scale *= 10;
      ++i;
    }
    if (i == frac_start) {
      setError(error, "expected digits after '.' in " + quoted(text));
      return false;
    }
  }
  *pos = i;
  return true;
}

// number * unit, exactly; false when the fraction does not come out whole.
bool scale(const Number& number, uint64_t unit, unsigned __int128* out) {
  unsigned __int128 frac = number.fraction * unit;
  if (frac % number.fraction_scale != 0) {
    return false;
  }
  *out = number.integer * unit + frac / number.fraction_scale;
  return true;
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

// In microseconds; "us" only where the caller asks for that resolution.
constexpr std::array<Unit, 5> kDurationUnits{{
    {"us", 1},
    {"ms", 1000},
    {"s", 1000 * 1000},
    {"m", 60 * 1000 * 1000},
    {"h", 3600ULL * 1000 * 1000},
}};

constexpr uint64_t kKilo = 1000;
constexpr uint64_t kKibi = 1024;
constexpr std::array<Unit, 21> kSizeUnits{{
    {"b", 1},
    {"k", kKilo},
    {"kb", kKilo},
    {"m", kKilo* kKilo},
    {"mb", kKilo* kKilo},
    {"g", kKilo* kKilo* kKilo},
    {"gb", kKilo* kKilo* kKilo},
    {"t", kKilo* kKilo* kKilo* kKilo},
    {"tb", kKilo* kKilo* kKilo* kKilo},
    {"p", kKilo* kKilo* kKilo* kKilo* kKilo},
    {"pb", kKilo* kKilo* kKilo* kKilo* kKilo},
    {"ki", kKibi},
    {"kib", kKibi},
    {"mi", kKibi* kKibi},
    {"mib", kKibi* kKibi},
    {"gi", kKibi* kKibi* kKibi},
    {"gib", kKibi* kKibi* kKibi},
    {"ti", kKibi* kKibi* kKibi* kKibi},
    {"tib", kKibi* kKibi* kKibi* kKibi},
    {"pi", kKibi* kKibi* kKibi* kKibi* kKibi},
    {"pib", kKibi* kKibi* kKibi* kKibi* kKibi},
}};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

namespace {

// Both resolutions share one parser: the sum in microseconds, exact.
std::optional<std::chrono::microseconds> parseMicroseconds(std::string_view text, bool allow_micro,
                                                           std::string* error) {
  const char* unit_list = allow_micro ? "us, ms, s, m or h" : "ms, s, m or h";
  const char* resolution = allow_micro ? "microseconds" : "milliseconds";
  if (text.empty()) {
    setError(error, "empty duration (write e.g. \"10s\")");
    return std::nullopt;
  }
  if (text.front() == '-') {
    setError(error, "negative duration " + quoted(text));
    return std::nullopt;
  }
  if (text == "0") {
    return std::chrono::microseconds{0};
  }
  const unsigned __int128 max_us = static_cast<uint64_t>(kMaxDuration.count()) * 1000;
  unsigned __int128 total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    Number number;
    if (!readNumber(text, &pos, &number, error)) {
      return std::nullopt;
    }
    size_t unit_start = pos;
    while (pos < text.size() && !isDigit(text[pos]) && text[pos] != '.') {
      ++pos;
    }
    std::string_view unit_name = text.substr(unit_start, pos - unit_start);
    if (unit_name.empty()) {
      setError(error, "missing unit in " + quoted(text) + " (use " + unit_list + ", e.g. \"10s\")");
      return std::nullopt;
    }
    const Unit* unit = nullptr;
    for (const Unit& candidate : kDurationUnits) {
      if (candidate.name == unit_name && (allow_micro || candidate.factor != 1)) {
        unit = &candidate;
      }
    }
    if (unit == nullptr) {
      setError(error, "unknown unit " + quoted(unit_name) + " in " + quoted(text) + " (use " +
                          unit_list + ")");
      return std::nullopt;
    }
    unsigned __int128 part = 0;
    if (number.overflow || !scale(number, unit->factor, &part)) {
      if (number.overflow) {
        setError(error, "duration " + quoted(text) + " is too long");
      } else {
        setError(error, "duration " + quoted(text) + " is not a whole number of " + resolution);
      }
      return std::nullopt;
    }
    total += part;
    if (total > max_us) {
      setError(error, "duration " + quoted(text) + " is too long (at most 100 years)");
      return std::nullopt;
    }
  }
  if (!allow_micro && total % 1000 != 0) {
    setError(error, "duration " + quoted(text) + " is not a whole number of milliseconds");
    return std::nullopt;
  }
  return std::chrono::microseconds{static_cast<int64_t>(total)};
}

}  // namespace

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text, std::string* error) {
  std::optional<std::chrono::microseconds> micros = parseMicroseconds(text, false, error);
  if (!micros) {
    return std::nullopt;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(*micros);
}

std::optional<std::chrono::microseconds> parseFineDuration(std::string_view text,
                                                           std::string* error) {
  return parseMicroseconds(text, true, error);
}

std::optional<uint64_t> parseSize(std::string_view text, std::string* error) {
  if (text.empty()) {
    setError(error, "empty size (write e.g. \"10GiB\")");
    return std::nullopt;
  }
  if (text.front() == '-') {
    setError(error, "negative size " + quoted(text));
    return std::nullopt;
  }
  size_t pos = 0;
  Number number;
  if (!readNumber(text, &pos, &number, error)) {
    return std::nullopt;
  }
  uint64_t factor = 1;
  std::string_view unit_name = text.substr(pos);
  if (!unit_name.empty()) {
    std::string key = lower(unit_name);
    bool found = false;
    for (const Unit& candidate : kSizeUnits) {
      if (candidate.name == key) {
        factor = candidate.factor;
        found = true;
      }
    }
    if (!found) {
      setError(error, "unknown unit " + quoted(unit_name) + " in " + quoted(text) +
                          " (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)");
      return std::nullopt;
    }
  }
  unsigned __int128 bytes = 0;
  if (!number.overflow && !scale(number, factor, &bytes)) {
    setError(error, "size " + quoted(text) + " is not a whole number of bytes");
    return std::nullopt;
  }
  if (number.overflow || bytes > UINT64_MAX) {
    setError(error, "size " + quoted(text) + " is too large");
    return std::nullopt;
  }
  return static_cast<uint64_t>(bytes);
}

std::string formatDuration(std::chrono::milliseconds duration) {
  int64_t count = duration.count();
  if (count == 0) {
    return "0s";
  }
  std::string out;
  // Unsigned negation is defined even for INT64_MIN.
  uint64_t ms = static_cast<uint64_t>(count);
  if (count < 0) {
    out = "-";
    ms = 0 - ms;
  }
  for (const Unit& unit :
       {kDurationUnits[4], kDurationUnits[3], kDurationUnits[2], kDurationUnits[1]}) {
    uint64_t factor = unit.factor / 1000;
    if (ms >= factor) {
      out += std::to_string(ms / factor) + std::string(unit.name);
      ms %= factor;
    }
  }
  return out;
}

std::string formatSize(uint64_t bytes) {
  static constexpr std::array<const char*, 5> kNames{"PiB", "TiB", "GiB", "MiB", "KiB"};
  if (bytes != 0) {
    uint64_t factor = kKibi * kKibi * kKibi * kKibi * kKibi;
    for (const char* name : kNames) {
      if (bytes % factor == 0) {
        return std::to_string(bytes / factor) + name;
      }
      factor /= kKibi;
    }
  }
  return std::to_string(bytes) + "B";
}

}  // namespace switchyard::rules
