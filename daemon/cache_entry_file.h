// The on-disk form of one cache entry (see cache_store.h): body, JSON
// trailer, footer. Shared by CacheStore and its scanner; not for use
// outside the cache.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/cache_store.h"

namespace switchyard::cache::detail {

// The trailer's "format" value this code writes and reads.
inline constexpr int kTrailerFormat = 1;

std::string errnoText(int err);

int64_t mtimeMs(const struct stat& st);

// pread until `len` bytes or end of file; the count read, or -1 (errno set).
ssize_t preadFull(int fd, char* buf, size_t len, uint64_t offset);

// The JSON trailer of `meta` followed by the footer, ready to append after
// the body. Invalid UTF-8 in the strings is replaced, never thrown on.
std::string encodeTrailer(const EntryMeta& meta);

// Reads and checks footer and trailer of the open file `fd` of `file_size`
// bytes: one pread of the last few KiB for the usual entry, a second for a
// long trailer. False with *why when the file is not a complete entry (the
// key is not compared here).
bool readTrailer(int fd, uint64_t file_size, EntryMeta* meta, std::string* why);

}  // namespace switchyard::cache::detail
