#include "daemon/access.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace switchyard {

namespace {

// True if the first `prefix` bits of a and b are equal.
bool prefixEquals(const uint8_t* a, const uint8_t* b, int prefix) {
  int full = prefix / 8;
  if (std::memcmp(a, b, static_cast<size_t>(full)) != 0) {
    return false;
  }
  int bits = prefix % 8;
  if (bits == 0) {
    return true;
  }
  auto mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

std::optional<ClientAcl> ClientAcl::parse(const std::vector<std::string>& entries,
                                          std::string* error) {
  ClientAcl acl;
  for (const std::string& entry : entries) {
    std::string addr = entry;
    int prefix = -1;
    size_t slash = entry.find('/');
    if (slash != std::string::npos) {
      addr = entry.substr(0, slash);
      std::string bits = entry.substr(slash + 1);
      unsigned value = 0;
      auto [ptr, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
      if (bits.empty() || ec != std::errc() || ptr != bits.data() + bits.size() || value > 128) {
        *error = "'" + entry + "': bad prefix length";
        return std::nullopt;
      }
      prefix = static_cast<int>(value);
    }
    Net net{};
    if (inet_pton(AF_INET, addr.c_str(), net.bytes) == 1) {
      net.family = AF_INET;
      if (prefix > 32) {
        *error = "'" + entry + "': an IPv4 prefix is at most 32 bits";
        return std::nullopt;
      }
      net.prefix = prefix < 0 ? 32 : prefix;
    } else if (inet_pton(AF_INET6, addr.c_str(), net.bytes) == 1) {
      net.family = AF_INET6;
      net.prefix = prefix < 0 ? 128 : prefix;
    } else {
      *error = "'" + entry + "' is not an IP address or CIDR block";
      return std::nullopt;
    }
    // Clear the host bits so that "10.1.2.3/8" means 10.0.0.0/8.
    int len = net.family == AF_INET ? 4 : 16;
    for (int i = 0; i < len; ++i) {
      int keep = net.prefix - i * 8;
      if (keep <= 0) {
        net.bytes[i] = 0;
      } else if (keep < 8) {
        net.bytes[i] &= static_cast<uint8_t>(0xff << (8 - keep));
      }
    }
    acl.nets_.push_back(net);
  }
  return acl;
}

bool ClientAcl::allows(const sockaddr* addr) const {
  uint8_t bytes[16];
  int family = addr->sa_family;
  if (family == AF_INET) {
    std::memcpy(bytes, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, 4);
  } else if (family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      family = AF_INET;
      std::memcpy(bytes, reinterpret_cast<const uint8_t*>(&v6->sin6_addr) + 12, 4);
    } else {
      std::memcpy(bytes, &v6->sin6_addr, 16);
    }
  } else {
    return false;
  }
  for (const Net& net : nets_) {
    if (net.family == family && prefixEquals(net.bytes, bytes, net.prefix)) {
      return true;
    }
  }
  return false;
}

}  // namespace switchyard
