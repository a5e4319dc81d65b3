// Client access control: `access.allow_clients` (and the admin listener's
// list) as a set of CIDR blocks, checked against the peer address of every
// accepted connection.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace switchyard {

class ClientAcl {
 public:
  // Parses "10.0.0.0/8", "::1", "2001:db8::/32", "127.0.0.1". Returns nullopt
  // and sets *error for the first bad entry. An empty list allows nobody.
  static std::optional<ClientAcl> parse(const std::vector<std::string>& entries,
                                        std::string* error);

  // True if `addr` is in one of the blocks. An IPv4-mapped IPv6 peer
  // (::ffff:127.0.0.1, as a dual-stack listener reports it) is checked as IPv4.
  bool allows(const sockaddr* addr) const;

  size_t size() const { return nets_.size(); }

 private:
  struct Net {
    int family;         // AF_INET or AF_INET6
    uint8_t bytes[16];  // network address, host bits cleared
    int prefix;         // 0..32 or 0..128
  };
  std::vector<Net> nets_;
};

}  // namespace switchyard
