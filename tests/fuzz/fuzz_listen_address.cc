// Fuzzes listener address parsing (the first bytes a user gives us).
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/net_address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  sockaddr_storage addr;
  std::string error;
  if (switchyard::parseListenAddress(text, &addr, &error)) {
    (void)switchyard::formatAddress(reinterpret_cast<const sockaddr*>(&addr));
  }
  return 0;
}
