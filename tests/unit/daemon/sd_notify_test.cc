// SystemdNotifier and socketActivationFds() against the real protocol: a
// datagram socket stands in for systemd's NOTIFY_SOCKET, and real listening
// sockets are placed at fd 3… in a forked child for LISTEN_FDS.
#include "daemon/sd_notify.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace switchyard {
namespace {

constexpr const char* kSystemdVariables[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                             "LISTEN_FDS",    "LISTEN_PID",    "LISTEN_FDNAMES"};

// Saves the systemd variables, clears them for the test, restores them after.
class ScopedSystemdEnv {
 public:
  ScopedSystemdEnv() {
    for (const char* name : kSystemdVariables) {
      if (const char* value = std::getenv(name)) {
        saved_[name] = value;
      }
      unsetenv(name);
    }
  }
  ~ScopedSystemdEnv() {
    for (const char* name : kSystemdVariables) {
      auto it = saved_.find(name);
      if (it == saved_.end()) {
        unsetenv(name);
      } else {
        setenv(name, it->second.c_str(), 1);
      }
    }
  }

 private:
  std::map<std::string, std::string> saved_;
};

uint64_t monotonicUsecNow() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

enum class SocketKind { kPath, kAbstract };

// Plays systemd's side of NOTIFY_SOCKET: an AF_UNIX datagram socket, bound
// to a file in a fresh directory or to an abstract name ("@…").
class NotifyListener {
 public:
  explicit NotifyListener(SocketKind kind) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len = 0;
    if (kind == SocketKind::kPath) {
      char dir[] = "/tmp/sy-notify-XXXXXX";
      if (mkdtemp(dir) != nullptr) {
        dir_ = dir;
      }
      address_ = dir_ + "/notify";
      std::memcpy(addr.sun_path, address_.c_str(), address_.size() + 1);
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() + 1);
    } else {
      static int counter = 0;
      std::string name =
          "switchyard-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
      address_ = "@" + name;
      // Abstract names start with a NUL byte and have no terminator.
      std::memcpy(addr.sun_path + 1, name.data(), name.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    }
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
    setenv("NOTIFY_SOCKET", address_.c_str(), 1);
  }
  ~NotifyListener() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    if (!dir_.empty()) {
      ::unlink(address_.c_str());
      ::rmdir(dir_.c_str());
    }
  }
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  bool bound() const { return bound_; }

  // The next datagram, or nullopt when none arrives within `timeout_ms`.
  std::optional<std::string> next(int timeout_ms = 1000) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) != 1) {
      return std::nullopt;
    }
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      return std::nullopt;
    }
    return std::string(buf, static_cast<size_t>(n));
  }

  // True when nothing is queued: sd_notify() sends synchronously, so a
  // datagram that was sent is already there.
  bool empty() { return !next(0).has_value(); }

 private:
  int fd_ = -1;
  bool bound_ = false;
  std::string dir_;
  std::string address_;
};

std::string kindName(SocketKind kind) {
  return kind == SocketKind::kPath ? "path" : "abstract";
}

// ---------------------------------------------------------------------------
// Notifications.

struct NotifyCase {
  std::string name;
  std::function<int(SystemdNotifier&)> call;
  std::string expected;  // the exact datagram
};

const std::vector<NotifyCase>& notifyCases() {
  static const std::vector<NotifyCase> cases = {
      {"ready", [](SystemdNotifier& n) { return n.ready(); }, "READY=1"},
      {"stopping", [](SystemdNotifier& n) { return n.stopping(); }, "STOPPING=1"},
      {"watchdog", [](SystemdNotifier& n) { return n.watchdog(); }, "WATCHDOG=1"},
      {"status plain",
       [](SystemdNotifier& n) { return n.status("3 open connections, 10 accepted"); },
       "STATUS=3 open connections, 10 accepted"},
      {"status empty",
       [](SystemdNotifier& n) {
         n.status("x");
         return n.status("");
       },
       "STATUS="},
      {"status newline cannot inject READY=1",
       [](SystemdNotifier& n) { return n.status("draining\nREADY=1"); }, "STATUS=draining READY=1"},
      {"status CR, tab, DEL and NUL become spaces",
       [](SystemdNotifier& n) {
         return n.status(
             std::string("a\rb\tc\x7f"
                         "d\0e",
                         9));
       },
       "STATUS=a b c d e"},
      {"status keeps UTF-8", [](SystemdNotifier& n) { return n.status("naïve ✓ µs"); },
       "STATUS=naïve ✓ µs"},
      {"status keeps '=' and ';'", [](SystemdNotifier& n) { return n.status("a=b; c"); },
       "STATUS=a=b; c"},
      {"status from connectionStatus",
       [](SystemdNotifier& n) { return n.status(SystemdNotifier::connectionStatus(2, 7, 3)); },
       "STATUS=2 open connections, 7 accepted, config generation 3"},
  };
  return cases;
}

class NotifyTest : public ::testing::TestWithParam<SocketKind> {
 protected:
  ScopedSystemdEnv env_;
};

TEST_P(NotifyTest, SendsExactDatagrams) {
  for (const NotifyCase& c : notifyCases()) {
    SCOPED_TRACE(c.name);
    NotifyListener listener(GetParam());
    ASSERT_TRUE(listener.bound());
    SystemdNotifier notifier;
    EXPECT_TRUE(SystemdNotifier::enabled());
    EXPECT_GT(c.call(notifier), 0);
    // "status empty" sends "x" first: skip to the last datagram.
    std::optional<std::string> got = listener.next();
    for (std::optional<std::string> more = listener.next(0); more; more = listener.next(0)) {
      got = more;
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, c.expected);
  }
}

TEST_P(NotifyTest, ReloadingCarriesMonotonicTimestamp) {
  NotifyListener listener(GetParam());
  ASSERT_TRUE(listener.bound());
  SystemdNotifier notifier;
  uint64_t before = monotonicUsecNow();
  EXPECT_GT(notifier.reloading(), 0);
  uint64_t after = monotonicUsecNow();
  std::optional<std::string> got = listener.next();
  ASSERT_TRUE(got.has_value());
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(got->substr(0, prefix.size()), prefix) << *got;
  std::string digits = got->substr(prefix.size());
  ASSERT_FALSE(digits.empty());
  EXPECT_EQ(digits.find_first_not_of("0123456789"), std::string::npos) << digits;
  uint64_t usec = std::stoull(digits);
  EXPECT_LE(before, usec);
  EXPECT_LE(usec, after);
  EXPECT_TRUE(listener.empty());
}

TEST_P(NotifyTest, ReloadSequenceArrivesInOrder) {
  NotifyListener listener(GetParam());
  ASSERT_TRUE(listener.bound());
  SystemdNotifier notifier;
  EXPECT_GT(notifier.ready(), 0);
  EXPECT_GT(notifier.reloading(), 0);
  EXPECT_GT(notifier.ready(), 0);
  EXPECT_GT(notifier.stopping(), 0);
  std::vector<std::string> prefixes = {"READY=1", "RELOADING=1\nMONOTONIC_USEC=", "READY=1",
                                       "STOPPING=1"};
  for (const std::string& prefix : prefixes) {
    std::optional<std::string> got = listener.next();
    ASSERT_TRUE(got.has_value()) << prefix;
    EXPECT_EQ(got->substr(0, prefix.size()), prefix);
  }
  EXPECT_TRUE(listener.empty());
}

// status() sends only when the text changes, so a timer may call it freely.
TEST_P(NotifyTest, StatusIsSentOnlyWhenItChanges) {
  struct Step {
    std::string text;
    std::optional<std::string> sent;  // nullopt: nothing sent, status() returns 0
  };
  const std::vector<Step> steps = {
      {"a", "STATUS=a"}, {"a", std::nullopt},  {"b", "STATUS=b"},
      {"a", "STATUS=a"}, {"a\n", "STATUS=a "}, {"a ", std::nullopt},
      {"", "STATUS="},   {"", std::nullopt},   {"0 open connections", "STATUS=0 open connections"},
  };
  NotifyListener listener(GetParam());
  ASSERT_TRUE(listener.bound());
  SystemdNotifier notifier;
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i) + ": \"" + steps[i].text + "\"");
    int rc = notifier.status(steps[i].text);
    if (steps[i].sent) {
      EXPECT_GT(rc, 0);
      EXPECT_EQ(listener.next(), steps[i].sent);
    } else {
      EXPECT_EQ(rc, 0);
    }
    EXPECT_TRUE(listener.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(SocketKinds, NotifyTest,
                         ::testing::Values(SocketKind::kPath, SocketKind::kAbstract),
                         [](const ::testing::TestParamInfo<SocketKind>& info) {
                           return kindName(info.param);
                         });

TEST(SystemdNotifierTest, EverythingIsANoOpWithoutNotifySocket) {
  ScopedSystemdEnv env;
  for (const char* value : {static_cast<const char*>(nullptr), ""}) {
    SCOPED_TRACE(value == nullptr ? "unset" : "empty");
    if (value != nullptr) {
      setenv("NOTIFY_SOCKET", value, 1);
    }
    SystemdNotifier notifier;
    EXPECT_FALSE(SystemdNotifier::enabled());
    EXPECT_EQ(notifier.ready(), 0);
    EXPECT_EQ(notifier.reloading(), 0);
    EXPECT_EQ(notifier.stopping(), 0);
    EXPECT_EQ(notifier.watchdog(), 0);
    EXPECT_EQ(notifier.status("x"), 0);
    EXPECT_EQ(notifier.status("x"), 0);
  }
}

TEST(SystemdNotifierTest, UnusableNotifySocketFailsWithoutCrashing) {
  struct Case {
    std::string value;
    int expected_errno;
  };
  const std::vector<Case> cases = {
      {"relative/socket", EINVAL},
      {"/nonexistent-switchyard-dir/notify", ENOENT},
      {"@", EINVAL},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    ScopedSystemdEnv env;
    setenv("NOTIFY_SOCKET", c.value.c_str(), 1);
    SystemdNotifier notifier;
    EXPECT_TRUE(SystemdNotifier::enabled());
    EXPECT_EQ(notifier.ready(), -c.expected_errno);
    EXPECT_EQ(notifier.watchdog(), -c.expected_errno);
    // A status that failed is not remembered: the same text is tried again.
    EXPECT_EQ(notifier.status("x"), -c.expected_errno);
    EXPECT_EQ(notifier.status("x"), -c.expected_errno);
  }
}

TEST(SystemdNotifierTest, WatchdogInterval) {
  struct Case {
    std::string name;
    std::optional<std::string> usec;
    std::optional<std::string> pid;  // "self" is replaced by our pid
    uint64_t timeout;
    uint64_t interval;
  };
  const std::string self = std::to_string(getpid());
  const std::string other = std::to_string(getpid() == 1 ? 2 : 1);
  const std::vector<Case> cases = {
      {"unset", std::nullopt, std::nullopt, 0, 0},
      {"30 s for us", "30000000", "self", 30000000, 15000000},
      {"no WATCHDOG_PID means us", "30000000", std::nullopt, 30000000, 15000000},
      {"odd value rounds down", "3", "self", 3, 1},
      {"for another process", "30000000", "other", 0, 0},
      {"zero", "0", "self", 0, 0},
      {"not a number", "thirty", "self", 0, 0},
      {"negative", "-5", "self", 0, 0},
      {"bad pid", "30000000", "abc", 0, 0},
      {"only WATCHDOG_PID", std::nullopt, "self", 0, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ScopedSystemdEnv env;
    if (c.usec) {
      setenv("WATCHDOG_USEC", c.usec->c_str(), 1);
    }
    if (c.pid) {
      std::string pid = *c.pid == "self" ? self : *c.pid == "other" ? other : *c.pid;
      setenv("WATCHDOG_PID", pid.c_str(), 1);
    }
    EXPECT_EQ(SystemdNotifier::watchdogTimeoutUsec(), c.timeout);
    EXPECT_EQ(SystemdNotifier::watchdogIntervalUsec(), c.interval);
    // Asking must not consume the variables: the answer stays the same.
    EXPECT_EQ(SystemdNotifier::watchdogTimeoutUsec(), c.timeout);
  }
}

TEST(SystemdNotifierTest, ConnectionStatusText) {
  struct Case {
    size_t open;
    uint64_t accepted;
    uint64_t generation;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {0, 0, 1, "0 open connections, 0 accepted, config generation 1"},
      {1, 1, 1, "1 open connection, 1 accepted, config generation 1"},
      {2, 3456, 12, "2 open connections, 3456 accepted, config generation 12"},
      {10000, 18446744073709551615ULL, 0,
       "10000 open connections, 18446744073709551615 accepted, config generation 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    EXPECT_EQ(SystemdNotifier::connectionStatus(c.open, c.accepted, c.generation), c.expected);
  }
}

// ---------------------------------------------------------------------------
// Socket activation. Each case runs in a forked child: it needs descriptors
// at 3, 4… and a LISTEN_PID equal to its own pid, and must not disturb the
// test process's own descriptors.

enum class Fd { kTcp4, kTcp6, kTcp4NotListening, kUdp4, kUnixStream, kDevNull };

int makeFd(Fd kind) {
  if (kind == Fd::kDevNull) {
    return ::open("/dev/null", O_RDONLY);
  }
  if (kind == Fd::kUnixStream) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    // Autobind: an abstract address chosen by the kernel.
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t)) != 0 ||
        ::listen(fd, 4) != 0) {
      return -1;
    }
    return fd;
  }
  bool v6 = kind == Fd::kTcp6;
  int type = kind == Fd::kUdp4 ? SOCK_DGRAM : SOCK_STREAM;
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, type, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return -1;
  }
  if ((kind == Fd::kTcp4 || kind == Fd::kTcp6) && ::listen(fd, 4) != 0) {
    return -1;
  }
  return fd;
}

struct ActivationCase {
  std::string name;
  std::vector<Fd> fds;                    // placed at 3, 4, …
  std::optional<std::string> listen_pid;  // "self", "parent" or a literal
  std::optional<std::string> listen_fds;  // "count" or a literal
  std::string expected;
};

// Runs in the child: sets up the descriptors and environment, calls
// socketActivationFds() and describes what it saw, e.g.
// "fds=3,4 ready=yes rejected=1 closed=5 env=clean".
std::string runActivationInChild(const ActivationCase& c, pid_t parent) {
  std::vector<int> made;
  for (Fd kind : c.fds) {
    int fd = makeFd(kind);
    if (fd < 0) {
      return "setup failed: " + std::string(std::strerror(errno));
    }
    // Park it high so that the dup2() below cannot clobber a later one.
    int high = fcntl(fd, F_DUPFD, 300);
    ::close(fd);
    made.push_back(high);
  }
  for (size_t i = 0; i < made.size(); ++i) {
    ::dup2(made[i], 3 + static_cast<int>(i));
    ::close(made[i]);
  }
  // Nothing of ours right after the last one: LISTEN_FDS past the end must
  // find a closed descriptor.
  for (int fd = 3 + static_cast<int>(made.size()); fd < 3 + static_cast<int>(made.size()) + 4;
       ++fd) {
    ::close(fd);
  }
  if (c.listen_pid) {
    std::string pid = *c.listen_pid == "self"     ? std::to_string(getpid())
                      : *c.listen_pid == "parent" ? std::to_string(parent)
                                                  : *c.listen_pid;
    setenv("LISTEN_PID", pid.c_str(), 1);
  }
  if (c.listen_fds) {
    std::string n = *c.listen_fds == "count" ? std::to_string(made.size()) : *c.listen_fds;
    setenv("LISTEN_FDS", n.c_str(), 1);
  }
  setenv("LISTEN_FDNAMES", "proxy", 1);

  std::vector<std::string> rejected;
  std::vector<int> fds = socketActivationFds(&rejected);

  std::string out = "fds=";
  bool ready = true;
  for (size_t i = 0; i < fds.size(); ++i) {
    out += (i ? "," : "") + std::to_string(fds[i]);
    int fl = fcntl(fds[i], F_GETFL);
    int fdfl = fcntl(fds[i], F_GETFD);
    // A listening, non-blocking socket with nobody waiting says EAGAIN.
    int accepted = ::accept(fds[i], nullptr, nullptr);
    ready = ready && fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC) &&
            accepted < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  if (!fds.empty()) {
    out += ready ? " ready=yes" : " ready=no";
  }
  out += " rejected=" + std::to_string(rejected.size());
  std::string closed;
  for (int fd = 3; fd < 3 + static_cast<int>(made.size()); ++fd) {
    bool returned = false;
    for (int r : fds) {
      returned = returned || r == fd;
    }
    if (!returned && fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      closed += (closed.empty() ? "" : ",") + std::to_string(fd);
    }
  }
  if (!closed.empty()) {
    out += " closed=" + closed;
  }
  bool clean = std::getenv("LISTEN_FDS") == nullptr && std::getenv("LISTEN_PID") == nullptr &&
               std::getenv("LISTEN_FDNAMES") == nullptr;
  out += clean ? " env=clean" : " env=left";
  return out;
}

std::string runActivation(const ActivationCase& c) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) {
    return "pipe failed";
  }
  pid_t parent = getpid();
  pid_t child = fork();
  if (child == 0) {
    ::close(pipefd[0]);
    int out = fcntl(pipefd[1], F_DUPFD, 400);
    ::close(pipefd[1]);
    std::string result = runActivationInChild(c, parent);
    ssize_t written = ::write(out, result.data(), result.size());
    _exit(written == static_cast<ssize_t>(result.size()) ? 0 : 1);
  }
  ::close(pipefd[1]);
  std::string result;
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof(buf))) > 0) {
    result.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    result += " (child failed)";
  }
  return result;
}

bool ipv6Available() {
  int fd = makeFd(Fd::kTcp6);
  if (fd < 0) {
    return false;
  }
  ::close(fd);
  return true;
}

TEST(SocketActivationTest, AdoptsOnlyListeningTcpSockets) {
  const std::vector<ActivationCase> cases = {
      {"not activated", {Fd::kTcp4}, std::nullopt, std::nullopt, "fds= rejected=0 env=clean"},
      {"one IPv4 listener", {Fd::kTcp4}, "self", "count", "fds=3 ready=yes rejected=0 env=clean"},
      {"IPv4 and IPv6 listeners",
       {Fd::kTcp4, Fd::kTcp6},
       "self",
       "count",
       "fds=3,4 ready=yes rejected=0 env=clean"},
      {"three listeners",
       {Fd::kTcp6, Fd::kTcp4, Fd::kTcp4},
       "self",
       "count",
       "fds=3,4,5 ready=yes rejected=0 env=clean"},
      {"for another process (our parent)",
       {Fd::kTcp4},
       "parent",
       "count",
       "fds= rejected=0 env=clean"},
      {"LISTEN_FDS without LISTEN_PID",
       {Fd::kTcp4},
       std::nullopt,
       "count",
       "fds= rejected=0 env=clean"},
      {"LISTEN_PID without LISTEN_FDS",
       {Fd::kTcp4},
       "self",
       std::nullopt,
       "fds= rejected=0 env=clean"},
      {"UDP socket is refused and closed",
       {Fd::kTcp4, Fd::kUdp4},
       "self",
       "count",
       "fds=3 ready=yes rejected=1 closed=4 env=clean"},
      {"bound but not listening",
       {Fd::kTcp4NotListening},
       "self",
       "count",
       "fds= rejected=1 closed=3 env=clean"},
      {"AF_UNIX stream listener is refused",
       {Fd::kUnixStream, Fd::kTcp4},
       "self",
       "count",
       "fds=4 ready=yes rejected=1 closed=3 env=clean"},
      {"a file is refused", {Fd::kDevNull}, "self", "count", "fds= rejected=1 closed=3 env=clean"},
      {"LISTEN_FDS past the open descriptors",
       {Fd::kTcp4},
       "self",
       "2",
       "fds= rejected=1 env=clean"},
      {"LISTEN_FDS not a number", {Fd::kTcp4}, "self", "one", "fds= rejected=1 env=clean"},
      {"LISTEN_FDS zero", {Fd::kTcp4}, "self", "0", "fds= rejected=1 env=clean"},
      {"LISTEN_FDS negative", {Fd::kTcp4}, "self", "-1", "fds= rejected=1 env=clean"},
      {"LISTEN_PID not a number", {Fd::kTcp4}, "abc", "count", "fds= rejected=1 env=clean"},
  };
  bool v6 = ipv6Available();
  for (const ActivationCase& c : cases) {
    SCOPED_TRACE(c.name);
    bool needs_v6 = false;
    for (Fd kind : c.fds) {
      needs_v6 = needs_v6 || kind == Fd::kTcp6;
    }
    if (needs_v6 && !v6) {
      continue;
    }
    ScopedSystemdEnv env;
    EXPECT_EQ(runActivation(c), c.expected);
  }
}

TEST(SocketActivationTest, NothingToAdoptInAPlainProcess) {
  ScopedSystemdEnv env;
  std::vector<std::string> rejected;
  EXPECT_TRUE(socketActivationFds(&rejected).empty());
  EXPECT_TRUE(rejected.empty());
}

}  // namespace
}  // namespace switchyard
