// NO_PROXY-syntax host lists, read exactly as Go's golang.org/x/net/http/
// httpproxy (master) reads NO_PROXY (SEMANTICS.md A.2), and compiled into one
// index so that many lists (NO_PROXY itself and every rule's `hosts:`) are
// matched with a handful of hash lookups per request, whatever their size.
//
// The pieces:
//   * parseGoAddr()/parseGoCidr()/splitGoHostPort(): Go's netip.ParseAddr,
//     net.ParseIP, net.ParseCIDR and net.SplitHostPort rules;
//   * parseNoProxyEntries(): one list, classified entry by entry;
//   * HostKey: a request host prepared once;
//   * HostMatcher: the index.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace switchyard::rules {

enum class HostMatchHow { kName, kSubdomain, kIp, kCidr, kAny };

// "name", "subdomain", "ip", "cidr", "any" (the `how` of explain's `matched`).
const char* hostMatchHowName(HostMatchHow how);

// An IP address in 16-byte form; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d),
// as Go's net.IP does, so that 10.1.2.3 and ::ffff:10.1.2.3 compare equal.
using IpBytes = std::array<uint8_t, 16>;

struct ParsedIp {
  IpBytes bytes{};
  bool dotted_v4 = false;  // written as a.b.c.d (netip's Is4), not as IPv6
  bool had_zone = false;   // an IPv6 zone ("%eth0") was present and dropped
};

// Go's netip.ParseAddr: dotted IPv4 with exactly four decimal fields, no
// leading zeros, each <= 255; IPv6 with at most 4 hex digits per group, one
// "::", an optional trailing dotted IPv4, and an optional non-empty zone after
// '%'. With allow_zone false a zone makes it fail, which is net.ParseIP.
std::optional<ParsedIp> parseGoAddr(std::string_view text, bool allow_zone);

// True when the address is IPv4 or IPv4-mapped IPv6 (Go's IP.To4() != nil).
bool isV4Like(const IpBytes& ip);

// Go's IP.IsLoopback(): 127.0.0.0/8 (also IPv4-mapped) or ::1.
bool isLoopbackIp(const IpBytes& ip);

// A CIDR as Go's net.IPNet.Contains() sees it after net.ParseCIDR: an IPv6
// network whose masked address is IPv4-mapped acts as an IPv4 network of
// length n-96 (`::ffff:0:0/96` contains every IPv4 address).
struct GoCidr {
  bool v4 = false;
  int prefix = 0;     // 0..32 for v4, 0..128 for v6
  IpBytes network{};  // masked; for v4 the address sits in bytes 12..15
};

// net.ParseCIDR: an address without zone, '/', a decimal prefix length (digits
// only, leading zeros allowed, at most 32 for dotted IPv4, 128 otherwise).
// Host bits may be set; they are masked off.
std::optional<GoCidr> parseGoCidr(std::string_view text);

// True when `ip` lies in `cidr` (IPNet.Contains): IPv4-like addresses only
// ever match IPv4 networks, other IPv6 addresses only IPv6 networks.
bool cidrContains(const GoCidr& cidr, const IpBytes& ip);

// net.SplitHostPort: the last ':' separates the port; a host containing ':'
// must be bracketed; brackets are removed. nullopt where Go returns an error.
std::optional<std::pair<std::string_view, std::string_view>> splitGoHostPort(
    std::string_view hostport);

// One usable NO_PROXY entry after Go's classification (A.2 step 4).
struct NoProxyEntry {
  int index = 0;     // 0-based position in the comma split, empty pieces counted
  std::string text;  // the piece, trimmed and lowercased
  HostMatchHow how = HostMatchHow::kAny;
  // kName / kSubdomain: the suffix to test, always starting with '.', in IDNA
  // ASCII form when conversion succeeded (".example.com"). kName also
  // matches the suffix without its dot ("example.com").
  std::string suffix;
  IpBytes ip{};  // kIp
  GoCidr cidr;   // kCidr
  // kName / kSubdomain / kIp: the port as written after ':' ("" = any port).
  // It matches only the same decimal string, so "08080" never matches.
  std::string port;
};

// Splits a NO_PROXY value on ',' and classifies each piece as Go does. Empty
// pieces and pieces with an empty host part (":8080") are left out.
std::vector<NoProxyEntry> parseNoProxyEntries(std::string_view value);

// A request host prepared once for matching (A.1, A.2 steps 1-2): converted to
// IDNA ASCII when it is not ASCII (the raw text is kept when that fails), then
// parsed as an IP address the way x/net master does (netip.ParseAddr, so an
// IPv6 zone is accepted and dropped; IPv4-mapped IPv6 is IPv4-like), then
// trimmed and lowercased for name matching. Like Go, IP parsing and the
// `localhost` test see the untrimmed text.
struct HostKey {
  std::string name;  // trimmed, lowercased, IDNA ASCII
  bool is_ip = false;
  bool is_v4 = false;     // is_ip and IPv4 or IPv4-mapped (Go's To4() != nil)
  IpBytes addr{};         // is_ip: the address, IPv4 in mapped form
  bool loopback = false;  // Go's rule 1: exactly "localhost", or a loopback IP
  // The host contains '[' or ']'. Go's useProxy() cannot split such a host
  // back out of host:port and then never proxies it (see NoProxyList).
  bool malformed = false;

  static HostKey from(std::string_view host);
};

// True when one entry matches the host on the given effective port. This is
// the plain per-entry rule; HostMatcher gives the same answers by index.
bool entryMatches(const NoProxyEntry& entry, const HostKey& host, uint16_t port);

struct HostListMatch {
  int list_id = 0;
  int index = 0;      // 0-based position in the comma split, empty pieces counted
  std::string entry;  // the piece, trimmed and lowercased
  HostMatchHow how = HostMatchHow::kAny;
};

// Several NO_PROXY-syntax lists compiled into one index. match() returns the
// match of the smallest list_id and, within that list, of the smallest entry
// index. The loopback short-cut (rule 1) is not applied here: it belongs to
// NO_PROXY itself, not to rule host lists (see NoProxyList).
//
// Names are looked up by label: one hash lookup for the whole host (bare
// entries) and one for each suffix of the host that starts at a '.', so the
// cost grows with the number of labels of the host, not with the number of
// entries. Exact IPs are one lookup; CIDRs one lookup per distinct (family,
// prefix length) present. Each key holds its entries sorted by (list_id,
// index); the first whose port fits is the best one for that key.
class HostMatcher {
 public:
  // Adds one list. Lists are expected with increasing list_id; others are
  // still placed correctly, just more slowly.
  void addList(int list_id, std::string_view no_proxy_value);

  std::optional<HostListMatch> match(const HostKey& host, uint16_t port) const;

  // Number of usable entries indexed (ignored pieces are not counted).
  size_t entryCount() const { return entries_.size(); }

  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    int list_id;
    int index;
    // Port condition: -1 any port, -2 never (not a canonical decimal number
    // 0..65535), otherwise the port number.
    int32_t port;
    HostMatchHow how;
    std::string text;
  };
  // Entries of one key, sorted by (list_id, index).
  using Postings = std::vector<uint32_t>;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct BytesHash {
    size_t operator()(const IpBytes& b) const;
  };
  using NameIndex = std::unordered_map<std::string, Postings, StringHash, std::equal_to<>>;
  using IpIndex = std::unordered_map<IpBytes, Postings, BytesHash>;

  // All CIDRs of one family and prefix length, keyed by masked network.
  struct CidrTable {
    int prefix;
    IpIndex networks;
  };

  bool before(uint32_t a, uint32_t b) const;
  void insert(Postings* postings, uint32_t id);
  CidrTable* cidrTable(bool v4, int prefix);
  // Improves *best with the first entry of `postings` that fits the port.
  void consider(const Postings& postings, uint16_t port, std::optional<uint32_t>* best) const;

  std::vector<Entry> entries_;
  NameIndex exact_names_;  // bare entries, without the leading dot
  NameIndex suffixes_;     // every domain entry, with the leading dot
  IpIndex exact_ips_;
  std::vector<CidrTable> v4_cidrs_;  // sorted by prefix
  std::vector<CidrTable> v6_cidrs_;
  Postings any_;  // `*` entries
};

}  // namespace switchyard::rules
