// Go module paths and versions as they appear in GOPROXY URLs: validation
// (golang.org/x/mod/module CheckPath and the file-name element check) and
// the case-escaping that keeps URLs and cache paths safe on case-insensitive
// file systems ("github.com/Azure/x" <-> "github.com/!azure/x"). See
// SEMANTICS.md E.2.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace switchyard::rules {

// True if `path` is a valid module path (module.CheckPath, x/mod master).
// On failure `*error` (if given) says why, in Go's words:
// `malformed module path "x": missing dot in first path element`.
bool checkModulePath(std::string_view path, std::string* error = nullptr);

// True if `elem` is a valid file-name element (the check applied to
// versions): ASCII letters, digits and "!#$%&()+,-.=@[]^_{}~ ", not all dots,
// no trailing dot, no Windows device name as its stem. Stricter than Go in
// one way: Go also admits non-ASCII letters here, but every caller escapes
// the element afterwards and escaping rejects non-ASCII, so we reject it now.
bool checkFileElement(std::string_view elem, std::string* error = nullptr);

// Escapes a module path after validating it; nullopt if it is invalid.
std::optional<std::string> escapePath(std::string_view path);

// Inverts escapePath: "!x" -> "X". A raw uppercase letter, '!' not followed
// by a lowercase letter, a trailing '!' or any non-ASCII byte is rejected,
// and so is a result that is not a valid module path.
std::optional<std::string> unescapePath(std::string_view escaped);
// As above, and on failure sets `*error` to why.
std::optional<std::string> unescapePath(std::string_view escaped, std::string* error);

// Escapes a version after checking it is a file-name element without '!'.
std::optional<std::string> escapeVersion(std::string_view v);

// Inverts escapeVersion; the result must be a valid file-name element.
std::optional<std::string> unescapeVersion(std::string_view escaped);
std::optional<std::string> unescapeVersion(std::string_view escaped, std::string* error);

// Decodes %XX escapes (hex digits in either case). A '%' not followed by two
// hex digits yields nullopt. '+' stays '+': this is a URL path, not a form.
// The decoded bytes are not validated here.
std::optional<std::string> percentDecode(std::string_view s);

// Percent-encodes a URL path the way Go's url.URL.EscapedPath does: ASCII
// letters, digits, "-._~" and "$&+,/:;=@" stay, everything else (including
// '!') becomes %XX. This is the form the go command puts on the wire.
std::string percentEncodePath(std::string_view path);

}  // namespace switchyard::rules
