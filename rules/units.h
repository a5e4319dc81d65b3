// Parsing of the human-written quantities in the config: durations ("10s",
// "1h30m", "250ms") and sizes ("10GiB", "100KB", "1048576"). Both parsers are
// strict: no whitespace, no negative values, no overflow, no unknown unit.
// They never throw; a failure returns std::nullopt and a one-line reason.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::rules {

// The largest duration accepted: 100 years. Longer values are certainly typos
// and would overflow timer arithmetic (libuv adds them to "now").
inline constexpr std::chrono::milliseconds kMaxDuration{100LL * 365 * 24 * 3600 * 1000};

// Go's time.ParseDuration syntax restricted to the units that make sense for
// a proxy: a sequence of <number><unit> pairs, unit one of ms, s, m, h; the
// number may carry a decimal fraction ("1.5s"). "0" alone is zero. The total
// must be a whole number of milliseconds ("1.0005s" is refused) and at most
// kMaxDuration. On failure *error says why (when error is not null).
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text, std::string* error);

// The same syntax with the unit "us" too, to the microsecond, for the few
// settings measured in microseconds (limits.busy_poll).
std::optional<std::chrono::microseconds> parseFineDuration(std::string_view text,
                                                           std::string* error);

// A byte count: a plain decimal number of bytes, or a number followed by a
// unit. Units are case-insensitive: B; K, KB, M, MB, G, GB, T, TB, P, PB are
// decimal (powers of 1000, as disk vendors and the SI use them); Ki, KiB,
// Mi, MiB, Gi, GiB, Ti, TiB, Pi, PiB are binary (powers of 1024). A decimal
// fraction is allowed when the result is a whole number of bytes
// ("1.5GiB"). Refuses negative values and anything above UINT64_MAX.
std::optional<uint64_t> parseSize(std::string_view text, std::string* error);

// Shortest canonical spelling, for messages and docs: 5400000ms -> "1h30m",
// 250ms -> "250ms", 0 -> "0s".
std::string formatDuration(std::chrono::milliseconds duration);

// Binary units when exact: 10737418240 -> "10GiB", 1000 -> "1000B".
std::string formatSize(uint64_t bytes);

}  // namespace switchyard::rules
