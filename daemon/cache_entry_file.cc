#include "daemon/cache_entry_file.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include <nlohmann/json.hpp>

namespace switchyard::cache::detail {
namespace {

// One pread of this many bytes from the end of a file reaches the footer
// and the whole trailer of any ordinary entry (a trailer is a few hundred
// bytes), so scanning costs one read per file; longer trailers take two.
constexpr size_t kTailReadBytes = 4096;

uint64_t le64(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = v << 8 | u[i];
  }
  return v;
}

bool isLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

enum class TailStatus { kOk, kNeedMore, kBroken };

// Parses footer and trailer from `tail`, the last bytes of a file of
// `file_size` bytes. kNeedMore with *need set when the trailer starts
// before `tail` does.
TailStatus parseTail(std::string_view tail, uint64_t file_size, EntryMeta* meta, size_t* need,
                     std::string* why) {
  if (file_size < kFooterSize || tail.size() < kFooterSize) {
    *why = "no trailer (file of " + std::to_string(file_size) + " bytes)";
    return TailStatus::kBroken;
  }
  const char* footer = tail.data() + tail.size() - kFooterSize;
  if (std::memcmp(footer, kFooterMagic, 8) != 0) {
    *why = "no trailer footer";
    return TailStatus::kBroken;
  }
  const uint64_t trailer_len = le64(footer + 8);
  if (trailer_len == 0 || trailer_len > kMaxTrailerBytes || trailer_len > file_size - kFooterSize) {
    *why = "trailer length " + std::to_string(trailer_len) + " out of range";
    return TailStatus::kBroken;
  }
  if (trailer_len + kFooterSize > tail.size()) {
    *need = static_cast<size_t>(trailer_len + kFooterSize);
    return TailStatus::kNeedMore;
  }
  const char* begin = footer - trailer_len;
  nlohmann::json j = nlohmann::json::parse(begin, footer, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *why = "trailer is not a JSON object";
    return TailStatus::kBroken;
  }
  auto field = [&j](const char* name) -> const nlohmann::json* {
    auto it = j.find(name);
    return it == j.end() ? nullptr : &*it;
  };
  const nlohmann::json* format = field("format");
  const nlohmann::json* key = field("key");
  const nlohmann::json* size = field("size");
  const nlohmann::json* sha = field("sha256");
  const nlohmann::json* stored = field("stored_at_ms");
  const nlohmann::json* immutable = field("immutable");
  const nlohmann::json* content_type = field("content_type");
  const nlohmann::json* source = field("source");
  if (format == nullptr || !format->is_number_integer() ||
      format->get<int64_t>() != kTrailerFormat) {
    *why = "trailer format is not " + std::to_string(kTrailerFormat);
    return TailStatus::kBroken;
  }
  if (key == nullptr || !key->is_string() || size == nullptr || !size->is_number_unsigned() ||
      sha == nullptr || !sha->is_string() || stored == nullptr || !stored->is_number_integer() ||
      immutable == nullptr || !immutable->is_boolean() ||
      (content_type != nullptr && !content_type->is_string()) ||
      (source != nullptr && !source->is_string())) {
    *why = "trailer fields missing or of the wrong type";
    return TailStatus::kBroken;
  }
  meta->key = key->get<std::string>();
  meta->size = size->get<uint64_t>();
  meta->sha256 = sha->get<std::string>();
  meta->stored_at_ms = stored->get<int64_t>();
  meta->immutable = immutable->get<bool>();
  meta->content_type = content_type != nullptr ? content_type->get<std::string>() : "";
  meta->source = source != nullptr ? source->get<std::string>() : "";
  if (meta->sha256.size() != 64 || !isLowerHex(meta->sha256)) {
    *why = "trailer sha256 is not 64 lowercase hex digits";
    return TailStatus::kBroken;
  }
  const uint64_t body = file_size - kFooterSize - trailer_len;
  if (body != meta->size) {
    *why = "size " + std::to_string(body) + " != trailer " + std::to_string(meta->size);
    return TailStatus::kBroken;
  }
  return TailStatus::kOk;
}

}  // namespace

std::string errnoText(int err) {
  return std::strerror(err);
}

int64_t mtimeMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

ssize_t preadFull(int fd, char* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return -1;
    }
    if (n == 0) {
      break;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

std::string encodeTrailer(const EntryMeta& meta) {
  nlohmann::json j = {
      {"format", kTrailerFormat},
      {"key", meta.key},
      {"size", meta.size},
      {"sha256", meta.sha256},
      {"stored_at_ms", meta.stored_at_ms},
      {"immutable", meta.immutable},
      {"content_type", meta.content_type},
      {"source", meta.source},
  };
  // Upstream strings (content type, source) may hold invalid UTF-8; replace
  // it rather than throw.
  std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const uint64_t len = out.size();
  out.append(kFooterMagic, 8);
  for (int i = 0; i < 8; ++i) {
    out += static_cast<char>((len >> (8 * i)) & 0xff);
  }
  return out;
}

bool readTrailer(int fd, uint64_t file_size, EntryMeta* meta, std::string* why) {
  char buf[kTailReadBytes];
  size_t want = static_cast<size_t>(std::min<uint64_t>(file_size, sizeof(buf)));
  ssize_t n = preadFull(fd, buf, want, file_size - want);
  if (n < 0) {
    *why = "read error: " + errnoText(errno);
    return false;
  }
  // A file that shrank under us reads short; judge what was read.
  size_t need = 0;
  TailStatus status =
      parseTail(std::string_view(buf, static_cast<size_t>(n)), file_size, meta, &need, why);
  if (status != TailStatus::kNeedMore) {
    return status == TailStatus::kOk;
  }
  std::string big(need, '\0');
  n = preadFull(fd, big.data(), need, file_size - need);
  if (n < 0) {
    *why = "read error: " + errnoText(errno);
    return false;
  }
  big.resize(static_cast<size_t>(n));
  return parseTail(big, file_size, meta, &need, why) == TailStatus::kOk;
}

}  // namespace switchyard::cache::detail
