// Other tools' readings of the same no_proxy value, for `explain`'s "others"
// (SEMANTICS.md A.4). They are reproductions of observed behaviour, not
// recommendations: Go's reading (no_proxy.h) is the one switchyard applies.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace switchyard::rules {

// curl 7.88.1 (Debian 12), lib/noproxy.c as shipped there:
//   * the whole value exactly "*" bypasses everything; a "*" inside a list
//     is an ordinary (useless) name;
//   * ',' and blanks (space, tab) both separate entries;
//   * names: one leading and one trailing dot of an entry and one trailing dot
//     of the host are ignored; the entry matches the host itself and its
//     subdomains, ASCII case-insensitively; entries with a port never match;
//   * an IPv4 host (strict dotted quad) is compared with each entry as
//     address[/bits]: bits from atoi() (garbage after the number ignored),
//     0 or 32 meaning exact equality, > 32 never; names never match it;
//   * IPv6 hosts reach curl 7.88.1 without brackets and are compared as
//     names (textually), so IPv6 CIDRs never match;
//   * a non-ASCII host is converted to ACE (punycode) before the check, the
//     entries are not: "xn--bcher-kva.example" matches the host
//     "bücher.example", the entry "bücher.example" matches nothing;
//   * no loopback special case.
// `effective_port` is accepted for symmetry; curl 7.88.1 never uses it.
bool curlBypass(std::string_view no_proxy, std::string_view host, uint16_t effective_port);

// CPython 3.11 urllib.request.proxy_bypass_environment(): bypass iff the whole
// value is "*", or for some entry e (trimmed of Python whitespace, leading
// dots stripped, lowercased), with A = the lowercased URL authority
// host[:port] (IPv6 in brackets) and H = A without its port:
// H == e, A == e, H ends with "." + e, or A ends with "." + e.
// `explicit_port` is the port as written in the URL or authority, nullopt if
// none: urllib never fills in default ports.
bool pythonBypass(std::string_view no_proxy, std::string_view host,
                  std::optional<uint16_t> explicit_port);

}  // namespace switchyard::rules
