// CacheStore::scan(): reads the trailer of every file under data/.
//
// The cost is system calls, not bytes: per directory an open, two
// getdents64 and a close; per file an open, an fstat (size and mtime), one
// pread of the last few KiB and a close. A module cache has nearly as many
// directories as files (every module version brings its own path), so
// directories are read with getdents64 on a plain fd rather than through
// opendir(), which adds an fstat and an fcntl to each.
//
// Several threads share the walk: a stack of directories still to read,
// each thread taking one, reading its files and pushing its
// subdirectories. On a warm cache that spreads the system calls over the
// cores; on a cold one it keeps several reads in flight, which is what a
// disk (or a virtual one) rewards. Directories travel as paths, not fds,
// so a wide tree cannot run the process out of descriptors.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/cache_entry_file.h"
#include "daemon/cache_store.h"

namespace switchyard::cache {
namespace {

using detail::errnoText;

// Threads for one scan. More than the cores helps a cold scan (reads in
// flight) and costs little on a warm one; beyond 8 a disk gains nothing.
unsigned scanThreads() {
  const unsigned cores = std::thread::hardware_concurrency();
  return std::clamp(cores * 2, 2u, 8u);
}

// Big enough that most directories need one getdents64 call plus the one
// that reports the end.
constexpr size_t kDirentBufferBytes = 32 * 1024;

class ParallelScanner {
 public:
  explicit ParallelScanner(int data_fd) : data_fd_(data_fd) { pending_.emplace_back(); }

  void run(unsigned threads, std::vector<EntryInfo>* out, std::vector<VerifyProblem>* broken) {
    std::vector<Results> results(threads);
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) {
      try {
        pool.emplace_back([this, r = &results[i]] { work(r); });
      } catch (const std::system_error&) {
        break;  // no more threads to be had: the ones running share the walk
      }
    }
    work(&results[0]);
    for (std::thread& t : pool) {
      t.join();
    }
    for (Results& r : results) {
      out->insert(out->end(), std::make_move_iterator(r.entries.begin()),
                  std::make_move_iterator(r.entries.end()));
      if (broken != nullptr) {
        broken->insert(broken->end(), std::make_move_iterator(r.broken.begin()),
                       std::make_move_iterator(r.broken.end()));
      }
    }
  }

 private:
  // What one thread found; merged after the walk, so no locking per file.
  struct Results {
    std::vector<EntryInfo> entries;
    std::vector<VerifyProblem> broken;
    std::vector<std::string> subdirs;  // scratch: found in the current directory
  };

  void work(Results* r) {
    std::unique_lock lock(mu_);
    while (true) {
      // Done when nothing is pending and nobody can add more.
      cv_.wait(lock, [this] { return !pending_.empty() || busy_ == 0; });
      if (pending_.empty()) {
        return;
      }
      std::string rel = std::move(pending_.back());
      pending_.pop_back();
      ++busy_;
      lock.unlock();
      readDirectory(rel, r);
      lock.lock();
      --busy_;
      const bool wake = !r->subdirs.empty() || busy_ == 0;
      for (std::string& d : r->subdirs) {
        pending_.push_back(std::move(d));
      }
      r->subdirs.clear();
      if (wake) {
        cv_.notify_all();
      }
    }
  }

  // `rel` is the directory's path below data/, "" for data/ itself.
  void readDirectory(const std::string& rel, Results* r) {
    const int fd = ::openat(data_fd_, rel.empty() ? "." : rel.c_str(),
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      // Pruned by a concurrent remove(): nothing left to report.
      if (errno != ENOENT) {
        report(r, rel, "cannot open directory: " + errnoText(errno));
      }
      return;
    }
    alignas(struct dirent64) char buf[kDirentBufferBytes];
    while (true) {
      const ssize_t n = ::getdents64(fd, buf, sizeof(buf));
      if (n < 0) {
        report(r, rel, "cannot read directory: " + errnoText(errno));
        break;
      }
      if (n == 0) {
        break;
      }
      for (ssize_t pos = 0; pos < n;) {
        const auto* ent = reinterpret_cast<const struct dirent64*>(buf + pos);
        pos += ent->d_reclen;
        visit(fd, rel, ent->d_name, ent->d_type, r);
      }
    }
    ::close(fd);
  }

  void visit(int dir_fd, const std::string& rel, const char* name, unsigned char type, Results* r) {
    const std::string_view view = name;
    if (view == "." || view == "..") {
      return;
    }
    std::string child = rel.empty() ? std::string(view) : rel + "/" + std::string(view);
    if (type == DT_UNKNOWN) {
      // Some file systems leave d_type unset; ask.
      struct stat st {};
      if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {
          report(r, child, "cannot stat: " + errnoText(errno));
        }
        return;
      }
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type == DT_DIR) {
      r->subdirs.push_back(std::move(child));
    } else if (type == DT_REG) {
      readEntry(dir_fd, name, std::move(child), r);
    } else {
      report(r, std::move(child), "not a regular file");
    }
  }

  void readEntry(int dir_fd, const char* name, std::string rel, Results* r) {
    // O_NOATIME: the first read after a write would otherwise dirty every
    // inode (relatime). Only the owner (or CAP_FOWNER) may ask for it.
    int fd = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
    if (fd < 0 && errno == EPERM) {
      fd = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) {
      // Removed between getdents64 and open: not an entry any more.
      if (errno != ENOENT) {
        report(r, std::move(rel), "cannot open: " + errnoText(errno));
      }
      return;
    }
    struct stat st {};
    EntryInfo info;
    std::string why;
    if (::fstat(fd, &st) != 0) {
      why = "cannot stat: " + errnoText(errno);
    } else if (!S_ISREG(st.st_mode)) {
      why = "not a regular file";
    } else if (detail::readTrailer(fd, static_cast<uint64_t>(st.st_size), &info.meta, &why) &&
               info.meta.key != rel) {
      why = "trailer key \"" + info.meta.key + "\" != file name";
    }
    ::close(fd);
    if (!why.empty()) {
      report(r, std::move(rel), std::move(why));
      return;
    }
    info.last_access_ms = detail::mtimeMs(st);
    r->entries.push_back(std::move(info));
  }

  static void report(Results* r, std::string rel, std::string why) {
    r->broken.push_back(VerifyProblem{std::move(rel), std::move(why)});
  }

  const int data_fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> pending_;  // directories to read (a stack: depth first)
  unsigned busy_ = 0;                 // threads reading a directory now
};

}  // namespace

std::vector<EntryInfo> CacheStore::scan(std::vector<VerifyProblem>* broken) const {
  std::vector<EntryInfo> out;
  const size_t broken_before = broken != nullptr ? broken->size() : 0;
  const std::string data = dir_ + "/data";
  const int fd = ::open(data.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (broken != nullptr) {
      broken->push_back(VerifyProblem{"", "cannot open " + data + ": " + errnoText(errno)});
    }
    return out;
  }
  ParallelScanner(fd).run(scanThreads(), &out, broken);
  ::close(fd);
  std::sort(out.begin(), out.end(), [](const EntryInfo& a, const EntryInfo& b) {
    if (a.last_access_ms != b.last_access_ms) {
      return a.last_access_ms < b.last_access_ms;
    }
    return a.meta.key < b.meta.key;
  });
  if (broken != nullptr) {
    std::sort(broken->begin() + static_cast<std::ptrdiff_t>(broken_before), broken->end(),
              [](const VerifyProblem& a, const VerifyProblem& b) { return a.key < b.key; });
  }
  return out;
}

}  // namespace switchyard::cache
