// CacheStore: the on-disk half of the module cache (issue 6). Plain,
// blocking file-system calls with no libuv and no shared state, so that the
// daemon can run each one on the thread pool and the `cache` CLI can run
// them directly. CacheIndex is the in-memory LRU that the daemon keeps of
// what the store holds.
//
// Layout under `dir`:
//   data/<key>   one file per entry: the body from offset 0 (so it can be
//                sent with sendfile/pread at offset 0), then a JSON trailer
//                with the entry's metadata, then a 16-byte footer
//                ("SWYCACHE", the trailer length as 8 little-endian bytes).
//   tmp/         entries being written; emptied by open(). A name there
//                never appears under data/ until it is complete, checked,
//                fsync'd and renamed (so a crash leaves nothing half-made).
//
// Keys are rules::GoproxyRequest::cacheKey(): relative paths built only from
// escaped module paths and validated versions ("mod/github.com/!azure/x/@v/
// v1.0.0.zip", "sumdb/sum.golang.org/tile/8/0/001"). The store refuses any
// key with an empty, "." or ".." element (so also "a//b" and a trailing
// '/'), a leading '/', or a NUL, and keys or elements longer than the
// GOPROXY parser admits (rules::kMaxGoproxyPathLength, 255 per element).
//
// The trailer is one JSON object: {"format":1, "key", "size", "sha256",
// "stored_at_ms", "immutable", "content_type", "source"}; docs/OPERATIONS.md
// ("Cache maintenance") describes it for people writing entries by hand.
// A file counts as an entry only when the footer is there, the trailer
// parses, body + trailer + footer add up to the file size, and the trailer's
// key is the file's path below data/.
//
// Several processes may share a directory (the daemon and the `cache`
// CLI): temp names are unique per process and thread, publication is a
// rename, and readers hold an fd to the inode they opened. Only open()
// assumes it is alone (it empties tmp/), so the CLI does not call it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <openssl/evp.h>

namespace switchyard::cache {

// The footer that ends every entry file: this magic, then the trailer's
// length as 8 little-endian bytes.
inline constexpr char kFooterMagic[] = "SWYCACHE";  // 8 bytes, no NUL on disk
inline constexpr size_t kFooterSize = 16;
// A trailer holds a key (at most 4 KiB) and two short strings; anything
// bigger is corruption, not an entry.
inline constexpr uint64_t kMaxTrailerBytes = 64 * 1024;
// The zip end-of-central-directory record: 22 bytes plus a comment of at
// most 65,535 bytes, so it always lies within the last 65,557 bytes.
inline constexpr size_t kZipEndRecordBytes = 22;
inline constexpr size_t kZipTailBytes = kZipEndRecordBytes + 65535;

// What the trailer records, written once at commit.
struct EntryMeta {
  std::string key;
  uint64_t size = 0;         // body bytes
  std::string sha256;        // lowercase hex of the body
  int64_t stored_at_ms = 0;  // wall clock (ms since the epoch) at commit
  bool immutable = false;    // GoproxyRequest::immutable
  std::string content_type;  // as served to clients
  std::string source;        // the URL it was fetched from (masked)
};

// What the index keeps per entry.
struct EntryInfo {
  EntryMeta meta;
  int64_t last_access_ms = 0;  // file mtime at scan; bumped by touch()
};

struct VerifyProblem {
  std::string key;
  std::string why;  // "size 10 != trailer 12", "no zip end record", "sha256 mismatch", ...
};

class CacheStore {
 public:
  explicit CacheStore(std::string dir);

  const std::string& dir() const { return dir_; }

  // Creates dir/, data/ and tmp/ (mode 0750) when missing and empties tmp/.
  // False with *error (naming the path and errno text) when it cannot.
  // Emptying tmp/ would break another process's writes in progress, so only
  // the daemon calls this, once, at startup.
  bool open(std::string* error);

  // Every complete entry under data/, read from the trailers, with
  // last_access_ms from the file's mtime. Files whose trailer is missing or
  // does not parse, or whose name does not match the trailer's key, are
  // reported in *broken (when given) and not returned. Must handle 100,000
  // entries in well under 2 s on a warm page cache; it runs a few threads
  // of its own for that (cache_scan.cc says why). The result is sorted by
  // last_access_ms, oldest first (then by key), so that putting the entries
  // into a CacheIndex in this order rebuilds the LRU order; *broken gets
  // its problems appended in key order. Nothing is removed here.
  std::vector<EntryInfo> scan(std::vector<VerifyProblem>* broken = nullptr) const;

  // Writes one entry. Use from one thread at a time; appends in order.
  class Writer {
   public:
    ~Writer();  // abandons (unlinks the temp file) unless committed
    // Appends body bytes (hashing them as they pass). False with *error on
    // an I/O error; the writer is then useless (only the destructor).
    bool append(const char* data, size_t len, std::string* error);
    uint64_t written() const { return written_; }
    // Checks and publishes the entry: `expected_size` (when given) must equal
    // what was appended; a key ending in ".zip" must end with a valid zip
    // end-of-central-directory record (signature within the last 65,557
    // bytes, its comment length reaching exactly the end of the file). Then
    // writes the trailer (meta.key, meta.size and meta.sha256 are filled
    // here, and meta.stored_at_ms when it is 0), sets the file's mtime to
    // stored_at_ms, fsyncs, renames into data/<key> (creating parent
    // directories, replacing an older entry) and fsyncs the directories it
    // changed. On failure nothing is published, the temp file is gone and
    // *error says why ("size 10 != Content-Length 12", "not a zip file: no
    // end-of-central-directory record"). Either way the writer is spent.
    bool commit(EntryMeta meta, std::optional<uint64_t> expected_size, EntryInfo* out,
                std::string* error);

    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

   private:
    friend class CacheStore;
    Writer() = default;
    // Closes and unlinks the temp file; idempotent.
    void abandon();
    bool publish(std::string* error);

    std::string key_;
    std::string data_dir_;    // <dir>/data, where parent directories stop
    std::string tmp_path_;    // empty once renamed or abandoned
    std::string final_path_;  // data_dir_ + "/" + key_
    int fd_ = -1;             // O_RDWR: commit() reads the zip tail back
    uint64_t written_ = 0;
    EVP_MD_CTX* sha_ = nullptr;
    bool failed_ = false;  // an append or commit failed: only the destructor is left
    bool committed_ = false;
  };
  // A new temp file for `key`; null with *error when the key is refused or
  // the file cannot be created.
  std::unique_ptr<Writer> begin(const std::string& key, std::string* error) const;

  // Opens data/<key> for reading the body: returns the fd (O_RDONLY |
  // O_CLOEXEC, caller closes) and fills *meta from the trailer, or -1 with
  // *error (missing, broken trailer, key mismatch).
  int openEntry(const std::string& key, EntryMeta* meta, std::string* error) const;

  // Re-checks one stored entry from scratch: trailer, size, zip end record,
  // sha256. Empty optional when it is sound. Reads the whole body.
  std::optional<VerifyProblem> verify(const std::string& key) const;

  // Unlinks data/<key> (and parent directories left empty, up to data/).
  // True when the file is gone (also when it was not there).
  bool remove(const std::string& key, std::string* error = nullptr) const;

  // Sets the file's mtime to `now_ms` (the LRU clock that survives restarts).
  // False when the key is refused or the file is not there.
  bool touch(const std::string& key, int64_t now_ms) const;

  // The file path of a key (for logs and tests).
  std::string pathOf(const std::string& key) const;

  // For the zip check (exposed for unit tests): whether the last bytes of a
  // file of `file_size` bytes, `tail` (up to 65,557 bytes ending at the end
  // of the file), hold a valid end-of-central-directory record.
  static bool hasZipEndRecord(const std::string& tail, uint64_t file_size);

  // Whether `key` is acceptable (see the top of this file).
  static bool validKey(const std::string& key);

 private:
  std::string dir_;
};

// The module path a key belongs to, unescaped ("mod/github.com/!azure/x/@v/
// v1.zip" -> "github.com/Azure/x"; "sumdb/<db>/lookup/<m>@<v>" -> <m>
// unescaped); empty for keys about no module (tiles, latest, supported) and
// for any key rules::parseGoproxyRequest() would not give back unchanged.
// Used by `cache purge PATTERN` with GOPRIVATE-style patterns.
std::string moduleOfKey(const std::string& key);

// In-memory index with LRU by last access. Not thread-safe: the daemon
// keeps it on the loop thread.
class CacheIndex {
 public:
  // Adds or replaces an entry (it becomes the most recently used).
  void put(EntryInfo info);
  // The entry, or null. Does not change the LRU order.
  const EntryInfo* find(const std::string& key) const;
  // Marks an access at `now_ms` (most recently used).
  void touch(const std::string& key, int64_t now_ms);
  bool erase(const std::string& key);
  // Keys to evict, least recently used first, so that the total size falls
  // to at most `max_size`; `keep` (the entry just added) is never chosen.
  // The entries stay in the index until erase().
  std::vector<std::string> victims(uint64_t max_size, const std::string& keep = "") const;

  size_t count() const { return map_.size(); }
  uint64_t totalSize() const { return total_size_; }

 private:
  // Front = least recently used.
  std::list<EntryInfo> lru_;
  std::unordered_map<std::string, std::list<EntryInfo>::iterator> map_;
  uint64_t total_size_ = 0;
};

}  // namespace switchyard::cache
