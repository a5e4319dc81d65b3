#include "rules/pac.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "rules/host_match.h"

namespace switchyard::rules {

namespace {

// Port condition meaning "any port" in the emitted tables.
constexpr int kAnyPort = -1;

// Every key of an emitted lookup table starts with this, so that no host can
// ever collide with a property JavaScript objects inherit ("constructor",
// "__proto__"), and the tables can be plain object literals.
constexpr std::string_view kKeyPrefix = "k:";

// The matcher. ES3 only (var, no let/const/arrow functions, no
// String.prototype.startsWith): PAC files still run in old engines (WinHTTP's
// JScript among them). It mirrors rules/host_match.cc: syParseAddr() is Go's
// netip.ParseAddr (zone accepted and dropped), syHost() is HostKey::from(),
// syMatch() is HostMatcher::match() reduced to a yes/no answer.
constexpr std::string_view kMatcherJs = R"js(
function syHexVal(c) {
  var i = "0123456789abcdef".indexOf(c.toLowerCase());
  return c.length === 1 ? i : -1;
}

function syParseV4(s) {
  var f = [], v = 0, d = 0, i, c;
  for (i = 0; i < s.length; i++) {
    c = s.charAt(i);
    if (c >= "0" && c <= "9") {
      if (d === 1 && v === 0) {
        return null;
      }
      v = v * 10 + (c.charCodeAt(0) - 48);
      d++;
      if (v > 255) {
        return null;
      }
    } else if (c === ".") {
      if (i === 0 || i === s.length - 1 || s.charAt(i - 1) === "." || f.length === 3) {
        return null;
      }
      f.push(v);
      v = 0;
      d = 0;
    } else {
      return null;
    }
  }
  if (f.length < 3) {
    return null;
  }
  f.push(v);
  return f;
}

function syParseV6(s) {
  var ip = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  var ell = -1, pos = 0, i = 0, start, acc, digits, h, v4, n, j;
  if (s.length >= 2 && s.charAt(0) === ":" && s.charAt(1) === ":") {
    ell = 0;
    pos = 2;
    if (pos === s.length) {
      return ip;
    }
  }
  while (i < 16) {
    start = pos;
    acc = 0;
    digits = 0;
    while (pos < s.length && (h = syHexVal(s.charAt(pos))) >= 0) {
      if (digits === 4) {
        return null;
      }
      acc = acc * 16 + h;
      digits++;
      pos++;
    }
    if (digits === 0) {
      return null;
    }
    if (pos < s.length && s.charAt(pos) === ".") {
      if ((ell < 0 && i !== 12) || i + 4 > 16) {
        return null;
      }
      v4 = syParseV4(s.substring(start));
      if (!v4) {
        return null;
      }
      for (j = 0; j < 4; j++) {
        ip[i + j] = v4[j];
      }
      i += 4;
      pos = s.length;
      break;
    }
    ip[i] = acc >> 8;
    ip[i + 1] = acc & 255;
    i += 2;
    if (pos === s.length) {
      break;
    }
    if (s.charAt(pos) !== ":" || pos + 1 === s.length) {
      return null;
    }
    pos++;
    if (s.charAt(pos) === ":") {
      if (ell >= 0) {
        return null;
      }
      ell = i;
      pos++;
      if (pos === s.length) {
        break;
      }
    }
  }
  if (pos !== s.length) {
    return null;
  }
  if (i < 16) {
    if (ell < 0) {
      return null;
    }
    n = 16 - i;
    for (j = i - 1; j >= ell; j--) {
      ip[j + n] = ip[j];
    }
    for (j = ell; j < ell + n; j++) {
      ip[j] = 0;
    }
  } else if (ell >= 0) {
    return null;
  }
  return ip;
}

function syParseAddr(s) {
  var i, c, p, v4;
  for (i = 0; i < s.length; i++) {
    c = s.charAt(i);
    if (c === ".") {
      v4 = syParseV4(s);
      return v4 ? [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, v4[0], v4[1], v4[2], v4[3]] : null;
    }
    if (c === ":") {
      p = s.indexOf("%");
      if (p >= 0) {
        if (p + 1 === s.length) {
          return null;
        }
        s = s.substring(0, p);
      }
      return syParseV6(s);
    }
    if (c === "%") {
      return null;
    }
  }
  return null;
}

function syMaskedHex(b, bits) {
  var out = "", i, keep, v;
  for (i = 0; i < 16; i++) {
    keep = Math.max(0, Math.min(8, bits - i * 8));
    v = b[i] & ((0xff << (8 - keep)) & 0xff);
    out += (v < 16 ? "0" : "") + v.toString(16);
  }
  return out;
}

function syHost(host) {
  var h = host, k = {}, i, v4like = true;
  // Most engines pass an IPv6 host without brackets, some with them.
  if (h.length >= 2 && h.charAt(0) === "[" && h.charAt(h.length - 1) === "]") {
    h = h.substring(1, h.length - 1);
  }
  k.loopback = h === "localhost";
  k.malformed = h.indexOf("[") >= 0 || h.indexOf("]") >= 0;
  k.ip = syParseAddr(h);
  if (k.ip) {
    for (i = 0; i < 12; i++) {
      if (k.ip[i] !== (i < 10 ? 0 : 255)) {
        v4like = false;
      }
    }
    k.v4 = v4like;
    k.hex = syMaskedHex(k.ip, 128);
    if (v4like ? k.ip[12] === 127 : k.hex === "00000000000000000000000000000001") {
      k.loopback = true;
    }
  }
  k.name = h.replace(/^\s+|\s+$/g, "").toLowerCase();
  return k;
}

function syPort(url) {
  var s = url.indexOf("://"), scheme, rest, end, auth, p, t, def;
  if (s < 0) {
    return -1;
  }
  scheme = url.substring(0, s).toLowerCase();
  def = scheme === "https" || scheme === "wss" ? 443 :
        scheme === "http" || scheme === "ws" ? 80 : scheme === "ftp" ? 21 : -1;
  rest = url.substring(s + 3);
  end = rest.search(/[\/?#]/);
  auth = end < 0 ? rest : rest.substring(0, end);
  p = auth.lastIndexOf("@");
  if (p >= 0) {
    auth = auth.substring(p + 1);
  }
  if (auth.charAt(0) === "[") {
    p = auth.indexOf("]");
    t = p >= 0 && auth.charAt(p + 1) === ":" ? auth.substring(p + 2) : "";
  } else {
    p = auth.lastIndexOf(":");
    t = p >= 0 ? auth.substring(p + 1) : "";
  }
  if (t === "") {
    return def;
  }
  if (!/^[0-9]{1,5}$/.test(t) || parseInt(t, 10) > 65535) {
    return -1;
  }
  return parseInt(t, 10);
}

function syPortOk(ports, port) {
  var i;
  if (!ports) {
    return false;
  }
  for (i = 0; i < ports.length; i++) {
    if (ports[i] === -1 || ports[i] === port) {
      return true;
    }
  }
  return false;
}

// One NO_PROXY-syntax list: "any" (a "*" entry), "n" exact names (bare
// entries), "s" suffixes with their leading dot (bare and dotted entries),
// "i" exact IPs (hex of the 16-byte form, IPv4 mapped), "c" CIDR groups
// [family, prefix over the 16-byte form, {network hex: 1}]. Names and IPs
// map to the ports they allow (-1: any).
function syMatch(t, k, port) {
  var i, g, d, n;
  if (t.any) {
    return true;
  }
  if (k.ip) {
    if (syPortOk(t.i["k:" + k.hex], port)) {
      return true;
    }
    for (i = 0; i < t.c.length; i++) {
      g = t.c[i];
      if ((g[0] === 4) === k.v4 && g[2]["k:" + syMaskedHex(k.ip, g[1])]) {
        return true;
      }
    }
    return false;
  }
  n = k.name;
  if (syPortOk(t.n["k:" + n], port)) {
    return true;
  }
  for (d = n.indexOf("."); d >= 0; d = n.indexOf(".", d + 1)) {
    if (syPortOk(t.s["k:" + n.substring(d)], port)) {
      return true;
    }
  }
  return false;
}

function FindProxyForURL(url, host) {
  var k = syHost(host), port = syPort(url), i;
  for (i = 0; i < SY_RULES.length; i++) {
    if (syMatch(SY_RULES[i].hosts, k, port)) {
      return SY_RULES[i].answer === "DIRECT" ? "DIRECT" : SY_PROXY;
    }
  }
  // Go's loopback short-cut, and its answer for a host it cannot split back
  // out of host:port, come before NO_PROXY and after the rules.
  if (k.loopback || k.malformed || syMatch(SY_NO_PROXY, k, port)) {
    return "DIRECT";
  }
  return SY_PROXY;
}
)js";

// The entry's port as a number the script compares with the URL's effective
// port: kAnyPort for "", the value for a canonical decimal 0..65535, nullopt
// for a port no request can have ("08080", "http"), which never matches.
std::optional<int> portCondition(std::string_view port) {
  if (port.empty()) {
    return kAnyPort;
  }
  if (port.size() > 5 || (port.size() > 1 && port[0] == '0')) {
    return std::nullopt;
  }
  int value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  if (value > 65535) {
    return std::nullopt;
  }
  return value;
}

std::string hexBytes(const IpBytes& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
  }
  return out;
}

std::string tableKey(std::string_view key) {
  std::string out(kKeyPrefix);
  out += key;
  return out;
}

// One list's tables while they are being collected; sorted containers keep
// the output stable, so the same config always gives the same bytes.
struct ListTables {
  bool any = false;
  std::map<std::string, std::set<int>> names;
  std::map<std::string, std::set<int>> suffixes;
  std::map<std::string, std::set<int>> ips;
  // (family, prefix over 16 bytes) -> networks
  std::map<std::pair<int, int>, std::set<std::string>> cidrs;

  void add(const NoProxyEntry& entry) {
    switch (entry.how) {
      case HostMatchHow::kAny:
        any = true;
        return;
      case HostMatchHow::kCidr: {
        const int full = entry.cidr.v4 ? 96 + entry.cidr.prefix : entry.cidr.prefix;
        cidrs[{entry.cidr.v4 ? 4 : 6, full}].insert(tableKey(hexBytes(entry.cidr.network)));
        return;
      }
      case HostMatchHow::kIp:
      case HostMatchHow::kName:
      case HostMatchHow::kSubdomain:
        break;
    }
    const std::optional<int> port = portCondition(entry.port);
    if (!port) {
      return;  // Matches no request at all.
    }
    if (entry.how == HostMatchHow::kIp) {
      ips[tableKey(hexBytes(entry.ip))].insert(*port);
      return;
    }
    if (entry.how == HostMatchHow::kName) {
      names[tableKey(std::string_view(entry.suffix).substr(1))].insert(*port);
    }
    suffixes[tableKey(entry.suffix)].insert(*port);
  }

  static nlohmann::json portsJson(const std::set<int>& ports) {
    if (ports.count(kAnyPort) != 0) {
      return nlohmann::json::array({kAnyPort});
    }
    return nlohmann::json(ports);
  }

  static nlohmann::json mapJson(const std::map<std::string, std::set<int>>& m) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, ports] : m) {
      out[key] = portsJson(ports);
    }
    return out;
  }

  nlohmann::json toJson() const {
    nlohmann::json c = nlohmann::json::array();
    for (const auto& [group, networks] : cidrs) {
      nlohmann::json nets = nlohmann::json::object();
      for (const std::string& net : networks) {
        nets[net] = 1;
      }
      c.push_back(nlohmann::json::array({group.first, group.second, std::move(nets)}));
    }
    return {{"any", any},
            {"n", mapJson(names)},
            {"s", mapJson(suffixes)},
            {"i", mapJson(ips)},
            {"c", std::move(c)}};
  }
};

nlohmann::json listJson(std::string_view value) {
  ListTables tables;
  for (const NoProxyEntry& entry : parseNoProxyEntries(value)) {
    tables.add(entry);
  }
  return tables.toJson();
}

// JSON as a JavaScript expression: ASCII only (so U+2028 in a rule name
// cannot end a line inside a string literal in old engines), and invalid
// UTF-8 replaced rather than thrown on.
std::string jsValue(const nlohmann::json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string generatePac(const ConfigSnapshot& snap, const std::string& proxy_host_port) {
  const Config& config = snap.config();
  nlohmann::json rules = nlohmann::json::array();
  for (const RuleConfig& rule : config.rules) {
    // A rule that needs a module path never matches a plain request.
    if (!rule.hosts || rule.modules) {
      continue;
    }
    rules.push_back({{"rule", rule.name},
                     {"action", actionName(rule.action)},
                     {"answer", rule.action == Action::kDirect ? "DIRECT" : "PROXY"},
                     {"hosts", listJson(rule.hosts->value)}});
  }

  std::string out;
  out += "// Proxy auto-config generated by switchyard (config generation ";
  out += std::to_string(snap.generation());
  out +=
      ").\n"
      "// It answers as switchyard's rules do for plain requests: the explicit `hosts:`\n"
      "// rules in order (direct -> DIRECT, others -> the proxy), then Go's NO_PROXY\n"
      "// (-> DIRECT), else the proxy. No DNS lookups: IP ranges match IP literals only.\n";
  out += "var SY_PROXY = " + jsValue("PROXY " + proxy_host_port) + ";\n";
  // One rule a line, so that a person reading the file can find each one.
  out += "var SY_RULES = [";
  for (size_t i = 0; i < rules.size(); ++i) {
    out += i == 0 ? "\n  " : ",\n  ";
    out += jsValue(rules[i]);
  }
  out += rules.empty() ? "];\n" : "\n];\n";
  out += "var SY_NO_PROXY = " + jsValue(listJson(config.env.no_proxy.value)) + ";\n";
  out += kMatcherJs;
  return out;
}

}  // namespace switchyard::rules
