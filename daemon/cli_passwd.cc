// `switchyard passwd --file F [--delete] USER`: adds, changes or removes one
// line of the users file. The password comes from stdin (one line), never
// from the command line, so it stays out of the process list and the shell
// history. The file is replaced atomically (a temporary file in the same
// directory, fsync, rename, fsync of the directory), so the daemon reading
// it on SIGHUP sees the old file or the new one, never half of one. Every
// other line (other users, comments, even lines the daemon would reject) is
// kept byte for byte.
//
// Exit codes: 0 done; 1 the file could not be read or written, or --delete
// named a user who is not there; 2 a bad user name or password.
//
// Known limit: two passwd runs on the same file at the same moment do not
// lock each other out; the later rename wins and the earlier change is lost.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cli.h"
#include "daemon/proxy_auth.h"

namespace switchyard {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;

std::string errnoText() {
  return std::strerror(errno);
}

// The contents of `path`; *exists false (and true returned) when there is
// no such file.
bool readWholeFile(const std::string& path, std::string* out, bool* exists, struct stat* st,
                   std::string* error) {
  *exists = false;
  if (::lstat(path.c_str(), st) != 0) {
    if (errno == ENOENT) {
      return true;
    }
    *error = "cannot stat " + path + ": " + errnoText();
    return false;
  }
  if (S_ISLNK(st->st_mode)) {
    // Renaming over a symlink would replace the link, not the file it
    // points to; name the real file instead.
    *error = path + " is a symbolic link; give the path of the file it points to";
    return false;
  }
  if (!S_ISREG(st->st_mode)) {
    *error = path + " is not a regular file";
    return false;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    *error = "cannot open " + path + ": " + errnoText();
    return false;
  }
  *exists = true;
  out->clear();
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      *error = "cannot read " + path + ": " + errnoText();
      ::close(fd);
      return false;
    }
    if (n == 0) {
      break;
    }
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > UserDb::kMaxFileBytes) {
      *error = path + " is larger than " + std::to_string(UserDb::kMaxFileBytes >> 20) +
               " MiB; not a users file";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// True if `line` is the entry of `user` (comments and blank lines never are).
bool isUserLine(const std::string& line, const std::string& user) {
  if (line.empty() || line.front() == '#') {
    return false;
  }
  size_t colon = line.find(':');
  return colon != std::string::npos && line.compare(0, colon, user) == 0 && colon == user.size();
}

// One line from fd 0, at most `max` bytes before the newline. False on a
// read error or an over-long line.
bool readLine(size_t max, std::string* out, std::string* error) {
  out->clear();
  char c = 0;
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      *error = "cannot read the password from stdin: " + errnoText();
      return false;
    }
    if (n == 0 || c == '\n') {
      return true;
    }
    // Leave room for a '\r' that is stripped afterwards.
    if (out->size() > max) {
      *error = "the password is longer than " + std::to_string(kMaxPasswordBytes) + " bytes";
      return false;
    }
    out->push_back(c);
  }
}

// Reads a line from a terminal with echo off, after `prompt` on stderr.
// Echo goes off before the prompt appears (as getpass(3) does), so nothing
// typed after the prompt is echoed or discarded by the TCSAFLUSH.
bool readHidden(const std::string& prompt, std::string* out, std::string* error) {
  termios saved{};
  bool restore = ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (restore) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::fputs(prompt.c_str(), stderr);
  std::fflush(stderr);
  bool ok = readLine(kMaxPasswordBytes + 1, out, error);
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  }
  std::fputs("\n", stderr);
  return ok;
}

bool readPassword(const std::string& user, std::string* password, std::string* error) {
  if (::isatty(STDIN_FILENO)) {
    std::string again;
    if (!readHidden("Password for " + user + ": ", password, error) ||
        !readHidden("Retype password: ", &again, error)) {
      return false;
    }
    if (again != *password) {
      *error = "the passwords do not match";
      return false;
    }
  } else if (!readLine(kMaxPasswordBytes + 1, password, error)) {
    return false;
  }
  // A line written by a Windows tool ends in "\r\n".
  if (!password->empty() && password->back() == '\r') {
    password->pop_back();
  }
  if (password->empty()) {
    *error = "empty password refused";
    return false;
  }
  if (password->size() > kMaxPasswordBytes) {
    *error = "the password is longer than " + std::to_string(kMaxPasswordBytes) + " bytes";
    return false;
  }
  for (char c : *password) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      // RFC 7617 2: a client could not send it.
      *error = "the password contains a control character";
      return false;
    }
  }
  return true;
}

bool writeAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// The directory part of `path` ("." when there is none).
std::string dirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string baseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Replaces `path` by a file holding `content`. A new file is 0600 and ours.
// An existing one keeps its owner and group (when we may set them: root
// editing a root:switchyard 0640 file must not lock the daemon out) and its
// group-read bit; write bits for the group and every bit for others go.
bool replaceFile(const std::string& path, const std::string& content, bool exists,
                 const struct stat& old, std::string* error) {
  std::string dir = dirName(path);
  std::string tmp = dir + "/." + baseName(path) + ".XXXXXX";
  // mkostemp picks an unused name and creates it with O_EXCL, mode 0600.
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot create a temporary file in " + dir + ": " + errnoText();
    return false;
  }
  auto fail = [&](const std::string& what) {
    *error = what + " " + tmp + ": " + errnoText();
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  };
  mode_t mode = exists ? (S_IRUSR | S_IWUSR | (old.st_mode & S_IRGRP)) : (S_IRUSR | S_IWUSR);
  if (exists && (old.st_uid != ::geteuid() || old.st_gid != ::getegid())) {
    if (::fchown(fd, old.st_uid, old.st_gid) != 0 && ::fchown(fd, -1, old.st_gid) != 0) {
      std::fprintf(stderr,
                   "passwd: warning: cannot give the new %s the owner %u:%u of the old one (%s); "
                   "check that the daemon can still read it\n",
                   path.c_str(), static_cast<unsigned>(old.st_uid),
                   static_cast<unsigned>(old.st_gid), errnoText().c_str());
    }
  }
  if (::fchmod(fd, mode) != 0) {
    return fail("cannot set the mode of");
  }
  if (!writeAll(fd, content)) {
    return fail("cannot write");
  }
  if (::fsync(fd) != 0) {
    return fail("cannot sync");
  }
  if (::close(fd) != 0) {
    *error = "cannot write " + tmp + ": " + errnoText();
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + " to " + path + ": " + errnoText();
    ::unlink(tmp.c_str());
    return false;
  }
  // The rename itself is only durable once the directory is synced.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    std::fprintf(stderr, "passwd: warning: cannot sync directory %s: %s\n", dir.c_str(),
                 errnoText().c_str());
  }
  if (dfd >= 0) {
    ::close(dfd);
  }
  if (exists && (old.st_mode & (S_IWGRP | S_IRWXO)) != 0) {
    std::fprintf(stderr, "passwd: note: %s was mode %04o; it is now %04o (no access for others)\n",
                 path.c_str(), static_cast<unsigned>(old.st_mode & 07777),
                 static_cast<unsigned>(mode));
  }
  return true;
}

void wipe(std::string* s) {
  if (!s->empty()) {
    OPENSSL_cleanse(s->data(), s->size());
  }
  s->clear();
}

}  // namespace

int runPasswd(const PasswdOptions& options) {
  std::string why;
  if (options.file.empty()) {
    std::fprintf(stderr, "passwd: --file is empty\n");
    return kExitBadInput;
  }
  if (!validUserName(options.user, &why)) {
    std::fprintf(stderr, "passwd: %s\n", why.c_str());
    return kExitBadInput;
  }
  const std::string& user = options.user;
  std::string text;
  bool exists = false;
  struct stat old {};
  std::string error;
  if (!readWholeFile(options.file, &text, &exists, &old, &error)) {
    std::fprintf(stderr, "passwd: %s\n", error.c_str());
    return kExitFailure;
  }
  std::vector<std::string> lines = splitLines(text);
  size_t found = 0;
  std::vector<std::string> kept;
  kept.reserve(lines.size() + 1);
  size_t position = lines.size() + 1;  // where the user's line goes
  for (std::string& line : lines) {
    if (isUserLine(line, user)) {
      // The first entry is replaced in place; any later duplicate (which the
      // daemon would refuse) goes.
      if (found++ == 0) {
        position = kept.size();
      }
      continue;
    }
    kept.push_back(std::move(line));
  }

  const char* done = nullptr;  // what the last line of output says
  if (options.delete_user) {
    if (found == 0) {
      std::fprintf(stderr, "passwd: no user \"%s\" in %s\n", user.c_str(), options.file.c_str());
      return kExitFailure;
    }
    done = "deleted from";
  } else {
    std::string password;
    if (!readPassword(user, &password, &error)) {
      wipe(&password);
      std::fprintf(stderr, "passwd: %s\n", error.c_str());
      return kExitBadInput;
    }
    std::string hash = hashPassword(password, &error);
    wipe(&password);
    if (hash.empty()) {
      std::fprintf(stderr, "passwd: %s\n", error.c_str());
      return kExitFailure;
    }
    std::string entry = user + ":" + hash;
    if (found == 0) {
      kept.push_back(std::move(entry));
      done = "added to";
    } else {
      kept.insert(kept.begin() + static_cast<std::ptrdiff_t>(position), std::move(entry));
      done = "changed in";
    }
  }

  std::string content;
  for (const std::string& line : kept) {
    content += line;
    content += '\n';
  }
  // Other lines are not ours to fix, but the daemon would refuse the whole
  // file for one of them: say so now rather than at the next reload.
  std::vector<std::string> problems;
  if (UserDb::parse(content, options.file, &problems) == nullptr) {
    for (const std::string& p : problems) {
      std::fprintf(stderr, "passwd: warning: %s\n", p.c_str());
    }
    std::fprintf(stderr, "passwd: warning: the daemon will refuse %s until these are fixed\n",
                 options.file.c_str());
  }
  if (!replaceFile(options.file, content, exists, old, &error)) {
    std::fprintf(stderr, "passwd: %s\n", error.c_str());
    return kExitFailure;
  }
  std::printf("user %s %s %s\n", user.c_str(), done, options.file.c_str());
  return kExitOk;
}

}  // namespace switchyard
