// Fuzzes GOPROXY parsing and the walk. Input: flags byte, then the GOPROXY
// value up to a NUL, then one byte per attempt choosing its outcome. Checks
// the walk's invariants: it ends within the list length, never hands out a
// step the module may not use, logs one attempt per entry it passed, and
// its final outcome agrees with its success flag.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rules/goproxy_list.h"

using switchyard::rules::AttemptOutcome;
using switchyard::rules::GoproxyEntry;
using switchyard::rules::GoproxyList;
using switchyard::rules::GoproxyWalk;

namespace {

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

AttemptOutcome outcomeFor(uint8_t b) {
  static const int kStatuses[] = {200, 404, 410, 400, 403, 500, 502, 503};
  switch (b % 6) {
    case 0:
      return switchyard::rules::outcomeFromHttpStatus(kStatuses[(b / 6) % 8]);
    case 1:
      return {AttemptOutcome::Kind::kTransport, 0, "connection refused"};
    case 2:
      return {AttemptOutcome::Kind::kTimeout, 0, "timeout"};
    case 3:
      return {AttemptOutcome::Kind::kDirectUnavailable, 0, "no direct"};
    case 4:
      return {AttemptOutcome::Kind::kNotFound, 0, "not found"};
    default:
      return {AttemptOutcome::Kind::kSuccess, 200, ""};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t nul = rest.find('\0');
  std::string_view value = rest.substr(0, nul);
  std::string_view script =
      nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);

  GoproxyList list;
  std::string error;
  const bool insert_noproxy = flags & 1;
  const bool is_private = flags & 2;
  if (!switchyard::rules::parseGoproxyList(value, insert_noproxy, &list, &error)) {
    check(!error.empty());
    return 0;
  }
  check(!list.entries.empty());
  // `direct` and `off` can only be last; noproxy only first.
  for (size_t i = 0; i < list.entries.size(); ++i) {
    const GoproxyEntry& e = list.entries[i];
    if (e.kind == GoproxyEntry::Kind::kDirect || e.kind == GoproxyEntry::Kind::kOff) {
      check(i + 1 == list.entries.size());
    }
    if (e.kind == GoproxyEntry::Kind::kNoproxy) {
      check(i == 0 && insert_noproxy);
    }
    if (e.kind == GoproxyEntry::Kind::kUrl) {
      check(!e.url.empty());
    }
  }

  GoproxyWalk walk(list, is_private);
  size_t handed_out = 0;
  size_t step = 0;
  while (const GoproxyEntry* e = walk.next()) {
    check(++handed_out <= list.entries.size());
    check(e->kind != GoproxyEntry::Kind::kOff);
    if (is_private) {
      check(e->kind != GoproxyEntry::Kind::kUrl);
    } else {
      check(e->kind != GoproxyEntry::Kind::kNoproxy);
    }
    check(walk.next() == e);  // idempotent until reported
    uint8_t b = step < script.size() ? static_cast<uint8_t>(script[step]) : 0x05;
    ++step;
    walk.report(outcomeFor(b));
  }
  check(walk.done());
  check(walk.attempts().size() <= list.entries.size());
  const AttemptOutcome final_outcome = walk.finalOutcome();
  check(walk.succeeded() == (final_outcome.kind == AttemptOutcome::Kind::kSuccess));
  if (walk.succeeded()) {
    check(!walk.attempts().empty() && walk.attempts().back().next == "served");
  }
  int status = switchyard::rules::moduleProxyStatus(final_outcome);
  check(status == 200 || status == 404 || status == 502 || status == 504);
  return 0;
}
