// Fuzzes the NO_PROXY readings: an arbitrary value and host go through Go's
// reading (NoProxyList and a multi-list HostMatcher), curl 7.88.1's and
// Python's. Besides crashes and leaks it checks one invariant: the indexed
// HostMatcher gives exactly the answer of the plain per-entry rule.
//
// Input layout: byte 0-1 = port, byte 2 = flags, then "value\nhost".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "rules/host_match.h"
#include "rules/no_proxy.h"
#include "rules/proxy_dialects.h"

namespace {

using switchyard::rules::entryMatches;
using switchyard::rules::HostKey;
using switchyard::rules::HostMatcher;
using switchyard::rules::NoProxyList;
using switchyard::rules::parseNoProxyEntries;

std::optional<std::pair<int, int>> plainMatch(std::string_view first, std::string_view second,
                                              const HostKey& key, uint16_t port) {
  std::optional<std::pair<int, int>> best;
  int list_id = 0;
  for (std::string_view value : {first, second}) {
    for (const auto& entry : parseNoProxyEntries(value)) {
      if (entryMatches(entry, key, port)) {
        const std::pair<int, int> found{list_id, entry.index};
        if (!best || found < *best) {
          best = found;
        }
      }
    }
    ++list_id;
  }
  return best;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) {
    return 0;
  }
  const auto port = static_cast<uint16_t>(data[0] | (data[1] << 8));
  const uint8_t flags = data[2];
  const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);
  const size_t newline = input.find('\n');
  const std::string_view value = input.substr(0, newline);
  const std::string_view host =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  const NoProxyList list = NoProxyList::parse(value);
  const auto verdict = list.evaluate(host, port);
  if (verdict.match && !verdict.bypass) {
    abort();
  }

  // Two lists: the value itself, and the value's second half, so that the
  // multi-list ordering is exercised too.
  const std::string_view second = value.substr(value.size() / 2);
  HostMatcher matcher;
  matcher.addList(0, value);
  matcher.addList(1, second);
  const HostKey key = HostKey::from(host);
  const auto indexed = matcher.match(key, port);
  const auto plain = plainMatch(value, second, key, port);
  if (indexed.has_value() != plain.has_value() ||
      (indexed && std::make_pair(indexed->list_id, indexed->index) != *plain)) {
    abort();
  }

  (void)switchyard::rules::curlBypass(value, host, port);
  (void)switchyard::rules::pythonBypass(value, host,
                                        (flags & 1) ? std::optional<uint16_t>(port) : std::nullopt);
  (void)switchyard::rules::isLoopbackShortcut(host);
  return 0;
}
