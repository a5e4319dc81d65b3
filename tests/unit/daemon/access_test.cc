// ClientAcl: allow_clients CIDR blocks checked against peer addresses.
#include "daemon/access.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <vector>

namespace switchyard {
namespace {

sockaddr_storage addr(const std::string& ip) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(1234);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(1234);
  } else {
    ADD_FAILURE() << "bad test address " << ip;
  }
  return ss;
}

struct Case {
  std::vector<std::string> acl;
  std::string peer;
  bool allowed;
};

TEST(ClientAcl, Table) {
  const std::vector<std::string> loopback{"127.0.0.0/8", "::1"};
  const std::vector<Case> cases = {
      {loopback, "127.0.0.1", true},
      {loopback, "127.255.255.254", true},
      {loopback, "128.0.0.1", false},
      {loopback, "::1", true},
      {loopback, "::2", false},
      {loopback, "::ffff:127.0.0.1", true},  // dual-stack listener's view of IPv4
      {loopback, "::ffff:10.0.0.1", false},
      {{"10.0.0.0/8"}, "10.1.2.3", true},
      {{"10.0.0.0/8"}, "11.0.0.0", false},
      {{"10.1.2.3/8"}, "10.200.0.1", true},  // host bits ignored
      {{"192.168.1.0/24"}, "192.168.1.255", true},
      {{"192.168.1.0/24"}, "192.168.2.0", false},
      {{"192.168.1.128/25"}, "192.168.1.127", false},
      {{"192.168.1.128/25"}, "192.168.1.128", true},
      {{"10.0.0.1/31"}, "10.0.0.0", true},
      {{"10.0.0.1/31"}, "10.0.0.2", false},
      {{"0.0.0.0/0"}, "203.0.113.9", true},
      {{"0.0.0.0/0"}, "2001:db8::1", false},
      {{"::/0"}, "2001:db8::1", true},
      {{"::/0"}, "203.0.113.9", false},
      {{"2001:db8::/32"}, "2001:db8:ffff::1", true},
      {{"2001:db8::/32"}, "2001:db9::1", false},
      {{"2001:db8::/33"}, "2001:db8:7fff::1", true},
      {{"2001:db8::/33"}, "2001:db8:8000::1", false},
      {{"203.0.113.7"}, "203.0.113.7", true},
      {{"203.0.113.7"}, "203.0.113.8", false},
      {{}, "127.0.0.1", false},  // an empty list allows nobody
  };
  for (const Case& c : cases) {
    std::string trace = c.peer + " in";
    for (const std::string& e : c.acl) {
      trace += " " + e;
    }
    SCOPED_TRACE(trace);
    std::string error;
    std::optional<ClientAcl> acl = ClientAcl::parse(c.acl, &error);
    ASSERT_TRUE(acl.has_value()) << error;
    sockaddr_storage peer = addr(c.peer);
    EXPECT_EQ(acl->allows(reinterpret_cast<const sockaddr*>(&peer)), c.allowed);
  }
}

TEST(ClientAcl, ParseErrors) {
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/x", "10.0.0.0/8/8",
                          "localhost", "10.0.0", "1.2.3.4.5", "/8", "10.0.0.0/-1"}) {
    SCOPED_TRACE(bad);
    std::string error;
    EXPECT_FALSE(ClientAcl::parse({"127.0.0.1", bad}, &error).has_value());
    EXPECT_NE(error.find(std::string("'") + bad + "'"), std::string::npos) << error;
  }
}

TEST(ClientAcl, UnknownFamilyIsRefused) {
  std::string error;
  std::optional<ClientAcl> acl = ClientAcl::parse({"0.0.0.0/0", "::/0"}, &error);
  ASSERT_TRUE(acl.has_value());
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_FALSE(acl->allows(reinterpret_cast<const sockaddr*>(&unix_addr)));
}

}  // namespace
}  // namespace switchyard
