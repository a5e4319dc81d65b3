// Parsing and printing of socket addresses for listeners and logs.
#pragma once

#include <sys/socket.h>

#include <string>

namespace switchyard {

// "127.0.0.1:3128", "[::1]:3128", ":3128" (all IPv4), "localhost:3128".
bool parseListenAddress(const std::string& text, sockaddr_storage* out, std::string* error);

// "127.0.0.1:3128" or "[::1]:3128".
std::string formatAddress(const sockaddr* addr);

}  // namespace switchyard
