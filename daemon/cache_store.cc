#include "daemon/cache_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <utility>

#include "daemon/cache_entry_file.h"
#include "rules/goproxy_request.h"
#include "rules/module_path.h"

namespace switchyard::cache {
namespace {

using detail::errnoText;
using detail::preadFull;

constexpr mode_t kFileMode = 0640;
constexpr mode_t kDirMode = 0750;
// Chunk size for hashing a body in verify().
constexpr size_t kHashChunkBytes = 256 * 1024;
// A remove() in another thread or process may prune a parent directory
// between commit()'s mkdir and its rename (or its next mkdir); each loss
// costs a retry. Losing this many times in a row takes a remover that
// deletes the very same directories in a tight loop.
constexpr int kPublishAttempts = 16;
constexpr uint32_t kZipEndSignature = 0x06054b50;  // "PK\5\6"
constexpr uint32_t kZip64Marker = 0xffffffff;

// "<what> <path>: <errno text>", for *error.
std::string sysError(std::string_view what, const std::string& path, int err = errno) {
  std::string out(what);
  out += ' ';
  out += path;
  out += ": ";
  out += errnoText(err);
  return out;
}

void setError(std::string* error, std::string message) {
  if (error != nullptr) {
    *error = std::move(message);
  }
}

int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

timespec msToTimespec(int64_t ms) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((ms % 1000) * 1'000'000);
  if (ts.tv_nsec < 0) {
    ts.tv_sec -= 1;
    ts.tv_nsec += 1'000'000'000;
  }
  return ts;
}

uint32_t le16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | static_cast<uint32_t>(u[1]) << 8;
}

uint32_t le32(const char* p) {
  return le16(p) | le16(p + 2) << 16;
}

std::string hex(const unsigned char* bytes, size_t len) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xf];
  }
  return out;
}

bool pwriteFull(int fd, const char* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n == 0) {
        errno = EIO;
      }
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool fsyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  bool ok = ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  errno = saved;
  return ok;
}

// mkdir that accepts an existing directory. On failure errno says why
// (ENOENT: a parent is missing, perhaps pruned a moment ago).
bool mkdirIfMissing(const std::string& path, bool* created, std::string* error) {
  *created = false;
  if (::mkdir(path.c_str(), kDirMode) == 0) {
    *created = true;
    return true;
  }
  int err = errno;
  if (err == EEXIST) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        return true;
      }
      setError(error, path + " exists and is not a directory");
      errno = ENOTDIR;
      return false;
    }
    err = errno;  // gone between mkdir and stat
  }
  setError(error, sysError("cannot create directory", path, err));
  errno = err;
  return false;
}

// Checks the zip end record of the first `body_size` bytes of `fd`.
bool bodyHasZipEndRecord(int fd, uint64_t body_size, std::string* why) {
  const size_t len = static_cast<size_t>(std::min<uint64_t>(body_size, kZipTailBytes));
  std::string tail(len, '\0');
  ssize_t n = preadFull(fd, tail.data(), len, body_size - len);
  if (n < 0) {
    *why = "read error: " + errnoText(errno);
    return false;
  }
  tail.resize(static_cast<size_t>(n));
  if (static_cast<size_t>(n) != len || !CacheStore::hasZipEndRecord(tail, body_size)) {
    *why = "not a zip file: no end-of-central-directory record";
    return false;
  }
  return true;
}

}  // namespace

CacheStore::CacheStore(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') {
    dir_.pop_back();
  }
}

bool CacheStore::validKey(const std::string& key) {
  if (key.empty() || key.size() > rules::kMaxGoproxyPathLength || key.front() == '/') {
    return false;
  }
  if (key.find('\0') != std::string::npos) {
    return false;
  }
  size_t start = 0;
  while (true) {
    const size_t slash = key.find('/', start);
    const std::string_view elem = std::string_view(key).substr(start, slash - start);
    if (elem.empty() || elem == "." || elem == ".." ||
        elem.size() > rules::kMaxGoproxyElementLength) {
      return false;
    }
    if (slash == std::string::npos) {
      return true;
    }
    start = slash + 1;
  }
}

std::string CacheStore::pathOf(const std::string& key) const {
  return dir_ + "/data/" + key;
}

bool CacheStore::open(std::string* error) {
  if (dir_.empty()) {
    setError(error, "no cache directory given");
    return false;
  }
  // dir/ itself may need its parents (a fresh /var/cache/switchyard/x).
  std::string path;
  size_t pos = dir_.front() == '/' ? 1 : 0;
  while (true) {
    const size_t slash = dir_.find('/', pos);
    path = dir_.substr(0, slash);
    bool created = false;
    if (!path.empty() && !mkdirIfMissing(path, &created, error)) {
      return false;
    }
    if (slash == std::string::npos) {
      break;
    }
    pos = slash + 1;
  }
  for (const char* sub : {"/data", "/tmp"}) {
    bool created = false;
    if (!mkdirIfMissing(dir_ + sub, &created, error)) {
      return false;
    }
  }
  const std::string tmp = dir_ + "/tmp";
  int fd = ::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    setError(error, sysError("cannot open", tmp));
    return false;
  }
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    setError(error, sysError("cannot read", tmp));
    ::close(fd);
    return false;
  }
  bool ok = true;
  while (dirent* ent = ::readdir(dir)) {
    const std::string_view name = ent->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (::unlinkat(::dirfd(dir), ent->d_name, 0) == 0 || errno == ENOENT) {
      continue;
    }
    // Nothing of ours is a directory, but an empty one left by hand can go.
    if (errno == EISDIR && ::unlinkat(::dirfd(dir), ent->d_name, AT_REMOVEDIR) == 0) {
      continue;
    }
    setError(error, sysError("cannot remove", tmp + "/" + std::string(name)));
    ok = false;
    break;
  }
  ::closedir(dir);
  return ok;
}

std::unique_ptr<CacheStore::Writer> CacheStore::begin(const std::string& key,
                                                      std::string* error) const {
  if (!validKey(key)) {
    setError(error, "invalid cache key \"" + key + "\"");
    return nullptr;
  }
  // pid + per-process counter make the name unique among live writers; the
  // random part keeps a recycled pid from meeting a leftover of a crashed
  // process (O_EXCL would refuse it anyway, and we try again).
  static std::atomic<uint64_t> counter{0};
  std::unique_ptr<Writer> writer(new Writer());
  for (int attempt = 0; attempt < 4 && writer->fd_ < 0; ++attempt) {
    unsigned char random[8] = {};
    if (::getrandom(random, sizeof(random), GRND_NONBLOCK) != sizeof(random)) {
      const uint64_t t =
          static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
      std::memcpy(random, &t, sizeof(random));
    }
    writer->tmp_path_ = dir_ + "/tmp/" + std::to_string(::getpid()) + "-" +
                        std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + "-" +
                        hex(random, sizeof(random));
    writer->fd_ =
        ::open(writer->tmp_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode);
    if (writer->fd_ < 0 && errno != EEXIST) {
      break;
    }
  }
  if (writer->fd_ < 0) {
    setError(error, sysError("cannot create", writer->tmp_path_));
    writer->tmp_path_.clear();
    return nullptr;
  }
  writer->key_ = key;
  writer->data_dir_ = dir_ + "/data";
  writer->final_path_ = writer->data_dir_ + "/" + key;
  writer->sha_ = EVP_MD_CTX_new();
  if (writer->sha_ == nullptr || EVP_DigestInit_ex(writer->sha_, EVP_sha256(), nullptr) != 1) {
    setError(error, "cannot initialise SHA-256");
    return nullptr;  // the destructor removes the temp file
  }
  return writer;
}

CacheStore::Writer::~Writer() {
  if (!committed_) {
    abandon();
  }
  EVP_MD_CTX_free(sha_);
}

void CacheStore::Writer::abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!tmp_path_.empty()) {
    ::unlink(tmp_path_.c_str());
    tmp_path_.clear();
  }
}

bool CacheStore::Writer::append(const char* data, size_t len, std::string* error) {
  if (failed_ || committed_ || fd_ < 0) {
    setError(error, "cache writer for " + key_ + " is no longer usable");
    return false;
  }
  if (!pwriteFull(fd_, data, len, written_)) {
    setError(error, sysError("cannot write", tmp_path_));
    failed_ = true;
    abandon();
    return false;
  }
  if (EVP_DigestUpdate(sha_, data, len) != 1) {
    setError(error, "SHA-256 update failed");
    failed_ = true;
    abandon();
    return false;
  }
  written_ += len;
  return true;
}

bool CacheStore::Writer::commit(EntryMeta meta, std::optional<uint64_t> expected_size,
                                EntryInfo* out, std::string* error) {
  if (failed_ || committed_ || fd_ < 0) {
    setError(error, "cache writer for " + key_ + " is no longer usable");
    return false;
  }
  auto fail = [this, error](std::string why) {
    setError(error, std::move(why));
    failed_ = true;
    abandon();
    return false;
  };
  if (expected_size && *expected_size != written_) {
    return fail("size " + std::to_string(written_) + " != Content-Length " +
                std::to_string(*expected_size));
  }
  std::string why;
  if (key_.ends_with(".zip") && !bodyHasZipEndRecord(fd_, written_, &why)) {
    return fail(why);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_DigestFinal_ex(sha_, digest, &digest_len) != 1) {
    return fail("SHA-256 final failed");
  }
  meta.key = key_;
  meta.size = written_;
  meta.sha256 = hex(digest, digest_len);
  if (meta.stored_at_ms == 0) {
    meta.stored_at_ms = wallClockMs();
  }
  const std::string trailer = detail::encodeTrailer(meta);
  if (!pwriteFull(fd_, trailer.data(), trailer.size(), written_)) {
    return fail(sysError("cannot write", tmp_path_));
  }
  // The mtime is the LRU clock (see touch()); a new entry starts at its
  // store time.
  const timespec times[2] = {{0, UTIME_OMIT}, msToTimespec(meta.stored_at_ms)};
  if (::futimens(fd_, times) != 0) {
    return fail(sysError("cannot set the time of", tmp_path_));
  }
  if (::fsync(fd_) != 0) {
    return fail(sysError("cannot fsync", tmp_path_));
  }
  if (!publish(&why)) {
    return fail(why);
  }
  ::close(fd_);
  fd_ = -1;
  committed_ = true;
  if (out != nullptr) {
    out->meta = std::move(meta);
    out->last_access_ms = out->meta.stored_at_ms;
  }
  return true;
}

// Renames the temp file into place, making the key's parent directories
// when the rename says they are missing (the common case, parents already
// there, costs one system call), then fsyncs every directory whose entries
// changed: the final parent and the parent of each directory created here,
// so the new name survives a crash once commit() returns.
bool CacheStore::Writer::publish(std::string* error) {
  std::vector<std::string> changed_dirs;
  for (int attempt = 1;; ++attempt) {
    if (::rename(tmp_path_.c_str(), final_path_.c_str()) == 0) {
      break;
    }
    // ENOENT: a parent is missing, never made or pruned meanwhile by a
    // concurrent remove().
    if (errno != ENOENT || attempt == kPublishAttempts) {
      setError(error, sysError("cannot rename " + tmp_path_ + " to", final_path_));
      return false;
    }
    for (size_t slash = key_.find('/'); slash != std::string::npos;
         slash = key_.find('/', slash + 1)) {
      const std::string parent = data_dir_ + "/" + key_.substr(0, slash);
      bool created = false;
      if (!mkdirIfMissing(parent, &created, error)) {
        if (errno == ENOENT) {
          break;  // the level above was pruned just now: start over
        }
        return false;
      }
      if (created) {
        changed_dirs.push_back(parent.substr(0, parent.rfind('/')));
      }
    }
  }
  tmp_path_.clear();
  changed_dirs.push_back(final_path_.substr(0, final_path_.rfind('/')));
  std::sort(changed_dirs.begin(), changed_dirs.end());
  changed_dirs.erase(std::unique(changed_dirs.begin(), changed_dirs.end()), changed_dirs.end());
  for (const std::string& dir : changed_dirs) {
    if (!fsyncDir(dir)) {
      // Not durable: take it back rather than report a half-kept promise.
      setError(error, sysError("cannot fsync directory", dir));
      ::unlink(final_path_.c_str());
      return false;
    }
  }
  return true;
}

int CacheStore::openEntry(const std::string& key, EntryMeta* meta, std::string* error) const {
  if (!validKey(key)) {
    setError(error, "invalid cache key \"" + key + "\"");
    return -1;
  }
  const std::string path = pathOf(key);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    setError(error, sysError("cannot open", path));
    return -1;
  }
  struct stat st {};
  std::string why;
  if (::fstat(fd, &st) != 0) {
    why = sysError("cannot stat", path);
  } else if (!S_ISREG(st.st_mode)) {
    why = path + ": not a regular file";
  } else if (!detail::readTrailer(fd, static_cast<uint64_t>(st.st_size), meta, &why)) {
    why = path + ": " + why;
  } else if (meta->key != key) {
    why = path + ": trailer key \"" + meta->key + "\" != file name";
  }
  if (!why.empty()) {
    ::close(fd);
    setError(error, std::move(why));
    return -1;
  }
  return fd;
}

std::optional<VerifyProblem> CacheStore::verify(const std::string& key) const {
  EntryMeta meta;
  std::string why;
  int fd = openEntry(key, &meta, &why);
  if (fd < 0) {
    // openEntry names the path; the key is in the problem already.
    const std::string prefix = pathOf(key) + ": ";
    if (why.starts_with(prefix)) {
      why.erase(0, prefix.size());
    }
    return VerifyProblem{key, why};
  }
  auto problem = [&](std::string text) {
    ::close(fd);
    return std::optional<VerifyProblem>(VerifyProblem{key, std::move(text)});
  };
  if (key.ends_with(".zip") && !bodyHasZipEndRecord(fd, meta.size, &why)) {
    return problem(why);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    return problem("cannot initialise SHA-256");
  }
  std::string buf(kHashChunkBytes, '\0');
  uint64_t offset = 0;
  while (offset < meta.size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(meta.size - offset, buf.size()));
    ssize_t n = preadFull(fd, buf.data(), want, offset);
    if (n < 0 || static_cast<size_t>(n) != want) {
      EVP_MD_CTX_free(ctx);
      return problem(n < 0 ? "read error: " + errnoText(errno) : "body shorter than its size");
    }
    EVP_DigestUpdate(ctx, buf.data(), want);
    offset += want;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_DigestFinal_ex(ctx, digest, &digest_len);
  EVP_MD_CTX_free(ctx);
  if (hex(digest, digest_len) != meta.sha256) {
    return problem("sha256 mismatch");
  }
  ::close(fd);
  return std::nullopt;
}

bool CacheStore::remove(const std::string& key, std::string* error) const {
  if (!validKey(key)) {
    setError(error, "invalid cache key \"" + key + "\"");
    return false;
  }
  const std::string path = pathOf(key);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    setError(error, sysError("cannot remove", path));
    return false;
  }
  // Prune parents that are now empty; rmdir refuses a non-empty one, which
  // is where we stop. data/ itself stays.
  std::string parent = key;
  for (size_t slash = parent.rfind('/'); slash != std::string::npos; slash = parent.rfind('/')) {
    parent.resize(slash);
    if (::rmdir((dir_ + "/data/" + parent).c_str()) != 0) {
      break;
    }
  }
  return true;
}

bool CacheStore::touch(const std::string& key, int64_t now_ms) const {
  if (!validKey(key)) {
    return false;
  }
  const timespec times[2] = {{0, UTIME_OMIT}, msToTimespec(now_ms)};
  return ::utimensat(AT_FDCWD, pathOf(key).c_str(), times, AT_SYMLINK_NOFOLLOW) == 0;
}

bool CacheStore::hasZipEndRecord(const std::string& tail, uint64_t file_size) {
  if (tail.size() < kZipEndRecordBytes || tail.size() > file_size || tail.size() > kZipTailBytes) {
    return false;
  }
  // Search backwards: the record nearest the end whose comment reaches the
  // end exactly. A "PK\5\6" inside a comment has the wrong length and is
  // passed over.
  for (size_t i = tail.size() - kZipEndRecordBytes;; --i) {
    const char* rec = tail.data() + i;
    if (le32(rec) == kZipEndSignature && i + kZipEndRecordBytes + le16(rec + 20) == tail.size()) {
      // The central directory must end before the record (for ZIP64 the
      // real numbers are elsewhere; the record alone is enough then).
      const uint64_t record_offset = file_size - tail.size() + i;
      const uint32_t cd_size = le32(rec + 12);
      const uint32_t cd_offset = le32(rec + 16);
      if (cd_size == kZip64Marker || cd_offset == kZip64Marker ||
          uint64_t{cd_offset} + cd_size <= record_offset) {
        return true;
      }
    }
    if (i == 0) {
      return false;
    }
  }
}

std::string moduleOfKey(const std::string& key) {
  std::string path;
  if (key.starts_with("mod/")) {
    path = "/" + rules::percentEncodePath(std::string_view(key).substr(4));
  } else if (key.starts_with("sumdb/")) {
    path = "/" + rules::percentEncodePath(key);
  } else {
    return "";
  }
  rules::GoproxyRequest req;
  if (!rules::parseGoproxyRequest(path, &req, nullptr) || req.cacheKey() != key) {
    return "";
  }
  switch (req.kind) {
    case rules::GoproxyRequest::Kind::kList:
    case rules::GoproxyRequest::Kind::kInfo:
    case rules::GoproxyRequest::Kind::kMod:
    case rules::GoproxyRequest::Kind::kZip:
    case rules::GoproxyRequest::Kind::kLatest:
    case rules::GoproxyRequest::Kind::kSumdbLookup:
      return req.module;
    case rules::GoproxyRequest::Kind::kSumdbSupported:
    case rules::GoproxyRequest::Kind::kSumdbLatest:
    case rules::GoproxyRequest::Kind::kSumdbTile:
      return "";
  }
  return "";
}

void CacheIndex::put(EntryInfo info) {
  erase(info.meta.key);
  total_size_ += info.meta.size;
  std::string key = info.meta.key;
  lru_.push_back(std::move(info));
  map_.emplace(std::move(key), std::prev(lru_.end()));
}

const EntryInfo* CacheIndex::find(const std::string& key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &*it->second;
}

void CacheIndex::touch(const std::string& key, int64_t now_ms) {
  auto it = map_.find(key);
  if (it == map_.end()) {
    return;
  }
  it->second->last_access_ms = now_ms;
  lru_.splice(lru_.end(), lru_, it->second);
}

bool CacheIndex::erase(const std::string& key) {
  auto it = map_.find(key);
  if (it == map_.end()) {
    return false;
  }
  total_size_ -= it->second->meta.size;
  lru_.erase(it->second);
  map_.erase(it);
  return true;
}

std::vector<std::string> CacheIndex::victims(uint64_t max_size, const std::string& keep) const {
  std::vector<std::string> out;
  uint64_t remaining = total_size_;
  for (auto it = lru_.begin(); it != lru_.end() && remaining > max_size; ++it) {
    if (it->meta.key == keep) {
      continue;
    }
    out.push_back(it->meta.key);
    remaining -= it->meta.size;
  }
  return out;
}

}  // namespace switchyard::cache
