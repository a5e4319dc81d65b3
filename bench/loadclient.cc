// A small load client for bench/proxy.sh and bench/compare.sh: the
// measurements wrk and curl cannot make. Plain C++ and Linux syscalls, no
// libraries, so the scripts can build it with the system compiler alone:
//
//   clang++ -std=c++20 -O2 -o loadclient bench/loadclient.cc
//
// Modes (every one prints key=value pairs on one line of stdout):
//
//   loadclient freeport
//       a TCP port on 127.0.0.1 that was free a moment ago.
//   loadclient tunnels --target H:P [--proxy H:P] [--conc 50] [--seconds 5] [--path /1k]
//       new connections per second. Each of `conc` slots loops: connect,
//       (through a proxy: CONNECT target, read the 200), send one GET with
//       `Connection: close`, read the answer to EOF, close.
//   loadclient latency --target H:P [--proxy H:P] [--tunnel] [--count 10000] [--path /1k]
//                      [--gap-us N]   (pause N µs between requests: paced traffic)
//       sequential GETs on one keep-alive connection, direct, through the
//       proxy in absolute form, or (--tunnel) inside one CONNECT tunnel;
//       prints p50/p99/mean in microseconds.
//   loadclient idle --target H:P --proxy H:P --pid PID [--n 9750] [--hold 2]
//       opens n CONNECT tunnels that then stay idle, and reads the proxy's
//       VmRSS (/proc/PID/status) before and after.
//   loadclient relay --target H:P [--block 65536]
//       a minimal CONNECT relay, the floor any user-space proxy pays on this
//       machine; prints port=N once listening, then serves until killed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "loadclient: %s\n", message.c_str());
  std::exit(2);
}

struct Endpoint {
  std::string text;  // "host:port" as given, used in CONNECT and Host
  sockaddr_in addr{};
};

Endpoint parseEndpoint(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    die("expected HOST:PORT, got " + text);
  }
  Endpoint e;
  e.text = text;
  e.addr.sin_family = AF_INET;
  e.addr.sin_port = htons(static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1)));
  std::string host = text.substr(0, colon);
  if (host == "localhost") {
    host = "127.0.0.1";
  }
  if (inet_pton(AF_INET, host.c_str(), &e.addr.sin_addr) != 1) {
    die("not an IPv4 address: " + host);
  }
  return e;
}

struct Options {
  std::string mode;
  std::map<std::string, std::string> values;
  bool has(const std::string& key) const { return values.count(key) != 0; }
  std::string str(const std::string& key, const std::string& fallback) const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
  long num(const std::string& key, long fallback) const {
    auto it = values.find(key);
    return it == values.end() ? fallback : std::atol(it->second.c_str());
  }
};

Options parseOptions(int argc, char** argv) {
  if (argc < 2) {
    die("usage: loadclient freeport|tunnels|latency|idle [--key value ...]");
  }
  Options o;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      die("unexpected argument " + arg);
    }
    arg = arg.substr(2);
    if (arg == "tunnel") {
      o.values[arg] = "1";
    } else if (i + 1 < argc) {
      o.values[arg] = argv[++i];
    } else {
      die("--" + arg + " needs a value");
    }
  }
  return o;
}

void raiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string connectHead(const Endpoint& target) {
  return "CONNECT " + target.text + " HTTP/1.1\r\nHost: " + target.text + "\r\n\r\n";
}

// Through a proxy without a tunnel the request line carries the absolute
// URL: that is the proxy's plain-HTTP forwarding path.
std::string getHead(const Endpoint& target, const std::string& path, bool absolute, bool close) {
  std::string uri = absolute ? "http://" + target.text + path : path;
  return "GET " + uri + " HTTP/1.1\r\nHost: " + target.text + "\r\n" +
         (close ? "Connection: close\r\n" : "") + "\r\n";
}

bool statusIs(const std::string& head, int status) {
  // "HTTP/1.x NNN"
  return head.size() >= 12 && head.compare(0, 7, "HTTP/1.") == 0 &&
         std::atoi(head.c_str() + 9) == status;
}

// ---------------------------------------------------------------------------
// freeport

int runFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    die("bind failed");
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("%d\n", ntohs(a.sin_port));
  close(fd);
  return 0;
}

// ---------------------------------------------------------------------------
// tunnels: an epoll state machine with `conc` slots, so one client thread on
// one core can open tens of thousands of connections per second.

struct Slot {
  enum class State { kConnecting, kAwait200, kAwaitAnswer };
  int fd = -1;
  State state = State::kConnecting;
  std::string in;
  bool checked_status = false;
};

class TunnelLoad {
 public:
  TunnelLoad(const Options& o)
      : target_(parseEndpoint(o.str("target", ""))),
        via_proxy_(o.has("proxy")),
        path_(o.str("path", "/1k")),
        conc_(static_cast<int>(o.num("conc", 50))),
        seconds_(static_cast<double>(o.num("ms", o.num("seconds", 5) * 1000)) / 1000.0) {
    if (via_proxy_) {
      proxy_ = parseEndpoint(o.str("proxy", ""));
    }
    connect_ = connectHead(target_);
    get_ = getHead(target_, path_, false, true);
    epfd_ = epoll_create1(0);
    slots_.resize(static_cast<size_t>(conc_));
  }

  int run() {
    Clock::time_point start = Clock::now();
    deadline_ = start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(seconds_));
    for (Slot& s : slots_) {
      open(s);
    }
    std::vector<epoll_event> events(static_cast<size_t>(conc_));
    int active = conc_;
    while (active > 0) {
      int n = epoll_wait(epfd_, events.data(), conc_, 1000);
      for (int i = 0; i < n; ++i) {
        Slot& s = slots_[events[i].data.u32];
        if (!step(s, events[i].events)) {
          closeSlot(s);
          if (Clock::now() < deadline_) {
            open(s);
          } else {
            --active;
          }
        }
      }
      if (n == 0 && Clock::now() > deadline_ + std::chrono::seconds(5)) {
        break;  // stuck connections: report what completed
      }
    }
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("done=%ld errors=%ld seconds=%.3f per_second=%.1f\n", done_, errors_, elapsed,
                static_cast<double>(done_) / elapsed);
    return done_ > 0 ? 0 : 1;
  }

 private:
  void open(Slot& s) {
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s.fd < 0) {
      die(std::string("socket: ") + std::strerror(errno));
    }
    setNoDelay(s.fd);
    s.in.clear();
    s.checked_status = false;
    s.state = Slot::State::kConnecting;
    const sockaddr_in& to = via_proxy_ ? proxy_.addr : target_.addr;
    int rc = connect(s.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    if (rc != 0 && errno != EINPROGRESS) {
      die(std::string("connect: ") + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(&s - slots_.data());
    epoll_ctl(epfd_, EPOLL_CTL_ADD, s.fd, &ev);
  }

  void closeSlot(Slot& s) {
    close(s.fd);  // also leaves the epoll set
    s.fd = -1;
  }

  bool sendAll(Slot& s, const std::string& bytes) {
    // The requests are far smaller than a socket buffer.
    return send(s.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  // Advances one slot; false when its connection is over (done or failed).
  bool step(Slot& s, uint32_t events) {
    if (s.state == Slot::State::kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
        ++errors_;
        return false;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(&s - slots_.data());
      epoll_ctl(epfd_, EPOLL_CTL_MOD, s.fd, &ev);
      if (via_proxy_) {
        s.state = Slot::State::kAwait200;
        return sendAll(s, connect_) || fail();
      }
      s.state = Slot::State::kAwaitAnswer;
      return sendAll(s, get_) || fail();
    }
    char buf[16384];
    for (;;) {
      ssize_t n = recv(s.fd, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EAGAIN) {
          return true;
        }
        return fail();
      }
      if (n == 0) {
        // The origin closes after its answer (Connection: close).
        if (s.state == Slot::State::kAwaitAnswer && s.checked_status) {
          ++done_;
          return false;
        }
        return fail();
      }
      if (s.state == Slot::State::kAwait200) {
        s.in.append(buf, static_cast<size_t>(n));
        size_t end = s.in.find("\r\n\r\n");
        if (end == std::string::npos) {
          continue;
        }
        if (!statusIs(s.in, 200) || end + 4 != s.in.size()) {
          return fail();
        }
        s.in.clear();
        s.state = Slot::State::kAwaitAnswer;
        if (!sendAll(s, get_)) {
          return fail();
        }
        continue;
      }
      if (!s.checked_status) {
        s.in.append(buf, static_cast<size_t>(std::min<ssize_t>(n, 16)));
        if (s.in.size() >= 12) {
          if (!statusIs(s.in, 200)) {
            return fail();
          }
          s.checked_status = true;
        }
      }
    }
  }

  bool fail() {
    ++errors_;
    return false;
  }

  Endpoint target_;
  Endpoint proxy_;
  bool via_proxy_;
  std::string path_;
  int conc_;
  double seconds_;
  std::string connect_;
  std::string get_;
  int epfd_ = -1;
  std::vector<Slot> slots_;
  Clock::time_point deadline_;
  long done_ = 0;
  long errors_ = 0;
};

// ---------------------------------------------------------------------------
// latency: one blocking keep-alive connection, one request at a time.

class Conn {
 public:
  explicit Conn(const sockaddr_in& to) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    setNoDelay(fd_);
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
      die(std::string("connect: ") + std::strerror(errno));
    }
  }
  ~Conn() { close(fd_); }

  void sendAll(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        die("send failed");
      }
      off += static_cast<size_t>(n);
    }
  }

  // Reads one response head (up to the blank line); returns it and leaves
  // any bytes after it in buf_.
  std::string readHead() {
    for (;;) {
      size_t end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = buf_.substr(0, end + 4);
        buf_.erase(0, end + 4);
        return head;
      }
      fill();
    }
  }

  void readBody(size_t length) {
    while (buf_.size() < length) {
      fill();
    }
    buf_.erase(0, length);
  }

 private:
  void fill() {
    char chunk[16384];
    ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      die("connection closed while reading an answer");
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }

  int fd_ = -1;
  std::string buf_;
};

size_t contentLength(const std::string& head) {
  std::string lower = head;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t at = lower.find("\r\ncontent-length:");
  if (at == std::string::npos) {
    die("answer without Content-Length");
  }
  return static_cast<size_t>(std::strtoul(lower.c_str() + at + 17, nullptr, 10));
}

int runLatency(const Options& o) {
  Endpoint target = parseEndpoint(o.str("target", ""));
  bool via_proxy = o.has("proxy");
  bool tunnel = o.has("tunnel");
  if (tunnel && !via_proxy) {
    die("--tunnel needs --proxy");
  }
  Endpoint first = via_proxy ? parseEndpoint(o.str("proxy", "")) : target;
  long count = o.num("count", 10000);
  long warmup = o.num("warmup", std::max(100L, count / 10));
  Conn conn(first.addr);
  if (tunnel) {
    conn.sendAll(connectHead(target));
    if (!statusIs(conn.readHead(), 200)) {
      die("CONNECT refused");
    }
  }
  std::string request = getHead(target, o.str("path", "/1k"), via_proxy && !tunnel, false);
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  std::chrono::microseconds gap(o.num("gap-us", 0));
  Clock::time_point wall0 = Clock::now();
  for (long i = 0; i < warmup + count; ++i) {
    if (gap.count() > 0) {
      std::this_thread::sleep_for(gap);
    }
    if (i == warmup) {
      wall0 = Clock::now();
    }
    Clock::time_point t0 = Clock::now();
    conn.sendAll(request);
    std::string head = conn.readHead();
    if (!statusIs(head, 200)) {
      die("answer not 200: " + head.substr(0, head.find('\r')));
    }
    conn.readBody(contentLength(head));
    if (i >= warmup) {
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  double mean = 0;
  for (double v : us) {
    mean += v;
  }
  mean /= static_cast<double>(us.size());
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) {
    return us[static_cast<size_t>(p * static_cast<double>(us.size() - 1))];
  };
  double wall = std::chrono::duration<double>(Clock::now() - wall0).count();
  std::printf("count=%zu p50_us=%.1f p99_us=%.1f mean_us=%.1f seconds=%.3f\n", us.size(), pct(0.50),
              pct(0.99), mean, wall);
  return 0;
}

// ---------------------------------------------------------------------------
// idle: n tunnels opened with at most `batch` handshakes in flight, then
// left idle while the proxy's resident set is read.

long vmRssKiB(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::atol(line.c_str() + 6);
    }
  }
  die("no VmRSS for pid " + std::to_string(pid));
}

long openFiles(long pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  std::string cmd = "ls " + dir + " 2>/dev/null | wc -l";
  FILE* p = popen(cmd.c_str(), "r");
  long n = -1;
  if (p != nullptr) {
    if (std::fscanf(p, "%ld", &n) != 1) {
      n = -1;
    }
    pclose(p);
  }
  return n;
}

int runIdle(const Options& o) {
  raiseFileLimit();
  Endpoint target = parseEndpoint(o.str("target", ""));
  Endpoint proxy = parseEndpoint(o.str("proxy", ""));
  long pid = o.num("pid", 0);
  long n = o.num("n", 9750);
  long batch = o.num("batch", 100);
  long hold = o.num("hold", 2);
  if (pid <= 0) {
    die("idle needs --pid");
  }
  std::string head = connectHead(target);
  long rss_before = vmRssKiB(pid);
  long fds_before = openFiles(pid);

  struct Pending {
    int fd;
    bool sent = false;
    std::string in;
  };
  int epfd = epoll_create1(0);
  std::vector<Pending> pending;  // indexed by position; fd -1 once settled
  std::vector<int> open_fds;
  long started = 0;
  long inflight = 0;
  long ok = 0;
  long failed = 0;
  std::vector<epoll_event> events(static_cast<size_t>(batch));
  pending.reserve(static_cast<size_t>(n));
  Clock::time_point give_up = Clock::now() + std::chrono::seconds(120);
  while ((started < n || inflight > 0) && Clock::now() < give_up) {
    while (started < n && inflight < batch) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) {
        die(std::string("socket: ") + std::strerror(errno) + " after " + std::to_string(started));
      }
      int rc = connect(fd, reinterpret_cast<const sockaddr*>(&proxy.addr), sizeof proxy.addr);
      if (rc != 0 && errno != EINPROGRESS) {
        die(std::string("connect: ") + std::strerror(errno));
      }
      pending.push_back(Pending{fd, false, std::string()});
      epoll_event ev{};
      ev.events = EPOLLOUT | EPOLLIN;
      ev.data.u64 = pending.size() - 1;
      epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
      ++started;
      ++inflight;
    }
    int k = epoll_wait(epfd, events.data(), static_cast<int>(batch), 1000);
    for (int i = 0; i < k; ++i) {
      Pending& p = pending[events[i].data.u64];
      if (p.fd < 0) {
        continue;
      }
      bool bad = (events[i].events & (EPOLLERR | EPOLLHUP)) != 0;
      if (!bad && !p.sent) {
        p.sent =
            send(p.fd, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size());
        bad = !p.sent;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = events[i].data.u64;
        epoll_ctl(epfd, EPOLL_CTL_MOD, p.fd, &ev);
      }
      if (!bad && (events[i].events & EPOLLIN) != 0) {
        char buf[512];
        ssize_t r = recv(p.fd, buf, sizeof buf, 0);
        if (r <= 0) {
          bad = r == 0 || errno != EAGAIN;
        } else {
          p.in.append(buf, static_cast<size_t>(r));
          if (p.in.find("\r\n\r\n") != std::string::npos) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, p.fd, nullptr);
            if (statusIs(p.in, 200)) {
              ++ok;
              open_fds.push_back(p.fd);
            } else {
              ++failed;
              close(p.fd);
            }
            p.fd = -1;
            p.in = std::string();
            --inflight;
            continue;
          }
        }
      }
      if (bad) {
        ++failed;
        close(p.fd);
        p.fd = -1;
        --inflight;
      }
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(hold));
  long rss_after = vmRssKiB(pid);
  long fds_after = openFiles(pid);
  for (int fd : open_fds) {
    close(fd);
  }
  double per =
      ok > 0 ? static_cast<double>(rss_after - rss_before) * 1024.0 / static_cast<double>(ok) : 0.0;
  std::printf(
      "n=%ld ok=%ld failed=%ld rss_before_kib=%ld rss_after_kib=%ld proxy_fds_before=%ld "
      "proxy_fds_after=%ld per_tunnel_bytes=%.0f\n",
      n, ok, failed, rss_before, rss_after, fds_before, fds_after, per);
  return ok == n ? 0 : 1;
}

// ---------------------------------------------------------------------------
// relay: the floor. A minimal single-threaded CONNECT relay (epoll, one
// 64 KiB read then one write, no logging, no rules) that shows what any
// user-space proxy on this machine pays for its syscalls and cross-CPU
// wake-ups. Not a proxy: it answers 200 to every CONNECT.

class Relay {
 public:
  explicit Relay(const Options& o)
      : target_(parseEndpoint(o.str("target", ""))),
        buf_(static_cast<size_t>(o.num("block", 65536))) {}

  int run() {
    raiseFileLimit();
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(listen_fd_, 4096) != 0) {
      die("relay: cannot listen");
    }
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    std::printf("port=%d\n", ntohs(a.sin_port));
    std::fflush(stdout);
    epfd_ = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenTag;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    std::vector<epoll_event> events(256);
    for (;;) {
      int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), -1);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kListenTag) {
          acceptAll();
        } else {
          onEvent(static_cast<int>(events[i].data.u64), events[i].events);
        }
      }
    }
  }

 private:
  static constexpr uint64_t kListenTag = ~0ull;

  // One socket. Index = fd; peer = the other socket's fd.
  struct End {
    int peer = -1;
    bool head_done = false;  // client: CONNECT head read; upstream: connected
    bool is_client = false;
    bool eof_in = false;    // read EOF from this socket
    bool shut_out = false;  // shut down writing to this socket
    std::string in;         // client: the CONNECT head so far
    std::string out;        // bytes waiting to be written to this socket
  };

  End& end(int fd) {
    if (static_cast<size_t>(fd) >= ends_.size()) {
      ends_.resize(static_cast<size_t>(fd) + 1024);
    }
    return ends_[static_cast<size_t>(fd)];
  }

  void watch(int fd, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<uint64_t>(fd);
    epoll_ctl(epfd_, op, fd, &ev);
  }

  void acceptAll() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK);
      if (fd < 0) {
        return;
      }
      setNoDelay(fd);
      end(fd) = End();
      end(fd).is_client = true;
      watch(fd, EPOLLIN, EPOLL_CTL_ADD);
    }
  }

  void closePair(int fd) {
    int peer = end(fd).peer;
    close(fd);
    end(fd) = End();
    if (peer >= 0) {
      close(peer);
      end(peer) = End();
    }
  }

  // What this socket should be watched for: input while its peer can take
  // more, output while bytes wait for it.
  void rewatch(int fd) {
    End& e = end(fd);
    uint32_t want = 0;
    if (!e.eof_in && (e.peer < 0 || end(e.peer).out.empty())) {
      want |= EPOLLIN;
    }
    if (!e.out.empty() || (!e.head_done && !e.is_client)) {
      want |= EPOLLOUT;
    }
    watch(fd, want, EPOLL_CTL_MOD);
  }

  void onEvent(int fd, uint32_t events) {
    End& e = end(fd);
    if (e.is_client && !e.head_done) {
      readHead(fd);
      return;
    }
    if (!e.is_client && !e.head_done) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        closePair(fd);
        return;
      }
      e.head_done = true;
      int client = e.peer;
      end(client).out = "HTTP/1.1 200 Connection established\r\n\r\n";
      flush(client);
      rewatch(fd);
      rewatch(client);
      return;
    }
    if ((events & EPOLLOUT) != 0 && !flush(fd)) {
      return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 && !e.eof_in) {
      pump(fd);
    }
  }

  void readHead(int fd) {
    End& e = end(fd);
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) {
        return;
      }
      closePair(fd);
      return;
    }
    e.in.append(buf, static_cast<size_t>(n));
    if (e.in.find("\r\n\r\n") == std::string::npos) {
      return;
    }
    e.head_done = true;
    e.in.clear();
    int up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setNoDelay(up);
    connect(up, reinterpret_cast<const sockaddr*>(&target_.addr), sizeof target_.addr);
    end(up) = End();
    end(up).peer = fd;
    end(fd).peer = up;
    watch(up, EPOLLOUT, EPOLL_CTL_ADD);
    watch(fd, 0, EPOLL_CTL_MOD);
  }

  // Writes what waits for `fd`; false when the pair was closed.
  bool flush(int fd) {
    End& e = end(fd);
    while (!e.out.empty()) {
      ssize_t n = send(fd, e.out.data(), e.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) {
          rewatch(fd);
          return true;
        }
        closePair(fd);
        return false;
      }
      e.out.erase(0, static_cast<size_t>(n));
    }
    int peer = e.peer;
    if (peer >= 0 && end(peer).eof_in && !e.shut_out) {
      shutdown(fd, SHUT_WR);
      e.shut_out = true;
    }
    if (e.shut_out && peer >= 0 && end(peer).shut_out) {
      closePair(fd);
      return false;
    }
    rewatch(fd);
    if (peer >= 0) {
      rewatch(peer);
    }
    return true;
  }

  // One read from `fd`, written straight on to its peer.
  void pump(int fd) {
    End& e = end(fd);
    int peer = e.peer;
    ssize_t n = recv(fd, buf_.data(), buf_.size(), 0);
    if (n < 0) {
      if (errno != EAGAIN) {
        closePair(fd);
      }
      return;
    }
    if (n == 0) {
      e.eof_in = true;
      flush(peer);
      return;
    }
    ssize_t w = send(peer, buf_.data(), static_cast<size_t>(n), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN) {
        closePair(fd);
        return;
      }
      w = 0;
    }
    if (w < n) {
      end(peer).out.assign(buf_.data() + w, static_cast<size_t>(n - w));
      rewatch(peer);
      rewatch(fd);
    }
  }

  Endpoint target_;
  int listen_fd_ = -1;
  int epfd_ = -1;
  std::vector<End> ends_;
  std::vector<char> buf_;  // one read block, 64 KiB unless --block says otherwise
};

}  // namespace

int main(int argc, char** argv) {
  Options o = parseOptions(argc, argv);
  if (o.mode == "freeport") {
    return runFreePort();
  }
  if (o.mode == "tunnels") {
    raiseFileLimit();
    return TunnelLoad(o).run();
  }
  if (o.mode == "latency") {
    return runLatency(o);
  }
  if (o.mode == "idle") {
    return runIdle(o);
  }
  if (o.mode == "relay") {
    return Relay(o).run();
  }
  die("unknown mode " + o.mode);
}
