// `switchyard cache ls|verify|purge [PATTERN]`: the module cache seen from
// the command line, with the same CacheStore the daemon uses. PATTERN is a
// GOPRIVATE-style list matched against the module each key belongs to
// (moduleOfKey), so "github.com/Azure" finds "mod/github.com/!azure/...";
// keys about no module (sumdb tiles, latest, supported) match no pattern
// and are only listed or verified when no pattern is given.
//
// It is safe to run next to the daemon: it never touches tmp/ (no
// CacheStore::open()), removal is an unlink, and a reader that already has
// a file open keeps reading the old inode.
//
// Exit codes: 0 done; 1 the directory or config could not be read, or
// verify found (and removed) broken entries; 2 a usage error (no cache
// directory configured, a malformed pattern).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "daemon/cache_store.h"
#include "daemon/cli.h"
#include "rules/config_loader.h"
#include "rules/environment.h"
#include "rules/module_pattern.h"

namespace switchyard {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// How much of the sha256 `ls` shows: enough to compare two listings.
constexpr size_t kShaPrefixLength = 12;

std::string rfc3339(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  tm utc{};
  char buf[32];
  if (::gmtime_r(&secs, &utc) == nullptr ||
      std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc) == 0) {
    return "-";
  }
  return buf;
}

// The cache directory from --dir or the config's cache.dir; or an exit code.
bool resolveDir(const CacheOptions& options, std::string* dir, int* exit_code) {
  if (!options.dir.empty()) {
    *dir = options.dir;
    return true;
  }
  if (options.config_file.empty()) {
    std::fprintf(stderr, "cache: no cache directory: give --dir DIR or --config FILE\n");
    *exit_code = kExitUsage;
    return false;
  }
  rules::LoadResult loaded =
      rules::loadConfigFile(options.config_file, rules::processEnvironment());
  if (!loaded.config) {
    for (const std::string& error : loaded.errors) {
      std::fprintf(stderr, "%s\n", error.c_str());
    }
    *exit_code = kExitFailure;
    return false;
  }
  if (loaded.config->cache.dir.empty()) {
    std::fprintf(stderr, "cache: %s sets no cache.dir; give --dir DIR\n",
                 options.config_file.c_str());
    *exit_code = kExitUsage;
    return false;
  }
  *dir = loaded.config->cache.dir;
  return true;
}

class CacheCommand {
 public:
  CacheCommand(const CacheOptions& options, const std::string& dir)
      : options_(options), store_(dir) {}

  int run() {
    if (options_.action == CacheAction::kPurge && options_.pattern.empty()) {
      std::fprintf(stderr, "cache purge: give a module pattern\n");
      return kExitUsage;
    }
    for (const rules::PatternProblem& p : rules::checkPatternList(options_.pattern)) {
      std::fprintf(stderr, "cache: pattern \"%s\": %s\n", p.pattern.c_str(), p.message.c_str());
      return kExitUsage;
    }
    const std::string data = store_.dir() + "/data";
    struct stat st {};
    if (::stat(data.c_str(), &st) != 0) {
      std::fprintf(stderr, "cache: %s: %s\n", data.c_str(), std::strerror(errno));
      return kExitFailure;
    }
    if (!S_ISDIR(st.st_mode)) {
      std::fprintf(stderr, "cache: %s: not a directory\n", data.c_str());
      return kExitFailure;
    }
    std::vector<cache::VerifyProblem> broken;
    std::vector<cache::EntryInfo> entries = store_.scan(&broken);
    std::erase_if(entries, [this](const cache::EntryInfo& e) { return !selected(e.meta.key); });
    std::erase_if(broken, [this](const cache::VerifyProblem& p) { return !selected(p.key); });
    std::sort(entries.begin(), entries.end(),
              [](const cache::EntryInfo& a, const cache::EntryInfo& b) {
                return a.meta.key < b.meta.key;
              });
    switch (options_.action) {
      case CacheAction::kList:
        return list(entries, broken);
      case CacheAction::kVerify:
        return verify(entries, broken);
      case CacheAction::kPurge:
        return purge(entries, broken);
    }
    return kExitUsage;
  }

 private:
  bool selected(const std::string& key) const {
    if (options_.pattern.empty()) {
      return true;
    }
    const std::string module = cache::moduleOfKey(key);
    return !module.empty() && rules::matchPrefixPatterns(options_.pattern, module);
  }

  int list(const std::vector<cache::EntryInfo>& entries,
           const std::vector<cache::VerifyProblem>& broken) {
    uint64_t total = 0;
    for (const cache::EntryInfo& e : entries) {
      std::printf("%s %llu %s %s %s\n", e.meta.key.c_str(),
                  static_cast<unsigned long long>(e.meta.size),
                  rfc3339(e.meta.stored_at_ms).c_str(), e.meta.immutable ? "immutable" : "mutable",
                  e.meta.sha256.substr(0, kShaPrefixLength).c_str());
      total += e.meta.size;
    }
    std::printf("%zu entries, %llu bytes\n", entries.size(),
                static_cast<unsigned long long>(total));
    for (const cache::VerifyProblem& p : broken) {
      std::fprintf(stderr, "broken: %s: %s (`switchyard cache verify` removes it)\n", p.key.c_str(),
                   p.why.c_str());
    }
    return kExitOk;
  }

  int verify(const std::vector<cache::EntryInfo>& entries,
             const std::vector<cache::VerifyProblem>& broken) {
    std::vector<cache::VerifyProblem> problems = broken;
    for (const cache::EntryInfo& e : entries) {
      if (std::optional<cache::VerifyProblem> p = store_.verify(e.meta.key)) {
        problems.push_back(std::move(*p));
      }
    }
    std::sort(
        problems.begin(), problems.end(),
        [](const cache::VerifyProblem& a, const cache::VerifyProblem& b) { return a.key < b.key; });
    for (const cache::VerifyProblem& p : problems) {
      std::string error;
      if (store_.remove(p.key, &error)) {
        std::printf("removed %s: %s\n", p.key.c_str(), p.why.c_str());
      } else {
        std::printf("broken %s: %s (not removed: %s)\n", p.key.c_str(), p.why.c_str(),
                    error.c_str());
      }
    }
    std::printf("%zu entries checked, %zu broken\n", entries.size() + broken.size(),
                problems.size());
    return problems.empty() ? kExitOk : kExitFailure;
  }

  int purge(const std::vector<cache::EntryInfo>& entries,
            const std::vector<cache::VerifyProblem>& broken) {
    size_t removed = 0;
    uint64_t bytes = 0;
    int exit_code = kExitOk;
    auto removeOne = [&](const std::string& key, uint64_t size) {
      std::string error;
      if (store_.remove(key, &error)) {
        ++removed;
        bytes += size;
      } else {
        std::fprintf(stderr, "cache purge: %s\n", error.c_str());
        exit_code = kExitFailure;
      }
    };
    for (const cache::EntryInfo& e : entries) {
      removeOne(e.meta.key, e.meta.size);
    }
    for (const cache::VerifyProblem& p : broken) {
      struct stat st {};
      const bool sized = ::lstat(store_.pathOf(p.key).c_str(), &st) == 0 && S_ISREG(st.st_mode);
      removeOne(p.key, sized ? static_cast<uint64_t>(st.st_size) : 0);
    }
    std::printf("purged %zu entries, %llu bytes\n", removed,
                static_cast<unsigned long long>(bytes));
    return exit_code;
  }

  const CacheOptions& options_;
  cache::CacheStore store_;
};

}  // namespace

int runCache(const CacheOptions& options) {
  std::string dir;
  int exit_code = kExitOk;
  if (!resolveDir(options, &dir, &exit_code)) {
    return exit_code;
  }
  return CacheCommand(options, dir).run();
}

}  // namespace switchyard
