// CacheStore::scan() over a large cache: how long a daemon start (or a
// `switchyard cache ls`) spends reading the trailers of N entries. The
// entries are written with the real Writer (fsync and all), laid out like
// a module cache (see keyOf), then scanned:
//   warm  the page, inode and dentry caches hold everything (median of 5);
//   fadv  each file's pages dropped with posix_fadvise(DONTNEED) first, so
//         the trailers come from the disk but inodes and dentries stay
//         cached;
//   cold  (--drop-caches, needs root) the kernel's caches dropped through
//         /proc/sys/vm/drop_caches first. This slows everything else on
//         the machine for a moment, hence opt-in.
//
// Usage: cache_scan_bench [--entries N] [--versions V] [--dir DIR] [--keep]
//                         [--drop-caches]
// Without --dir the entries go to a new directory under /tmp, removed at
// the end unless --keep; with --dir an existing cache is reused as is when
// it already holds entries (so repeated runs skip the slow writing).
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "daemon/cache_store.h"

namespace {

using switchyard::cache::CacheStore;
using switchyard::cache::EntryInfo;
using switchyard::cache::EntryMeta;
using switchyard::cache::VerifyProblem;
using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The key and body of entry `i`. Each module (spread over 97
// organisations of one host, with a major-version suffix) has `versions`
// versions with an .info and a .mod each, a list, and the .zip and the
// checksum-database lookup of its newest version: 3 + 2 * versions entries
// in 4 directories of their own ("!repoN", "vK", "@v", and the lookup's
// "!repoN"). versions = 1 is the worst case, 0.8 directories per entry;
// versions = 4 (0.36) is closer to what `go mod download` leaves behind,
// where the module graph brings several go.mod versions per module.
std::string keyOf(size_t i, size_t versions, std::string* body) {
  const size_t per_module = 3 + 2 * versions;
  const size_t module = i / per_module;
  const size_t j = i % per_module;
  const std::string org = "github.com/org" + std::to_string(module % 97);
  const std::string major = "/v" + std::to_string(2 + module % 3);
  const std::string path = org + "/Repo" + std::to_string(module) + major;
  const std::string escaped = org + "/!repo" + std::to_string(module) + major;
  auto version = [](size_t v) { return "v1." + std::to_string(v) + ".0"; };
  const std::string newest = version(versions - 1);
  if (j == 0) {
    *body = newest + "\n";
    return "mod/" + escaped + "/@v/list";
  }
  if (j <= 2 * versions) {
    const std::string v = version((j - 1) / 2);
    if (j % 2 == 1) {
      *body = "{\"Version\":\"" + v + "\",\"Time\":\"2024-01-01T00:00:00Z\"}";
      return "mod/" + escaped + "/@v/" + v + ".info";
    }
    *body = "module " + path + "\n\ngo 1.21\n";
    return "mod/" + escaped + "/@v/" + v + ".mod";
  }
  if (j == 2 * versions + 1) {
    // The smallest valid zip: an empty end-of-central-directory record.
    *body = std::string("PK\x05\x06", 4) + std::string(18, '\0');
    return "mod/" + escaped + "/@v/" + newest + ".zip";
  }
  *body = "12345\n" + path + " " + newest + " h1:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG=\n";
  return "sumdb/sum.golang.org/lookup/" + escaped + "@" + newest;
}

bool populate(const CacheStore& store, size_t entries, size_t versions, unsigned threads) {
  std::vector<std::thread> pool;
  std::vector<int> failed(threads, 0);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = t; i < entries; i += threads) {
        std::string body;
        const std::string key = keyOf(i, versions, &body);
        std::string error;
        std::unique_ptr<CacheStore::Writer> w = store.begin(key, &error);
        EntryMeta meta;
        meta.immutable = !key.ends_with("/list");
        meta.content_type = "text/plain; charset=utf-8";
        meta.source = "https://proxy.golang.org/" + key.substr(key.find('/') + 1);
        EntryInfo info;
        if (w == nullptr || !w->append(body.data(), body.size(), &error) ||
            !w->commit(meta, body.size(), &info, &error)) {
          std::fprintf(stderr, "%s: %s\n", key.c_str(), error.c_str());
          failed[t] = 1;
          return;
        }
      }
    });
  }
  for (std::thread& t : pool) {
    t.join();
  }
  return std::count(failed.begin(), failed.end(), 1) == 0;
}

// User + system CPU time of the whole process (all threads), in ms.
double cpuMs() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

struct ScanTime {
  double wall_ms;
  double cpu_ms;
};

// Scans once and checks the count.
ScanTime timedScan(const CacheStore& store, size_t expected) {
  std::vector<VerifyProblem> broken;
  const double cpu_start = cpuMs();
  const Clock::time_point start = Clock::now();
  std::vector<EntryInfo> entries = store.scan(&broken);
  const ScanTime t{msSince(start), cpuMs() - cpu_start};
  if (entries.size() != expected || !broken.empty()) {
    std::fprintf(stderr, "scan found %zu entries (want %zu), %zu broken\n", entries.size(),
                 expected, broken.size());
    std::exit(1);
  }
  return t;
}

void dropFilePages(const CacheStore& store, const std::vector<EntryInfo>& entries) {
  for (const EntryInfo& e : entries) {
    int fd = ::open(store.pathOf(e.meta.key).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
    }
  }
}

// The 1-minute load average, to tell a busy machine's numbers apart.
std::string loadAverage() {
  double load[1] = {0};
  if (::getloadavg(load, 1) != 1) {
    return "?";
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%.1f", load[0]);
  return buf;
}

bool dropKernelCaches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  const bool ok = ::write(fd, "3", 1) == 1;
  ::close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  size_t entries = 100'000;
  size_t versions = 4;
  std::string dir;
  bool keep = false;
  bool drop_caches = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--entries" && i + 1 < argc) {
      entries = std::stoul(argv[++i]);
    } else if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
      keep = true;
    } else if (arg == "--versions" && i + 1 < argc) {
      versions = std::max<size_t>(1, std::stoul(argv[++i]));
    } else if (arg == "--keep") {
      keep = true;
    } else if (arg == "--drop-caches") {
      drop_caches = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--entries N] [--versions V] [--dir DIR] [--keep] [--drop-caches]\n",
                   argv[0]);
      return 2;
    }
  }
  if (dir.empty()) {
    char tmpl[] = "/tmp/sy-cache-scan-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
  }
  CacheStore store(dir);
  std::string error;
  if (!store.open(&error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  std::vector<EntryInfo> existing = store.scan();
  if (existing.size() != entries) {
    if (!existing.empty()) {
      std::fprintf(stderr, "%s holds %zu entries, not %zu; give an empty --dir\n", dir.c_str(),
                   existing.size(), entries);
      return 1;
    }
    const Clock::time_point start = Clock::now();
    if (!populate(store, entries, versions, 2)) {
      return 1;
    }
    std::printf(
        "wrote %zu entries (%zu versions per module) with CacheStore::Writer in %.1f s (fsync "
        "each) under %s\n",
        entries, versions, msSince(start) / 1000, dir.c_str());
    existing = store.scan();
  }

  std::vector<ScanTime> warm;
  for (int i = 0; i < 5; ++i) {
    warm.push_back(timedScan(store, entries));
  }
  std::sort(warm.begin(), warm.end(),
            [](const ScanTime& a, const ScanTime& b) { return a.wall_ms < b.wall_ms; });
  std::printf(
      "scan of %zu entries, warm: median %.0f ms wall, %.0f ms CPU (wall min %.0f, max %.0f; "
      "5 runs; %u cores, load %s)\n",
      entries, warm[2].wall_ms, warm[2].cpu_ms, warm.front().wall_ms, warm.back().wall_ms,
      std::thread::hardware_concurrency(), loadAverage().c_str());

  dropFilePages(store, existing);
  ScanTime t = timedScan(store, entries);
  std::printf("scan of %zu entries, file pages dropped (fadvise): %.0f ms wall, %.0f ms CPU\n",
              entries, t.wall_ms, t.cpu_ms);

  if (drop_caches) {
    if (dropKernelCaches()) {
      t = timedScan(store, entries);
      std::printf("scan of %zu entries, kernel caches dropped: %.0f ms wall, %.0f ms CPU\n",
                  entries, t.wall_ms, t.cpu_ms);
    } else {
      std::printf("cold scan skipped: cannot write /proc/sys/vm/drop_caches (%s)\n",
                  std::strerror(errno));
    }
  }
  if (!keep) {
    std::filesystem::remove_all(dir);
  }
  return 0;
}
