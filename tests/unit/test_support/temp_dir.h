// A fresh temporary directory for one test or one suite, shared by the unit
// tests that write files (CAs, leaves) and must leave nothing behind.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace switchyard::test {

// A directory `$TMPDIR/<prefix>-XXXXXX` (or under /tmp), removed with
// everything inside it when the object goes. The prefix tells whose it is
// when one is left behind by a crash.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "-XXXXXX";
    char* made = mkdtemp(tmpl.data());
    if (made == nullptr) {
      std::abort();
    }
    path_ = made;
  }
  ~TempDir() {
    namespace fs = std::filesystem;
    std::error_code ec;
    // Tests may leave read-only directories behind; open them up first.
    for (auto it = fs::recursive_directory_iterator(path_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec)) {
        chmod(it->path().c_str(), 0700);
      }
    }
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // A path inside the directory.
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace switchyard::test
