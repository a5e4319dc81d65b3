#include "rules/host_match.h"

#include <algorithm>
#include <cstring>

#include "rules/ascii.h"
#include "rules/idna.h"

namespace switchyard::rules {
namespace {

// Go's dtoi() refuses prefix lengths from this value on.
constexpr int kDtoiBig = 0xFFFFFF;

// Port conditions of an entry (HostMatcher::Entry::port).
constexpr int32_t kAnyPort = -1;
constexpr int32_t kNeverPort = -2;

constexpr IpBytes kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0};

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// netip's parseIPv4Fields: four decimal fields, no empty field, no leading
// zero ("0" itself is fine), each at most 255.
std::optional<std::array<uint8_t, 4>> parseV4(std::string_view s) {
  std::array<uint8_t, 4> fields{};
  int value = 0;
  int digits = 0;
  int pos = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (isDigit(c)) {
      if (digits == 1 && value == 0) {
        return std::nullopt;  // Leading zero.
      }
      value = value * 10 + (c - '0');
      ++digits;
      if (value > 255) {
        return std::nullopt;
      }
    } else if (c == '.') {
      if (i == 0 || i == s.size() - 1 || s[i - 1] == '.') {
        return std::nullopt;  // Empty field.
      }
      if (pos == 3) {
        return std::nullopt;  // More than four fields.
      }
      fields[pos++] = static_cast<uint8_t>(value);
      value = 0;
      digits = 0;
    } else {
      return std::nullopt;
    }
  }
  if (pos < 3) {
    return std::nullopt;
  }
  fields[3] = static_cast<uint8_t>(value);
  return fields;
}

// netip's parseIPv6 without the zone (already split off by the caller).
std::optional<IpBytes> parseV6(std::string_view s) {
  IpBytes ip{};
  int ellipsis = -1;  // byte position of "::" in ip, -1 if none yet
  size_t pos = 0;
  if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
    ellipsis = 0;
    pos = 2;
    if (pos == s.size()) {
      return ip;  // "::" alone.
    }
  }
  int i = 0;  // bytes of ip filled so far
  while (i < 16) {
    const size_t field_start = pos;
    uint32_t acc = 0;
    int digits = 0;
    while (pos < s.size() && hexDigitValue(s[pos]) >= 0) {
      if (digits == 4) {
        return std::nullopt;  // More than four hex digits in a group.
      }
      acc = (acc << 4) | static_cast<uint32_t>(hexDigitValue(s[pos]));
      ++digits;
      ++pos;
    }
    if (digits == 0) {
      return std::nullopt;
    }
    if (pos < s.size() && s[pos] == '.') {
      // A trailing dotted IPv4 takes the last four bytes, or the place right
      // before a "::" expansion.
      if (ellipsis < 0 && i != 12) {
        return std::nullopt;
      }
      if (i + 4 > 16) {
        return std::nullopt;
      }
      auto v4 = parseV4(s.substr(field_start));
      if (!v4) {
        return std::nullopt;
      }
      std::copy(v4->begin(), v4->end(), ip.begin() + i);
      i += 4;
      pos = s.size();
      break;
    }
    ip[i] = static_cast<uint8_t>(acc >> 8);
    ip[i + 1] = static_cast<uint8_t>(acc);
    i += 2;
    if (pos == s.size()) {
      break;
    }
    if (s[pos] != ':' || pos + 1 == s.size()) {
      return std::nullopt;  // Not a colon, or a colon ending the string.
    }
    ++pos;
    if (s[pos] == ':') {
      if (ellipsis >= 0) {
        return std::nullopt;  // A second "::".
      }
      ellipsis = i;
      ++pos;
      if (pos == s.size()) {
        break;
      }
    }
  }
  if (pos != s.size()) {
    return std::nullopt;  // Trailing garbage after eight groups.
  }
  if (i < 16) {
    if (ellipsis < 0) {
      return std::nullopt;  // Too short.
    }
    const int n = 16 - i;
    for (int j = i - 1; j >= ellipsis; --j) {
      ip[j + n] = ip[j];
    }
    std::fill(ip.begin() + ellipsis, ip.begin() + ellipsis + n, 0);
  } else if (ellipsis >= 0) {
    return std::nullopt;  // "::" must stand for at least one zero group.
  }
  return ip;
}

IpBytes maskBytes(const IpBytes& ip, int bits) {
  IpBytes out{};
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(bits - i * 8, 0, 8);
    const auto mask = static_cast<uint8_t>(keep == 0 ? 0 : 0xFF << (8 - keep));
    out[i] = ip[i] & mask;
  }
  return out;
}

// Prefix length over the 16-byte form: IPv4 networks sit behind the 96-bit
// mapped prefix.
int fullPrefix(bool v4, int prefix) {
  return v4 ? 96 + prefix : prefix;
}

// The port condition of an entry: kAnyPort for "", the number for a canonical
// decimal string that can equal an effective port, kNeverPort otherwise.
int32_t portCode(std::string_view port) {
  if (port.empty()) {
    return kAnyPort;
  }
  if (port.size() > 5 || (port.size() > 1 && port[0] == '0') ||
      !std::all_of(port.begin(), port.end(), isDigit)) {
    return kNeverPort;
  }
  int32_t value = 0;
  for (char c : port) {
    value = value * 10 + (c - '0');
  }
  return value <= 65535 ? value : kNeverPort;
}

bool portFits(int32_t code, uint16_t port) {
  return code == kAnyPort || code == port;
}

}  // namespace

const char* hostMatchHowName(HostMatchHow how) {
  switch (how) {
    case HostMatchHow::kName:
      return "name";
    case HostMatchHow::kSubdomain:
      return "subdomain";
    case HostMatchHow::kIp:
      return "ip";
    case HostMatchHow::kCidr:
      return "cidr";
    case HostMatchHow::kAny:
      return "any";
  }
  return "any";
}

std::optional<ParsedIp> parseGoAddr(std::string_view text, bool allow_zone) {
  for (char c : text) {
    if (c == '.') {
      auto v4 = parseV4(text);
      if (!v4) {
        return std::nullopt;
      }
      ParsedIp out;
      out.bytes = kV4MappedPrefix;
      std::copy(v4->begin(), v4->end(), out.bytes.begin() + 12);
      out.dotted_v4 = true;
      return out;
    }
    if (c == ':') {
      ParsedIp out;
      const size_t percent = text.find('%');
      if (percent != std::string_view::npos) {
        if (percent + 1 == text.size() || !allow_zone) {
          return std::nullopt;  // Empty zone, or a zone where none may be.
        }
        out.had_zone = true;
        text = text.substr(0, percent);
      }
      auto v6 = parseV6(text);
      if (!v6) {
        return std::nullopt;
      }
      out.bytes = *v6;
      return out;
    }
    if (c == '%') {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

bool isV4Like(const IpBytes& ip) {
  return std::equal(ip.begin(), ip.begin() + 12, kV4MappedPrefix.begin());
}

bool isLoopbackIp(const IpBytes& ip) {
  if (isV4Like(ip)) {
    return ip[12] == 127;
  }
  static constexpr IpBytes kV6Loopback = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return ip == kV6Loopback;
}

std::optional<GoCidr> parseGoCidr(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  auto addr = parseGoAddr(text.substr(0, slash), /*allow_zone=*/false);
  if (!addr) {
    return std::nullopt;
  }
  const std::string_view mask = text.substr(slash + 1);
  int n = 0;
  size_t i = 0;
  for (; i < mask.size() && isDigit(mask[i]); ++i) {
    n = n * 10 + (mask[i] - '0');
    if (n >= kDtoiBig) {
      return std::nullopt;
    }
  }
  if (i == 0 || i != mask.size()) {
    return std::nullopt;
  }
  const int bits = addr->dotted_v4 ? 32 : 128;
  if (n > bits) {
    return std::nullopt;
  }
  GoCidr cidr;
  if (addr->dotted_v4) {
    cidr.v4 = true;
    cidr.prefix = n;
    cidr.network = maskBytes(addr->bytes, 96 + n);
    return cidr;
  }
  cidr.network = maskBytes(addr->bytes, n);
  // IPNet.Contains() turns a network whose masked address is IPv4-mapped into
  // an IPv4 network with the last 32 bits of the mask.
  if (isV4Like(cidr.network)) {
    cidr.v4 = true;
    cidr.prefix = n - 96;
  } else {
    cidr.prefix = n;
  }
  return cidr;
}

bool cidrContains(const GoCidr& cidr, const IpBytes& ip) {
  if (cidr.v4 != isV4Like(ip)) {
    return false;
  }
  return maskBytes(ip, fullPrefix(cidr.v4, cidr.prefix)) == cidr.network;
}

std::optional<std::pair<std::string_view, std::string_view>> splitGoHostPort(
    std::string_view hostport) {
  const size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;  // Missing port.
  }
  std::string_view host;
  size_t no_open_from = 0;   // no '[' may appear from here on
  size_t no_close_from = 0;  // no ']' may appear from here on
  if (hostport[0] == '[') {
    const size_t end = hostport.find(']');
    if (end == std::string_view::npos) {
      return std::nullopt;  // Missing ']'.
    }
    if (end + 1 != colon) {
      return std::nullopt;  // Missing port, or too many colons after ']'.
    }
    host = hostport.substr(1, end - 1);
    no_open_from = 1;
    no_close_from = end + 1;
  } else {
    host = hostport.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return std::nullopt;  // Too many colons: IPv6 needs brackets.
    }
  }
  if (hostport.find('[', no_open_from) != std::string_view::npos ||
      hostport.find(']', no_close_from) != std::string_view::npos) {
    return std::nullopt;
  }
  return std::make_pair(host, hostport.substr(colon + 1));
}

std::vector<NoProxyEntry> parseNoProxyEntries(std::string_view value) {
  std::vector<NoProxyEntry> entries;
  int index = -1;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) {
      comma = value.size();
    }
    const std::string_view piece = value.substr(start, comma - start);
    start = comma + 1;
    ++index;

    std::string text = goToLower(goTrimSpace(piece));
    if (text.empty()) {
      continue;
    }
    NoProxyEntry entry;
    entry.index = index;
    if (text == "*") {
      entry.how = HostMatchHow::kAny;
      entry.text = std::move(text);
      entries.push_back(std::move(entry));
      continue;
    }
    if (auto cidr = parseGoCidr(text)) {
      entry.how = HostMatchHow::kCidr;
      entry.cidr = *cidr;
      entry.text = std::move(text);
      entries.push_back(std::move(entry));
      continue;
    }
    std::string_view host = text;
    std::string_view port;
    if (auto split = splitGoHostPort(text)) {
      host = split->first;
      port = split->second;
      if (host.empty()) {
        continue;  // ":8080": no host part; Go ignores the entry.
      }
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
      }
    }
    if (auto ip = parseGoAddr(host, /*allow_zone=*/false)) {
      entry.how = HostMatchHow::kIp;
      entry.ip = ip->bytes;
      entry.port = std::string(port);
      entry.text = std::move(text);
      entries.push_back(std::move(entry));
      continue;
    }
    if (host.empty()) {
      continue;
    }
    if (host.size() >= 2 && host[0] == '*' && host[1] == '.') {
      host.remove_prefix(1);  // "*.example.com" is ".example.com".
    }
    const bool match_host = host[0] != '.';
    std::string_view name = match_host ? host : host.substr(1);
    // The name is converted without its leading dot, which is put back.
    auto ascii = idnaToAscii(name);
    entry.how = match_host ? HostMatchHow::kName : HostMatchHow::kSubdomain;
    entry.suffix = "." + (ascii ? *ascii : std::string(name));
    entry.port = std::string(port);
    entry.text = std::move(text);
    entries.push_back(std::move(entry));
  }
  return entries;
}

HostKey HostKey::from(std::string_view host) {
  HostKey key;
  std::string ascii;
  if (isAscii(host)) {
    ascii.assign(host);
  } else {
    ascii = idnaToAscii(host).value_or(std::string(host));
  }
  key.loopback = ascii == "localhost";
  key.malformed = ascii.find_first_of("[]") != std::string::npos;
  if (auto ip = parseGoAddr(ascii, /*allow_zone=*/true)) {
    key.is_ip = true;
    key.addr = ip->bytes;
    key.is_v4 = isV4Like(ip->bytes);
    key.loopback = key.loopback || isLoopbackIp(ip->bytes);
  }
  key.name = goToLower(goTrimSpace(ascii));
  return key;
}

bool entryMatches(const NoProxyEntry& entry, const HostKey& host, uint16_t port) {
  switch (entry.how) {
    case HostMatchHow::kAny:
      return true;
    case HostMatchHow::kCidr:
      return host.is_ip && cidrContains(entry.cidr, host.addr);
    case HostMatchHow::kIp:
      return host.is_ip && host.addr == entry.ip && portFits(portCode(entry.port), port);
    case HostMatchHow::kName:
    case HostMatchHow::kSubdomain: {
      if (host.is_ip) {
        return false;
      }
      const std::string_view name = host.name;
      const std::string_view suffix = entry.suffix;
      const bool hit =
          (name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix) ||
          (entry.how == HostMatchHow::kName && name == suffix.substr(1));
      return hit && portFits(portCode(entry.port), port);
    }
  }
  return false;
}

size_t HostMatcher::BytesHash::operator()(const IpBytes& b) const {
  uint64_t hi = 0;
  uint64_t lo = 0;
  std::memcpy(&hi, b.data(), 8);
  std::memcpy(&lo, b.data() + 8, 8);
  // splitmix64 finaliser over both halves: std::hash<uint64_t> is the
  // identity in libstdc++, which would cluster masked networks.
  uint64_t x = hi * 0x9E3779B97F4A7C15ULL ^ lo;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return static_cast<size_t>(x);
}

bool HostMatcher::before(uint32_t a, uint32_t b) const {
  const Entry& x = entries_[a];
  const Entry& y = entries_[b];
  return x.list_id != y.list_id ? x.list_id < y.list_id : x.index < y.index;
}

void HostMatcher::insert(Postings* postings, uint32_t id) {
  // Appending is the common case (lists arrive in order).
  if (postings->empty() || before(postings->back(), id)) {
    postings->push_back(id);
    return;
  }
  auto it = std::upper_bound(postings->begin(), postings->end(), id,
                             [this](uint32_t a, uint32_t b) { return before(a, b); });
  postings->insert(it, id);
}

HostMatcher::CidrTable* HostMatcher::cidrTable(bool v4, int prefix) {
  auto& tables = v4 ? v4_cidrs_ : v6_cidrs_;
  auto it = std::lower_bound(tables.begin(), tables.end(), prefix,
                             [](const CidrTable& t, int p) { return t.prefix < p; });
  if (it == tables.end() || it->prefix != prefix) {
    it = tables.insert(it, CidrTable{prefix, {}});
  }
  return &*it;
}

void HostMatcher::addList(int list_id, std::string_view no_proxy_value) {
  for (NoProxyEntry& parsed : parseNoProxyEntries(no_proxy_value)) {
    const auto id = static_cast<uint32_t>(entries_.size());
    entries_.push_back(
        Entry{list_id, parsed.index, portCode(parsed.port), parsed.how, std::move(parsed.text)});
    switch (parsed.how) {
      case HostMatchHow::kAny:
        insert(&any_, id);
        break;
      case HostMatchHow::kCidr:
        insert(&cidrTable(parsed.cidr.v4, parsed.cidr.prefix)->networks[parsed.cidr.network], id);
        break;
      case HostMatchHow::kIp:
        insert(&exact_ips_[parsed.ip], id);
        break;
      case HostMatchHow::kName:
        insert(&exact_names_[parsed.suffix.substr(1)], id);
        insert(&suffixes_[parsed.suffix], id);
        break;
      case HostMatchHow::kSubdomain:
        insert(&suffixes_[parsed.suffix], id);
        break;
    }
  }
}

void HostMatcher::consider(const Postings& postings, uint16_t port,
                           std::optional<uint32_t>* best) const {
  for (uint32_t id : postings) {
    if (*best && !before(id, **best)) {
      return;  // Sorted: nothing further can beat the current best.
    }
    if (portFits(entries_[id].port, port)) {
      *best = id;
      return;
    }
  }
}

std::optional<HostListMatch> HostMatcher::match(const HostKey& host, uint16_t port) const {
  std::optional<uint32_t> best;
  if (!any_.empty()) {
    best = any_.front();
  }
  if (host.is_ip) {
    if (!exact_ips_.empty()) {
      if (auto it = exact_ips_.find(host.addr); it != exact_ips_.end()) {
        consider(it->second, port, &best);
      }
    }
    for (const CidrTable& table : host.is_v4 ? v4_cidrs_ : v6_cidrs_) {
      const IpBytes network = maskBytes(host.addr, fullPrefix(host.is_v4, table.prefix));
      if (auto it = table.networks.find(network); it != table.networks.end()) {
        consider(it->second, port, &best);
      }
    }
  } else {
    const std::string_view name = host.name;
    if (!exact_names_.empty()) {
      if (auto it = exact_names_.find(name); it != exact_names_.end()) {
        consider(it->second, port, &best);
      }
    }
    if (!suffixes_.empty()) {
      for (size_t dot = name.find('.'); dot != std::string_view::npos;
           dot = name.find('.', dot + 1)) {
        if (auto it = suffixes_.find(name.substr(dot)); it != suffixes_.end()) {
          consider(it->second, port, &best);
        }
      }
    }
  }
  if (!best) {
    return std::nullopt;
  }
  const Entry& entry = entries_[*best];
  return HostListMatch{entry.list_id, entry.index, entry.text, entry.how};
}

}  // namespace switchyard::rules
