#include "rules/module_path.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "rules/ascii.h"

namespace switchyard::rules {
namespace {

// What is being checked: module paths allow fewer characters than file names,
// and only module path elements get the leading-dot and "~N" checks.
enum class ElemKind { kModulePath, kFileName };

// Reserved device names on Windows; a path element whose stem (the part
// before the first dot) equals one of them, ignoring case, is banned.
constexpr std::array<std::string_view, 22> kBadWindowsNames = {
    "CON",  "PRN",  "AUX",  "NUL",  "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
    "COM8", "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
};

bool isLower(char c) {
  return c >= 'a' && c <= 'z';
}
bool isUpper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// Characters of a module path element: ASCII letters, digits, "-._~".
bool modPathOk(char c) {
  return isLower(c) || isUpper(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// Characters of the first module path element, by convention a domain name,
// lowercase only so that it has a single spelling.
bool firstPathOk(char c) {
  return isLower(c) || isDigit(c) || c == '-' || c == '.';
}

// ASCII characters of a file-name element; the excluded punctuation
// (" ' * < > ? ` | / \ :) is special to shells or some file systems.
bool fileNameOk(char c) {
  if (isLower(c) || isUpper(c) || isDigit(c)) {
    return true;
  }
  constexpr std::string_view kAllowed = "!#$%&()+,-.=@[]^_{}~ ";
  return kAllowed.find(c) != std::string_view::npos;
}

bool equalFoldAscii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (isUpper(x)) {
      x = static_cast<char>(x - 'A' + 'a');
    }
    if (isUpper(y)) {
      y = static_cast<char>(y - 'A' + 'a');
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

// Strict UTF-8 validation (no overlongs, no surrogates, max U+10FFFF), so
// that the first error reported for garbage matches Go's "invalid UTF-8".
bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Renders a byte for an error message: printable ASCII as 'c', else \xNN.
std::string quoteChar(char c) {
  const auto u = static_cast<uint8_t>(c);
  if (c == '\\' || c == '\'') {
    return std::string("'\\") + c + "'";
  }
  if (u >= 0x20 && u < 0x7F) {
    return std::string("'") + c + "'";
  }
  constexpr char kHex[] = "0123456789abcdef";
  return std::string("'\\x") + kHex[u >> 4] + kHex[u & 0xF] + "'";
}

// Renders a string for an error message with Go-like quoting; non-printable
// bytes become \xNN so that logs stay one line and plain ASCII.
std::string quote(std::string_view s) {
  std::string out = "\"";
  constexpr char kHex[] = "0123456789abcdef";
  for (char c : s) {
    const auto u = static_cast<uint8_t>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u >= 0x20 && u < 0x7F) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  out += '"';
  return out;
}

bool fail(std::string* error, std::string message) {
  if (error != nullptr) {
    *error = std::move(message);
  }
  return false;
}

// One path element (module.checkElem). Returns "" when valid.
std::string checkElem(std::string_view elem, ElemKind kind) {
  if (elem.empty()) {
    return "empty path element";
  }
  if (elem.find_first_not_of('.') == std::string_view::npos) {
    return "invalid path element " + quote(elem);
  }
  if (elem.front() == '.' && kind == ElemKind::kModulePath) {
    return "leading dot in path element";
  }
  if (elem.back() == '.') {
    return "trailing dot in path element";
  }
  for (char c : elem) {
    const bool ok = kind == ElemKind::kModulePath ? modPathOk(c) : fileNameOk(c);
    if (!ok) {
      return "invalid char " + quoteChar(c);
    }
  }
  std::string_view stem = elem.substr(0, elem.find('.'));
  for (std::string_view bad : kBadWindowsNames) {
    if (equalFoldAscii(bad, stem)) {
      return quote(stem) + " disallowed as path element component on Windows";
    }
  }
  if (kind == ElemKind::kFileName) {
    return "";
  }
  // A stem ending in '~' and digits looks like a Windows 8.3 short name
  // ("PROGRA~1") and could alias another directory on such file systems.
  const size_t tilde = stem.rfind('~');
  if (tilde != std::string_view::npos && tilde + 1 < stem.size()) {
    std::string_view suffix = stem.substr(tilde + 1);
    bool all_digits = true;
    for (char c : suffix) {
      all_digits = all_digits && isDigit(c);
    }
    if (all_digits) {
      return "trailing tilde and digits in path element";
    }
  }
  return "";
}

// module.SplitPathVersion's validity verdict for gopkg.in paths, which end in
// ".vN" (any N, including 0, without leading zeros), optionally "-unstable".
bool gopkgInSuffixOk(std::string_view path) {
  size_t i = path.size();
  constexpr std::string_view kUnstable = "-unstable";
  if (i >= kUnstable.size() && path.substr(i - kUnstable.size()) == kUnstable) {
    i -= kUnstable.size();
  }
  while (i > 0 && isDigit(path[i - 1])) {
    --i;
  }
  if (i <= 1 || path[i - 1] != 'v' || path[i - 2] != '.') {
    return false;
  }
  std::string_view major = path.substr(i - 2);
  return !(major.size() <= 2 || (major[2] == '0' && major != ".v0"));
}

// module.SplitPathVersion's validity verdict: a final "/vN" element must have
// N >= 2, no leading zero and no dots; gopkg.in paths use their own form.
bool majorSuffixOk(std::string_view path) {
  if (path.starts_with("gopkg.in/")) {
    return gopkgInSuffixOk(path);
  }
  size_t i = path.size();
  bool dot = false;
  while (i > 0 && (isDigit(path[i - 1]) || path[i - 1] == '.')) {
    dot = dot || path[i - 1] == '.';
    --i;
  }
  if (i <= 1 || i == path.size() || path[i - 1] != 'v' || path[i - 2] != '/') {
    return true;
  }
  std::string_view major = path.substr(i - 2);
  return !(dot || major.size() <= 2 || major[2] == '0' || major == "/v1");
}

// The '!'-escaping shared by paths and versions. Callers have validated the
// input, so it is ASCII without '!' and the mapping is reversible.
std::string escapeString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 4);
  for (char c : s) {
    if (isUpper(c)) {
      out += '!';
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string> unescapeString(std::string_view escaped) {
  std::string out;
  out.reserve(escaped.size());
  bool bang = false;
  for (char c : escaped) {
    if (static_cast<uint8_t>(c) >= 0x80) {
      return std::nullopt;
    }
    if (bang) {
      bang = false;
      if (!isLower(c)) {
        return std::nullopt;
      }
      out += static_cast<char>(c - 'a' + 'A');
      continue;
    }
    if (c == '!') {
      bang = true;
      continue;
    }
    if (isUpper(c)) {
      return std::nullopt;
    }
    out += c;
  }
  if (bang) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

bool checkModulePath(std::string_view path, std::string* error) {
  const std::string prefix = "malformed module path " + quote(path) + ": ";
  if (!validUtf8(path)) {
    return fail(error, prefix + "invalid UTF-8");
  }
  if (path.empty()) {
    return fail(error, prefix + "empty string");
  }
  if (path.front() == '-') {
    return fail(error, prefix + "leading dash");
  }
  if (path.find("//") != std::string_view::npos) {
    return fail(error, prefix + "double slash");
  }
  if (path.back() == '/') {
    return fail(error, prefix + "trailing slash");
  }
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string_view elem = path.substr(start, slash - start);
    std::string why = checkElem(elem, ElemKind::kModulePath);
    if (!why.empty()) {
      return fail(error, prefix + why);
    }
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  const std::string_view first = path.substr(0, path.find('/'));
  if (first.find('.') == std::string_view::npos) {
    return fail(error, prefix + "missing dot in first path element");
  }
  for (char c : first) {
    if (!firstPathOk(c)) {
      return fail(error, prefix + "invalid char " + quoteChar(c) + " in first path element");
    }
  }
  if (!majorSuffixOk(path)) {
    return fail(error, prefix + "invalid version");
  }
  return true;
}

bool checkFileElement(std::string_view elem, std::string* error) {
  std::string why = checkElem(elem, ElemKind::kFileName);
  if (!why.empty()) {
    return fail(error, "malformed file name " + quote(elem) + ": " + why);
  }
  return true;
}

std::optional<std::string> escapePath(std::string_view path) {
  if (!checkModulePath(path)) {
    return std::nullopt;
  }
  return escapeString(path);
}

std::optional<std::string> unescapePath(std::string_view escaped) {
  return unescapePath(escaped, nullptr);
}

std::optional<std::string> unescapePath(std::string_view escaped, std::string* error) {
  std::optional<std::string> path = unescapeString(escaped);
  if (!path) {
    fail(error, "invalid escaped module path " + quote(escaped));
    return std::nullopt;
  }
  std::string why;
  if (!checkModulePath(*path, &why)) {
    fail(error, "invalid escaped module path " + quote(escaped) + ": " + why);
    return std::nullopt;
  }
  return path;
}

std::optional<std::string> escapeVersion(std::string_view v) {
  if (!checkFileElement(v) || v.find('!') != std::string_view::npos) {
    return std::nullopt;
  }
  return escapeString(v);
}

std::optional<std::string> unescapeVersion(std::string_view escaped) {
  return unescapeVersion(escaped, nullptr);
}

std::optional<std::string> unescapeVersion(std::string_view escaped, std::string* error) {
  std::optional<std::string> v = unescapeString(escaped);
  if (!v) {
    fail(error, "invalid escaped version " + quote(escaped));
    return std::nullopt;
  }
  std::string why;
  if (!checkFileElement(*v, &why)) {
    fail(error, "invalid escaped version " + quote(escaped) + ": " + why);
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) {
      return std::nullopt;
    }
    const int hi = hexDigitValue(s[i + 1]);
    const int lo = hexDigitValue(s[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string percentEncodePath(std::string_view path) {
  constexpr char kHex[] = "0123456789ABCDEF";
  constexpr std::string_view kKeep = "-._~$&+,/:;=@";
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (isLower(c) || isUpper(c) || isDigit(c) || kKeep.find(c) != std::string_view::npos) {
      out += c;
    } else {
      const auto u = static_cast<uint8_t>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

}  // namespace switchyard::rules
