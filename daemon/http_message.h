// HTTP/1.1 message pieces the proxy rewrites: a header list that keeps order
// and duplicates, hop-by-hop stripping (RFC 9110 7.6.1), our `Via` entry and
// its loop check, request-target parsing (authority-form for CONNECT,
// absolute-form for forwarding) and serialisation of message heads.
//
// Everything here is pure (no sockets, no clock) so that unit tests and the
// fuzz driver can exercise it directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard {

// The pseudonym we add to `Via` (RFC 9110 7.6.3). Our entry is
// "1.1 switchyard (ADDR)" where ADDR is the local address the client reached:
// fixed for a given listener, so a request that comes back through the same
// listener is a loop (508), while a chain of two switchyards on different
// addresses is not. It is not random per process on purpose: a restarted
// daemon must still recognise its own requests.
inline constexpr std::string_view kViaPseudonym = "switchyard";

struct HeaderField {
  std::string name;   // as received (case preserved)
  std::string value;  // leading and trailing whitespace removed
};

// An ordered list of header fields. Lookups are case-insensitive. Small
// (tens of fields), so linear scans are the right data structure.
class HeaderList {
 public:
  void add(std::string name, std::string value);
  // Appends `element` to the last `name` field as a list element
  // ("a" -> "a, element"), or adds the field.
  void appendToLast(std::string_view name, std::string_view element);
  // The first field called `name`, or nullptr.
  const std::string* find(std::string_view name) const;
  size_t count(std::string_view name) const;
  // Removes every field called `name`; returns how many were removed.
  size_t remove(std::string_view name);
  // True if any `name` field, read as a comma-separated list, has `token`
  // (case-insensitive), e.g. hasToken("Connection", "close").
  bool hasToken(std::string_view name, std::string_view token) const;

  const std::vector<HeaderField>& fields() const { return fields_; }
  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  void clear() { fields_.clear(); }

 private:
  std::vector<HeaderField> fields_;
};

// A request head as received from a client.
struct RequestHead {
  std::string method;  // "GET", "CONNECT"
  std::string target;  // the request-target exactly as sent
  int http_major = 1;
  int http_minor = 1;
  HeaderList headers;
};

bool equalsIgnoreCase(std::string_view a, std::string_view b);
std::string toLower(std::string_view s);

// RFC 9110 token characters (tchar): field names and methods.
bool isTchar(char c);
bool isToken(std::string_view s);
// Field values: visible characters, spaces and tabs, obs-text; no CR, LF, NUL.
bool isFieldValue(std::string_view s);

// A Host field value by RFC 9110 7.2 / RFC 3986 3.2.2: empty, or uri-host
// (a reg-name of unreserved, pct-encoded and sub-delims characters, an
// IPv4 address or a bracketed IPv6 literal) with an optional ":" *DIGIT.
bool isValidHostField(std::string_view value);

// What is wrong with a request head that llhttp accepted, by RFC 9110 and
// RFC 9112: llhttp leaves these checks to its user.
struct HeadProblem {
  int status = 400;
  std::string reason;   // the reason phrase
  std::string details;  // for the body and the decision log
};

// Checks, in order: the HTTP-version (`version_written`: the request line
// had one; llhttp reads a line without one as HTTP/0.9), the Host fields,
// the request-target's characters and form, and Transfer-Encoding.
// CONNECT targets are left to parseAuthorityForm().
std::optional<HeadProblem> checkRequestHead(const RequestHead& head, bool version_written);

// Removes the hop-by-hop fields: `Connection` and every field it names,
// `Proxy-Connection`, `Keep-Alive`, `Proxy-Authorization`,
// `Proxy-Authenticate`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`.
// Framing is re-done by the caller.
void stripHopByHop(HeaderList* headers);

// Our received-by for `Via`: "switchyard (ADDR)".
std::string viaToken(std::string_view local_address);

// True if an entry of a `Via` field, after its received-protocol, equals
// `token` (case-insensitive, whitespace runs folded): "1.1 switchyard
// (127.0.0.1:3128)" has the token "switchyard (127.0.0.1:3128)".
bool viaHasToken(const HeaderList& headers, std::string_view token);

// Appends "<major>.<minor> <token>" to the last `Via` field, or adds one.
void appendVia(HeaderList* headers, int http_major, int http_minor, std::string_view token);

// "METHOD target HTTP/1.1\r\n" + fields + "\r\n".
std::string serializeRequestHead(std::string_view method, std::string_view target,
                                 const HeaderList& headers);
// "HTTP/1.1 status reason\r\n" + fields + "\r\n".
std::string serializeResponseHead(int status, std::string_view reason, const HeaderList& headers);

// A host and port as they appear in a request target.
struct Authority {
  std::string host;  // lowercased; IPv6 literal without brackets
  uint16_t port = 0;
  bool ipv6 = false;
  // "host:port", "[v6]:port".
  std::string str() const;
  // "host" with brackets for IPv6, with ":port" only when it is not
  // `default_port` (for Host fields).
  std::string hostHeader(uint16_t default_port) const;
};

// Parses a CONNECT target (RFC 9112 3.2.3): "host:port" or "[v6]:port", port
// mandatory (1..65535), host a DNS name (letters, digits, '-', '_', '.') or an
// IP literal. No userinfo, path or scheme.
bool parseAuthorityForm(std::string_view text, Authority* out, std::string* error);

// An absolute-form request target: "scheme://[userinfo@]host[:port][/path][?query]".
struct AbsoluteUrl {
  std::string scheme;   // lowercased
  Authority authority;  // port defaulted from the scheme when absent
  bool explicit_port = false;
  bool had_userinfo = false;  // dropped: credentials never travel in a target
  std::string path;           // path + query, "/" when empty; never a fragment
  // "http://host[:port]/path" without userinfo, for a parent proxy.
  std::string str() const;
};

// Parses an absolute-form target for the schemes http and https (others are
// reported as errors with a reason naming the scheme). An empty port
// ("http://host:/") is the scheme's default (RFC 9110 4.2.3).
bool parseAbsoluteUrl(std::string_view text, AbsoluteUrl* out, std::string* error);

std::string base64Encode(std::string_view data);

// The standard reason phrase for `status`, or "Unknown".
const char* reasonPhrase(int status);

}  // namespace switchyard
