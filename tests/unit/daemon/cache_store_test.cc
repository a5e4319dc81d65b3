// CacheStore and CacheIndex: key validation, the write -> commit -> read
// cycle on a real directory, the checks commit() makes (size, zip end
// record), what scan() accepts and reports, verify(), remove(), touch(),
// the LRU index and moduleOfKey().
//
// Zips are built here by a small stored-only (no compression) writer, so
// every byte of the end-of-central-directory record is under the test's
// control.
#include "daemon/cache_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::cache {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "sy_cache_store_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeFile(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Relative paths of every non-directory below `dir`, sorted.
std::vector<std::string> filesUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_directory()) {
      out.push_back(fs::relative(e.path(), dir).string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> dirsUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_directory()) {
      out.push_back(fs::relative(e.path(), dir).string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out;
  constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string patternBytes(size_t n, unsigned seed = 1) {
  std::string out(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

// --- A stored-only zip writer (APPNOTE 4.3), enough for the EOCD checks.

uint32_t crc32(const std::string& data) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) {
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
  }
  return ~crc;
}

void put16(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
}

void put32(std::string* out, uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}

std::string eocd(uint16_t entries, uint32_t cd_size, uint32_t cd_offset, const std::string& comment,
                 uint16_t comment_len) {
  std::string out;
  put32(&out, 0x06054b50);
  put16(&out, 0);  // this disk
  put16(&out, 0);  // disk with the central directory
  put16(&out, entries);
  put16(&out, entries);
  put32(&out, cd_size);
  put32(&out, cd_offset);
  put16(&out, comment_len);
  return out + comment;
}

struct ZipFile {
  std::string name;
  std::string content;
};

std::string storedZip(const std::vector<ZipFile>& files, const std::string& comment = "") {
  std::string out;
  std::string cd;
  for (const ZipFile& f : files) {
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const uint32_t crc = crc32(f.content);
    const auto size = static_cast<uint32_t>(f.content.size());
    put32(&out, 0x04034b50);
    put16(&out, 20);  // version needed
    put16(&out, 0);   // flags
    put16(&out, 0);   // stored
    put16(&out, 0);   // time
    put16(&out, 0x21);
    put32(&out, crc);
    put32(&out, size);
    put32(&out, size);
    put16(&out, static_cast<uint32_t>(f.name.size()));
    put16(&out, 0);
    out += f.name + f.content;
    put32(&cd, 0x02014b50);
    put16(&cd, 20);  // version made by
    put16(&cd, 20);
    put16(&cd, 0);
    put16(&cd, 0);
    put16(&cd, 0);
    put16(&cd, 0x21);
    put32(&cd, crc);
    put32(&cd, size);
    put32(&cd, size);
    put16(&cd, static_cast<uint32_t>(f.name.size()));
    put16(&cd, 0);  // extra
    put16(&cd, 0);  // comment
    put16(&cd, 0);  // disk
    put16(&cd, 0);  // internal attributes
    put32(&cd, 0);  // external attributes
    put32(&cd, offset);
    cd += f.name;
  }
  const auto cd_offset = static_cast<uint32_t>(out.size());
  out += cd;
  out += eocd(static_cast<uint16_t>(files.size()), static_cast<uint32_t>(cd.size()), cd_offset,
              comment, static_cast<uint16_t>(comment.size()));
  return out;
}

std::string goModuleZip() {
  return storedZip({{"example.com/m@v1.0.0/go.mod", "module example.com/m\n"},
                    {"example.com/m@v1.0.0/m.go", "package m\n"}});
}

// --- Writing entries.

class CacheStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(store_.open(&error)) << error;
  }

  std::string data() const { return tmp_.path() + "/data"; }
  std::string tmpDir() const { return tmp_.path() + "/tmp"; }

  // Writes `body` in chunks of `chunk` bytes and commits it.
  bool put(const std::string& key, const std::string& body, EntryInfo* info = nullptr,
           std::string* error = nullptr, EntryMeta meta = {}, size_t chunk = 4096) {
    std::string local_error;
    std::string* err = error != nullptr ? error : &local_error;
    std::unique_ptr<CacheStore::Writer> w = store_.begin(key, err);
    if (w == nullptr) {
      return false;
    }
    for (size_t off = 0; off < body.size(); off += chunk) {
      if (!w->append(body.data() + off, std::min(chunk, body.size() - off), err)) {
        return false;
      }
    }
    EntryInfo local_info;
    return w->commit(std::move(meta), body.size(), info != nullptr ? info : &local_info, err);
  }

  void putOk(const std::string& key, const std::string& body, EntryMeta meta = {}) {
    std::string error;
    ASSERT_TRUE(put(key, body, nullptr, &error, std::move(meta))) << key << ": " << error;
  }

  std::string readBody(const std::string& key, EntryMeta* meta) {
    std::string error;
    int fd = store_.openEntry(key, meta, &error);
    EXPECT_GE(fd, 0) << error;
    if (fd < 0) {
      return "";
    }
    std::string body(meta->size, '\0');
    EXPECT_EQ(::pread(fd, body.data(), body.size(), 0), static_cast<ssize_t>(body.size()));
    ::close(fd);
    return body;
  }

  TempDir tmp_;
  CacheStore store_{tmp_.path()};
};

TEST(CacheStoreKeyTest, ValidKeyTable) {
  const std::string long_elem(256, 'a');
  struct Case {
    std::string key;
    bool valid;
  };
  const Case cases[] = {
      {"mod/github.com/!azure/x/@v/v1.0.0.zip", true},
      {"mod/golang.org/x/mod/@v/list", true},
      {"mod/golang.org/x/mod/@latest", true},
      {"sumdb/sum.golang.org/tile/8/0/x001/234.p/5", true},
      {"sumdb/sum.golang.org/lookup/golang.org/x/mod@v0.1.0", true},
      {"sumdb/db.example:8443/sub/supported", true},
      {"mod/x.com/@v/v1.0.0 with space.info", true},
      {"a", true},
      {"...", true},
      {".hidden/x", true},
      {std::string(255, 'b'), true},
      {"", false},
      {"/", false},
      {"/abs/path", false},
      {".", false},
      {"..", false},
      {"../escape", false},
      {"a/../b", false},
      {"a/..", false},
      {"./a", false},
      {"a/./b", false},
      {"a//b", false},
      {"a/", false},
      {"mod/x.com/@v/", false},
      {std::string("a\0b", 3), false},
      {std::string("a/\0", 3), false},
      {"a/" + long_elem, false},
      {std::string(4097, 'c'), false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(CacheStore::validKey(c.key), c.valid) << "key \"" << c.key << "\"";
  }
}

TEST_F(CacheStoreTest, BeginRefusesInvalidKeysAndCreatesNothing) {
  for (const std::string key : {"", "/etc/passwd", "../x", "a//b", "a/", "."}) {
    std::string error;
    EXPECT_EQ(store_.begin(key, &error), nullptr) << key;
    EXPECT_NE(error.find("invalid cache key"), std::string::npos) << error;
  }
  EXPECT_TRUE(filesUnder(tmpDir()).empty());
  EXPECT_TRUE(filesUnder(data()).empty());
}

TEST_F(CacheStoreTest, OpenCreatesPrivateDirectories) {
  TempDir root;
  CacheStore nested(root.path() + "/a/b/cache/");
  std::string error;
  ASSERT_TRUE(nested.open(&error)) << error;
  for (const char* sub : {"/a/b/cache", "/a/b/cache/data", "/a/b/cache/tmp"}) {
    struct stat st {};
    ASSERT_EQ(::stat((root.path() + sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
  }
  struct stat st {};
  ASSERT_EQ(::stat((root.path() + "/a/b/cache/data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0750u, 0u) << std::oct << (st.st_mode & 0777);
  EXPECT_EQ(nested.dir(), root.path() + "/a/b/cache");
}

TEST_F(CacheStoreTest, OpenFailsNamingThePath) {
  TempDir root;
  writeFile(root.path() + "/file", "x");
  CacheStore store(root.path() + "/file/cache");
  std::string error;
  EXPECT_FALSE(store.open(&error));
  EXPECT_NE(error.find(root.path() + "/file"), std::string::npos) << error;
}

TEST(CacheStoreOpenTest, EmptyDirectoryIsRefused) {
  CacheStore store("");
  std::string error;
  EXPECT_FALSE(store.open(&error));
  EXPECT_EQ(error, "no cache directory given");
}

TEST_F(CacheStoreTest, OpenEmptiesTmp) {
  writeFile(tmpDir() + "/123-0-abcdef", "half written");
  writeFile(tmpDir() + "/other", "");
  fs::create_directory(tmpDir() + "/emptydir");
  putOk("mod/a.com/@v/list", "v1.0.0\n");
  std::string error;
  CacheStore again(tmp_.path());
  ASSERT_TRUE(again.open(&error)) << error;
  EXPECT_TRUE(fs::is_empty(tmpDir()));
  EXPECT_EQ(filesUnder(data()), std::vector<std::string>{"mod/a.com/@v/list"});
}

TEST_F(CacheStoreTest, RoundTripTable) {
  struct Case {
    std::string key;
    std::string body;
    size_t chunk;
    bool immutable;
  };
  const Case cases[] = {
      {"mod/golang.org/x/mod/@v/list", "", 1, false},
      {"mod/golang.org/x/mod/@v/v0.1.0.mod", "module golang.org/x/mod\n", 1, true},
      {"mod/github.com/!azure/x/@v/v1.0.0.info", "{\"Version\":\"v1.0.0\"}", 7, true},
      {"mod/example.com/m/@v/v1.0.0.zip", goModuleZip(), 13, true},
      {"sumdb/sum.golang.org/tile/8/0/001", patternBytes(8192, 3), 4096, true},
      {"sumdb/sum.golang.org/latest", std::string("bin\0ary\n", 8), 3, false},
      {"mod/big.example/@v/v2.0.0.mod", patternBytes(1 << 20, 5), 65536, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    EntryMeta meta;
    meta.key = "ignored: the writer's key wins";
    meta.immutable = c.immutable;
    meta.content_type = "text/plain; charset=utf-8";
    meta.source = "https://proxy.golang.org/" + c.key;
    meta.stored_at_ms = 1'700'000'000'123;
    EntryInfo info;
    std::string error;
    ASSERT_TRUE(put(c.key, c.body, &info, &error, meta, c.chunk)) << error;
    EXPECT_EQ(info.meta.key, c.key);
    EXPECT_EQ(info.meta.size, c.body.size());
    EXPECT_EQ(info.meta.sha256, sha256Hex(c.body));
    EXPECT_EQ(info.meta.stored_at_ms, 1'700'000'000'123);
    EXPECT_EQ(info.last_access_ms, 1'700'000'000'123);

    EntryMeta read_meta;
    EXPECT_EQ(readBody(c.key, &read_meta), c.body);
    EXPECT_EQ(read_meta.key, c.key);
    EXPECT_EQ(read_meta.size, c.body.size());
    EXPECT_EQ(read_meta.sha256, info.meta.sha256);
    EXPECT_EQ(read_meta.immutable, c.immutable);
    EXPECT_EQ(read_meta.content_type, "text/plain; charset=utf-8");
    EXPECT_EQ(read_meta.source, meta.source);
    EXPECT_EQ(read_meta.stored_at_ms, 1'700'000'000'123);

    struct stat st {};
    ASSERT_EQ(::stat(store_.pathOf(c.key).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777 & ~0640u, 0u) << std::oct << (st.st_mode & 0777);
    EXPECT_EQ(st.st_mtim.tv_sec, 1'700'000'000);
    EXPECT_EQ(store_.verify(c.key), std::nullopt);
  }
  EXPECT_TRUE(fs::is_empty(tmpDir()));
}

TEST_F(CacheStoreTest, KnownDigestsAndStoreTime) {
  EntryInfo info;
  std::string error;
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  ASSERT_TRUE(put("a/empty", "", &info, &error)) << error;
  EXPECT_EQ(info.meta.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_GE(info.meta.stored_at_ms, before);
  ASSERT_TRUE(put("a/abc", "abc", &info, &error)) << error;
  EXPECT_EQ(info.meta.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(CacheStoreTest, ParentDirectoriesArePrivate) {
  putOk("mod/github.com/!azure/x/@v/list", "v1\n");
  for (const std::string& d : dirsUnder(data())) {
    struct stat st {};
    ASSERT_EQ(::stat((data() + "/" + d).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777 & ~0750u, 0u) << d << " " << std::oct << (st.st_mode & 0777);
  }
}

TEST_F(CacheStoreTest, CommitRefusalsLeaveNothingBehind) {
  const std::string zip = goModuleZip();
  struct Case {
    std::string name;
    std::string key;
    std::string body;
    std::optional<uint64_t> expected;
    std::string error;
  };
  const Case cases[] = {
      {"short", "mod/a.com/@v/v1.0.0.mod", "0123456789", 12, "size 10 != Content-Length 12"},
      {"long", "mod/a.com/@v/v1.0.0.mod", "0123456789", 9, "size 10 != Content-Length 9"},
      {"empty but promised", "mod/a.com/@v/list", "", 1, "size 0 != Content-Length 1"},
      {"zip garbage", "mod/a.com/@v/v1.0.0.zip", "<html>not found</html>", std::nullopt,
       "not a zip file: no end-of-central-directory record"},
      {"zip truncated", "mod/a.com/@v/v1.0.0.zip", zip.substr(0, zip.size() - 1), std::nullopt,
       "not a zip file: no end-of-central-directory record"},
      {"zip empty body", "mod/a.com/@v/v1.0.0.zip", "", std::nullopt,
       "not a zip file: no end-of-central-directory record"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string error;
    std::unique_ptr<CacheStore::Writer> w = store_.begin(c.key, &error);
    ASSERT_NE(w, nullptr) << error;
    ASSERT_TRUE(w->append(c.body.data(), c.body.size(), &error)) << error;
    EntryInfo info;
    EXPECT_FALSE(w->commit(EntryMeta{}, c.expected, &info, &error));
    EXPECT_EQ(error, c.error);
    // Spent: no temp file, nothing published, further use refused.
    EXPECT_TRUE(fs::is_empty(tmpDir()));
    EXPECT_TRUE(fs::is_empty(data())) << "data/ holds " << dirsUnder(data()).size() << " dirs";
    EXPECT_FALSE(w->append("x", 1, &error));
    EXPECT_FALSE(w->commit(EntryMeta{}, std::nullopt, &info, &error));
  }
}

TEST_F(CacheStoreTest, RefusedCommitKeepsTheOlderEntry) {
  putOk("mod/a.com/@v/v1.0.0.mod", "module a.com\n");
  std::string error;
  std::unique_ptr<CacheStore::Writer> w = store_.begin("mod/a.com/@v/v1.0.0.mod", &error);
  ASSERT_NE(w, nullptr) << error;
  ASSERT_TRUE(w->append("short", 5, &error)) << error;
  EntryInfo info;
  EXPECT_FALSE(w->commit(EntryMeta{}, 6, &info, &error));
  EntryMeta meta;
  EXPECT_EQ(readBody("mod/a.com/@v/v1.0.0.mod", &meta), "module a.com\n");
}

TEST_F(CacheStoreTest, CommitOfAZipLargerThanTheSearchWindow) {
  // The end record sits after 70,000 bytes of file data, so commit() must
  // read the tail at the right offset, not the start.
  const std::string zip = storedZip({{"m@v1/big.bin", patternBytes(70000, 9)}}, "a comment");
  putOk("mod/m.example/@v/v1.0.0.zip", zip);
  EXPECT_EQ(store_.verify("mod/m.example/@v/v1.0.0.zip"), std::nullopt);
}

TEST(CacheStoreZipTest, EndRecordTable) {
  const std::string zip = goModuleZip();
  const std::string with_comment = storedZip({{"a/b", "hello"}}, "Go module zip, comment");
  // A real record earlier, its comment holding a fake signature whose own
  // comment length does not reach the end.
  std::string fake_in_comment = "xx";
  fake_in_comment += eocd(0, 0, 0, "", 200);
  const std::string real_then_fake = storedZip({{"a/b", "hello"}}, fake_in_comment);
  // A signature in the data, followed by a comment length of 5 with only
  // 3 bytes after it.
  std::string sig_in_data = patternBytes(100, 2) + eocd(0, 0, 0, "abc", 5);
  std::string cd_past_record = eocd(1, 46, 1000, "", 0);
  struct Case {
    std::string name;
    std::string file;
    bool valid;
  };
  const Case cases[] = {
      {"module zip", zip, true},
      {"with comment", with_comment, true},
      {"comment holding a signature", real_then_fake, true},
      {"empty archive", eocd(0, 0, 0, "", 0), true},
      {"truncated by 1", zip.substr(0, zip.size() - 1), false},
      {"truncated by 10", zip.substr(0, zip.size() - 10), false},
      {"truncated comment", with_comment.substr(0, with_comment.size() - 3), false},
      {"trailing garbage", zip + "junk", false},
      {"garbage", patternBytes(5000, 7), false},
      {"too short", "PK\x05\x06", false},
      {"empty", "", false},
      {"signature in data, wrong comment length", sig_in_data, false},
      {"central directory past the record", cd_past_record, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(CacheStore::hasZipEndRecord(c.file, c.file.size()), c.valid) << c.name;
  }
  // The tail of a larger file: offsets count from the file's start.
  const std::string big = storedZip({{"x", patternBytes(100000, 4)}});
  const std::string tail = big.substr(big.size() - kZipTailBytes);
  EXPECT_TRUE(CacheStore::hasZipEndRecord(tail, big.size()));
  EXPECT_FALSE(CacheStore::hasZipEndRecord(tail, tail.size() - 1)) << "tail longer than the file";
}

TEST_F(CacheStoreTest, WriterAbandonsOnDestruction) {
  {
    std::string error;
    std::unique_ptr<CacheStore::Writer> w = store_.begin("mod/a.com/@v/list", &error);
    ASSERT_NE(w, nullptr) << error;
    ASSERT_TRUE(w->append("v1.0.0\n", 7, &error));
    EXPECT_EQ(w->written(), 7u);
    EXPECT_EQ(filesUnder(tmpDir()).size(), 1u);
  }
  EXPECT_TRUE(fs::is_empty(tmpDir()));
  EXPECT_TRUE(fs::is_empty(data()));
}

TEST_F(CacheStoreTest, TempNamesAreUniqueAcrossWriters) {
  std::string error;
  std::vector<std::unique_ptr<CacheStore::Writer>> writers;
  for (int i = 0; i < 50; ++i) {
    writers.push_back(store_.begin("mod/a.com/@v/list", &error));
    ASSERT_NE(writers.back(), nullptr) << error;
  }
  EXPECT_EQ(filesUnder(tmpDir()).size(), 50u);
  for (const std::string& name : filesUnder(tmpDir())) {
    EXPECT_TRUE(name.starts_with(std::to_string(::getpid()) + "-")) << name;
  }
}

TEST_F(CacheStoreTest, ReplacesAnOlderEntry) {
  EntryMeta old_meta;
  old_meta.stored_at_ms = 1'000'000;
  putOk("mod/a.com/@v/list", "v1.0.0\n", old_meta);
  putOk("mod/a.com/@v/list", "v1.0.0\nv1.1.0\n");
  EntryMeta meta;
  EXPECT_EQ(readBody("mod/a.com/@v/list", &meta), "v1.0.0\nv1.1.0\n");
  EXPECT_GT(meta.stored_at_ms, 1'000'000);
  std::vector<VerifyProblem> broken;
  std::vector<EntryInfo> entries = store_.scan(&broken);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].meta.size, 14u);
  EXPECT_TRUE(broken.empty());
}

TEST_F(CacheStoreTest, ScanReturnsEntriesOldestAccessFirst) {
  const std::string source(6000, 's');  // a trailer longer than one tail read
  struct Case {
    std::string key;
    int64_t stored_at_ms;
    std::string source;
  };
  const Case cases[] = {
      {"mod/b.com/@v/list", 3'000'000, ""},
      {"mod/a.com/@v/list", 1'000'000, ""},
      {"sumdb/sum.golang.org/latest", 2'000'000, source},
      {"mod/c.com/@latest", 2'000'000, ""},
  };
  for (const Case& c : cases) {
    EntryMeta meta;
    meta.stored_at_ms = c.stored_at_ms;
    meta.source = c.source;
    putOk(c.key, "body of " + c.key, meta);
  }
  std::vector<VerifyProblem> broken;
  std::vector<EntryInfo> entries = store_.scan(&broken);
  EXPECT_TRUE(broken.empty());
  std::vector<std::string> keys;
  for (const EntryInfo& e : entries) {
    keys.push_back(e.meta.key);
    EXPECT_EQ(e.meta.size, ("body of " + e.meta.key).size());
    EXPECT_EQ(e.meta.sha256, sha256Hex("body of " + e.meta.key));
    EXPECT_EQ(e.last_access_ms, e.meta.stored_at_ms);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"mod/a.com/@v/list", "mod/c.com/@latest",
                                            "sumdb/sum.golang.org/latest", "mod/b.com/@v/list"}));
  EXPECT_EQ(entries[2].meta.source, source);
}

TEST_F(CacheStoreTest, ScanFindsEveryEntryOfAWideDeepTree) {
  // scan() shares the walk among threads: nothing may be lost or doubled.
  std::vector<std::string> keys;
  for (int m = 0; m < 60; ++m) {
    const std::string module =
        "mod/h" + std::to_string(m % 7) + ".example/a/b/c" + std::to_string(m) + "/@v/";
    for (int v = 0; v < 5; ++v) {
      keys.push_back(module + "v1." + std::to_string(v) + ".0.mod");
    }
  }
  keys.push_back("mod/deep.example/" + std::string(40, 'x') + "/1/2/3/4/5/6/7/8/9/@v/list");
  for (const std::string& key : keys) {
    putOk(key, key);
  }
  std::vector<VerifyProblem> broken;
  std::vector<EntryInfo> entries = store_.scan(&broken);
  EXPECT_TRUE(broken.empty());
  std::vector<std::string> found;
  for (const EntryInfo& e : entries) {
    found.push_back(e.meta.key);
  }
  std::sort(found.begin(), found.end());
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(found, keys);
}

// The footer for a trailer of `len` bytes.
std::string footer(uint64_t len) {
  std::string out("SWYCACHE");
  for (int i = 0; i < 8; ++i) {
    out += static_cast<char>((len >> (8 * i)) & 0xff);
  }
  return out;
}

std::string entryFile(const std::string& body, const std::string& trailer) {
  return body + trailer + footer(trailer.size());
}

std::string trailerJson(const std::string& key, const std::string& body) {
  return R"({"format":1,"key":")" + key + R"(","size":)" + std::to_string(body.size()) +
         R"(,"sha256":")" + sha256Hex(body) +
         R"(","stored_at_ms":5,"immutable":true,"content_type":"","source":""})";
}

TEST_F(CacheStoreTest, ScanReportsBrokenFiles) {
  putOk("mod/good.com/@v/list", "v1.0.0\n");
  const std::string good = readFile(store_.pathOf("mod/good.com/@v/list"));
  struct Case {
    std::string key;
    std::string contents;
    std::string why;
  };
  const std::string body = "hello";
  const Case cases[] = {
      {"mod/t1.com/@v/list", good.substr(0, good.size() - 3), "no trailer footer"},
      {"mod/t2.com/@v/list", "", "no trailer (file of 0 bytes)"},
      {"mod/t3.com/@v/list", "plain text, no trailer at all", "no trailer footer"},
      {"mod/t4.com/@v/list", entryFile(body, "{not json"), "trailer is not a JSON object"},
      {"mod/t5.com/@v/list", entryFile(body, "[1,2]"), "trailer is not a JSON object"},
      {"mod/t6.com/@v/list", body + footer(1000), "trailer length 1000 out of range"},
      {"mod/t7.com/@v/list", body + footer(0), "trailer length 0 out of range"},
      {"mod/t8.com/@v/list", good.substr(0, good.size() - 16) + footer(1ull << 40),
       "trailer length 1099511627776 out of range"},
      {"mod/t9.com/@v/list", entryFile(body, trailerJson("mod/other.com/@v/list", body)),
       "trailer key \"mod/other.com/@v/list\" != file name"},
      {"mod/t10.com/@v/list", good, "trailer key \"mod/good.com/@v/list\" != file name"},
      {"mod/t11.com/@v/list", entryFile("hell", trailerJson("mod/t11.com/@v/list", body)),
       "size 4 != trailer 5"},
      {"mod/t12.com/@v/list", entryFile(body, R"({"format":2})"), "trailer format is not 1"},
      {"mod/t13.com/@v/list", entryFile(body, R"({"format":1,"key":"mod/t13.com/@v/list"})"),
       "trailer fields missing or of the wrong type"},
  };
  for (const Case& c : cases) {
    writeFile(store_.pathOf(c.key), c.contents);
  }
  fs::create_symlink(store_.pathOf("mod/good.com/@v/list"), store_.pathOf("mod/link"));
  std::vector<VerifyProblem> broken;
  std::vector<EntryInfo> entries = store_.scan(&broken);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].meta.key, "mod/good.com/@v/list");
  std::map<std::string, std::string> why;
  for (const VerifyProblem& p : broken) {
    why[p.key] = p.why;
  }
  EXPECT_EQ(why.size(), std::size(cases) + 1);
  for (const Case& c : cases) {
    EXPECT_EQ(why[c.key], c.why) << c.key;
    EntryMeta meta;
    std::string error;
    EXPECT_EQ(store_.openEntry(c.key, &meta, &error), -1) << c.key;
    EXPECT_NE(error.find(c.why), std::string::npos) << error;
    ASSERT_TRUE(store_.verify(c.key).has_value()) << c.key;
    EXPECT_EQ(store_.verify(c.key)->why, c.why);
  }
  EXPECT_EQ(why["mod/link"], "not a regular file");
  // scan() only reports.
  EXPECT_EQ(filesUnder(data()).size(), std::size(cases) + 2);
}

TEST_F(CacheStoreTest, ScanWithoutDataDirectory) {
  TempDir empty;
  CacheStore store(empty.path() + "/missing");
  std::vector<VerifyProblem> broken;
  EXPECT_TRUE(store.scan(&broken).empty());
  ASSERT_EQ(broken.size(), 1u);
  EXPECT_NE(broken[0].why.find("/missing/data"), std::string::npos) << broken[0].why;
}

TEST_F(CacheStoreTest, OpenEntryErrors) {
  EntryMeta meta;
  std::string error;
  EXPECT_EQ(store_.openEntry("mod/none.com/@v/list", &meta, &error), -1);
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  EXPECT_EQ(store_.openEntry("../etc/passwd", &meta, &error), -1);
  EXPECT_NE(error.find("invalid cache key"), std::string::npos) << error;
}

// Rewrites an entry's file with `edit` applied to its body, keeping the
// trailer, so only the body is damaged.
void editBody(const std::string& path, uint64_t size,
              const std::function<void(std::string*)>& edit) {
  std::string file = readFile(path);
  std::string body = file.substr(0, size);
  const std::string rest = file.substr(size);
  edit(&body);
  writeFile(path, body + rest);
}

TEST_F(CacheStoreTest, VerifyTable) {
  const std::string zip = goModuleZip();
  struct Case {
    std::string name;
    std::string key;
    std::string body;
    std::function<void(std::string*)> damage;  // null: leave it sound
    std::optional<std::string> why;
  };
  const Case cases[] = {
      {"sound", "mod/a.com/@v/v1.0.0.mod", "module a.com\n", nullptr, std::nullopt},
      {"sound zip", "mod/a.com/@v/v1.0.0.zip", zip, nullptr, std::nullopt},
      {"flipped byte", "mod/b.com/@v/v1.0.0.mod", "module b.com\n",
       [](std::string* b) { (*b)[3] ^= 0x20; }, "sha256 mismatch"},
      {"flipped zip data byte", "mod/c.com/@v/v1.0.0.zip", zip,
       [](std::string* b) { (*b)[40] ^= 1; }, "sha256 mismatch"},
      {"zip end record damaged", "mod/d.com/@v/v1.0.0.zip", zip,
       [](std::string* b) { (*b)[b->size() - 22] = 'X'; },
       "not a zip file: no end-of-central-directory record"},
      {"truncated body", "mod/e.com/@v/v1.0.0.mod", "module e.com\n",
       [](std::string* b) { b->resize(b->size() - 2); }, "size 11 != trailer 13"},
      {"grown body", "mod/f.com/@v/list", "v1\n", [](std::string* b) { *b += "v2\n"; },
       "size 6 != trailer 3"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    putOk(c.key, c.body);
    if (c.damage) {
      editBody(store_.pathOf(c.key), c.body.size(), c.damage);
    }
    std::optional<VerifyProblem> problem = store_.verify(c.key);
    if (!c.why) {
      EXPECT_EQ(problem, std::nullopt) << problem->why;
      continue;
    }
    ASSERT_TRUE(problem.has_value());
    EXPECT_EQ(problem->key, c.key);
    EXPECT_EQ(problem->why, *c.why);
  }
  std::optional<VerifyProblem> missing = store_.verify("mod/none.com/@v/list");
  ASSERT_TRUE(missing.has_value());
  EXPECT_NE(missing->why.find("No such file"), std::string::npos) << missing->why;
}

TEST_F(CacheStoreTest, RemovePrunesEmptyParents) {
  putOk("mod/github.com/!azure/x/@v/v1.0.0.mod", "a");
  putOk("mod/github.com/!azure/x/@v/v1.0.0.info", "b");
  putOk("mod/github.com/!azure/y/@v/list", "c");
  std::string error;
  ASSERT_TRUE(store_.remove("mod/github.com/!azure/x/@v/v1.0.0.mod", &error)) << error;
  EXPECT_TRUE(fs::exists(data() + "/mod/github.com/!azure/x/@v"));
  ASSERT_TRUE(store_.remove("mod/github.com/!azure/x/@v/v1.0.0.info", &error)) << error;
  EXPECT_EQ(dirsUnder(data()),
            (std::vector<std::string>{"mod", "mod/github.com", "mod/github.com/!azure",
                                      "mod/github.com/!azure/y", "mod/github.com/!azure/y/@v"}));
  ASSERT_TRUE(store_.remove("mod/github.com/!azure/y/@v/list", &error)) << error;
  EXPECT_TRUE(fs::is_directory(data()));
  EXPECT_TRUE(fs::is_empty(data()));
  // Gone already: still true. Refused keys: false.
  EXPECT_TRUE(store_.remove("mod/github.com/!azure/y/@v/list", &error));
  EXPECT_FALSE(store_.remove("../tmp", &error));
  EXPECT_FALSE(store_.remove("", &error));
}

TEST_F(CacheStoreTest, TouchMovesLastAccessSeenByScan) {
  EntryMeta meta;
  meta.stored_at_ms = 1'000'000;
  putOk("mod/a.com/@v/list", "a", meta);
  putOk("mod/b.com/@v/list", "b", meta);
  ASSERT_TRUE(store_.touch("mod/a.com/@v/list", 1'700'000'000'456));
  std::vector<EntryInfo> entries = store_.scan();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].meta.key, "mod/b.com/@v/list");
  EXPECT_EQ(entries[0].last_access_ms, 1'000'000);
  EXPECT_EQ(entries[1].meta.key, "mod/a.com/@v/list");
  EXPECT_EQ(entries[1].last_access_ms, 1'700'000'000'456);
  EXPECT_EQ(entries[1].meta.stored_at_ms, 1'000'000) << "the trailer keeps the store time";
  EXPECT_FALSE(store_.touch("mod/none.com/@v/list", 1));
  EXPECT_FALSE(store_.touch("/abs", 1));
}

TEST_F(CacheStoreTest, ConcurrentWritersAndRemovers) {
  // Writers publish into the same directories that removers keep pruning;
  // every commit must still land (commit() retries a rename whose parent
  // vanished).
  constexpr int kThreads = 4;
  constexpr int kPerThread = 60;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &failures] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key =
            "mod/shared.com/m" + std::to_string(i % 3) + "/@v/v1.0." + std::to_string(t) + ".mod";
        std::string error;
        if (!put(key, "module x\n", nullptr, &error)) {
          ADD_FAILURE() << key << ": " << error;
          ++failures;
        }
        if (i % 2 == 1 && !store_.remove(key, &error)) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(fs::is_empty(tmpDir()));
  std::vector<VerifyProblem> broken;
  store_.scan(&broken);
  EXPECT_TRUE(broken.empty());
}

// --- CacheIndex.

EntryInfo info(const std::string& key, uint64_t size, int64_t access = 0) {
  EntryInfo e;
  e.meta.key = key;
  e.meta.size = size;
  e.last_access_ms = access;
  return e;
}

TEST(CacheIndexTest, LruTable) {
  struct Step {
    enum Op { kPut, kTouch, kErase } op;
    std::string key;
    uint64_t size;  // kPut
  };
  struct Case {
    std::string name;
    std::vector<Step> steps;
    uint64_t max_size;
    std::string keep;
    std::vector<std::string> victims;
    uint64_t total;
  };
  using S = Step;
  const Case cases[] = {
      {"under the limit", {{S::kPut, "a", 10}, {S::kPut, "b", 10}}, 20, "", {}, 20},
      {"oldest first",
       {{S::kPut, "a", 10}, {S::kPut, "b", 10}, {S::kPut, "c", 10}},
       15,
       "",
       {"a", "b"},
       30},
      {"touch protects",
       {{S::kPut, "a", 10}, {S::kPut, "b", 10}, {S::kPut, "c", 10}, {S::kTouch, "a", 0}},
       20,
       "",
       {"b"},
       30},
      {"keep is never chosen",
       {{S::kPut, "a", 10}, {S::kPut, "b", 10}, {S::kPut, "big", 50}},
       40,
       "a",
       {"b", "big"},
       70},
      {"keep alone over the limit", {{S::kPut, "big", 50}}, 40, "big", {}, 50},
      {"replace updates size and order",
       {{S::kPut, "a", 10}, {S::kPut, "b", 10}, {S::kPut, "a", 30}},
       35,
       "",
       {"b"},
       40},
      {"erase",
       {{S::kPut, "a", 10}, {S::kPut, "b", 10}, {S::kPut, "c", 10}, {S::kErase, "a", 0}},
       10,
       "",
       {"b"},
       20},
      {"erase and touch of unknown keys",
       {{S::kPut, "a", 10}, {S::kErase, "zz", 0}, {S::kTouch, "zz", 0}},
       0,
       "",
       {"a"},
       10},
      {"zero limit evicts all", {{S::kPut, "a", 1}, {S::kPut, "b", 0}}, 0, "", {"a"}, 1},
  };
  for (const Case& c : cases) {
    CacheIndex index;
    int64_t clock = 100;
    for (const Step& s : c.steps) {
      switch (s.op) {
        case Step::kPut:
          index.put(info(s.key, s.size, clock++));
          break;
        case Step::kTouch:
          index.touch(s.key, clock++);
          break;
        case Step::kErase:
          index.erase(s.key);
          break;
      }
    }
    EXPECT_EQ(index.victims(c.max_size, c.keep), c.victims) << c.name;
    EXPECT_EQ(index.totalSize(), c.total) << c.name;
  }
}

TEST(CacheIndexTest, FindTouchEraseCount) {
  CacheIndex index;
  index.put(info("a", 10, 1));
  index.put(info("b", 20, 2));
  EXPECT_EQ(index.count(), 2u);
  ASSERT_NE(index.find("a"), nullptr);
  EXPECT_EQ(index.find("a")->meta.size, 10u);
  EXPECT_EQ(index.find("zz"), nullptr);
  index.touch("a", 99);
  EXPECT_EQ(index.find("a")->last_access_ms, 99);
  EXPECT_EQ(index.victims(20), std::vector<std::string>{"b"});
  EXPECT_TRUE(index.erase("a"));
  EXPECT_FALSE(index.erase("a"));
  EXPECT_EQ(index.count(), 1u);
  EXPECT_EQ(index.totalSize(), 20u);
  EXPECT_TRUE(index.erase("b"));
  EXPECT_EQ(index.totalSize(), 0u);
  EXPECT_TRUE(index.victims(0).empty());
}

// --- moduleOfKey.

TEST(ModuleOfKeyTest, Table) {
  struct Case {
    std::string key;
    std::string module;
  };
  const Case cases[] = {
      {"mod/github.com/!azure/x/@v/v1.0.0.zip", "github.com/Azure/x"},
      {"mod/github.com/!azure/!a!z/@v/v1.0.0-!r!c1.info", "github.com/Azure/AZ"},
      {"mod/golang.org/x/mod/@v/list", "golang.org/x/mod"},
      {"mod/golang.org/x/mod/@latest", "golang.org/x/mod"},
      {"mod/gopkg.in/yaml.v3/@v/v3.0.1.mod", "gopkg.in/yaml.v3"},
      {"mod/example.com/m/v2/@v/v2.0.0+incompatible.zip", "example.com/m/v2"},
      {"mod/example.com/a%41/@v/v1.0.0.mod", ""},
      {"sumdb/sum.golang.org/lookup/github.com/!azure/x@v1.0.0", "github.com/Azure/x"},
      {"sumdb/db.example:8443/sub/lookup/golang.org/x/mod@v0.1.0", "golang.org/x/mod"},
      {"sumdb/sum.golang.org/tile/8/0/001", ""},
      {"sumdb/sum.golang.org/latest", ""},
      {"sumdb/sum.golang.org/supported", ""},
      // Not what cacheKey() produces: no module.
      {"mod/github.com/Azure/x/@v/list", ""},
      {"mod/github.com/!azure/x/@v/v1.0.0.tar", ""},
      {"mod/sumdb/sum.golang.org/latest", ""},
      {"mod/github.com/x/@v/../../etc", ""},
      {"mod/github.com/x", ""},
      {"cache/github.com/x/@v/list", ""},
      {"", ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(moduleOfKey(c.key), c.module) << c.key;
  }
}

}  // namespace
}  // namespace switchyard::cache
