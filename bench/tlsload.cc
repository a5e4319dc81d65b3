// A TLS load client for bench/intercept.sh: HTTPS straight to an origin, or
// through a proxy's CONNECT tunnel that the proxy intercepts. One thread,
// epoll, non-blocking OpenSSL; built by the script with the system compiler:
//
//   clang++ -std=c++20 -O2 -o tlsload bench/tlsload.cc -lssl -lcrypto
//
// Modes (each prints key=value pairs on one line of stdout):
//
//   tlsload handshakes --target H:P --name NAME --ca FILE [--proxy H:P]
//                      [--conc 50] [--seconds 3] [--path /1k]
//       new TLS connections per second. Each of `conc` slots loops: connect,
//       (through a proxy: CONNECT NAME:P, read the 200), a full TLS handshake
//       (SNI and certificate check against NAME and FILE, no session
//       resumption), one GET with `Connection: close`, read the answer,
//       close_notify, close.
//   tlsload requests --target H:P --name NAME --ca FILE [--proxy H:P]
//                    [--conns 50] [--seconds 3] [--path /1k]
//       keep-alive GETs per second: `conns` connections, each opened (and
//       tunnelled) once, then one GET in flight at a time for the whole run.
//
// Every answer must be a 200 whose body length matches its framing
// (Content-Length or chunked); anything else counts as an error.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "tlsload: %s\n", message.c_str());
  std::exit(2);
}

sockaddr_in parseAddress(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    die("expected IPv4:PORT, got " + text);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1)));
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    die("not an IPv4 address: " + text);
  }
  return a;
}

std::map<std::string, std::string> parseOptions(int argc, char** argv) {
  std::map<std::string, std::string> o;
  for (int i = 2; i < argc; i += 2) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) {
      die("expected --key value pairs, got " + key);
    }
    o[key.substr(2)] = argv[i + 1];
  }
  return o;
}

std::string lowered(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Length of the complete 200 answer at the start of `in`: 0 while more bytes
// are needed, -1 when it is not a 200 or its framing is broken.
long completeAnswer(const std::string& in) {
  size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return 0;
  }
  if (in.compare(0, 9, "HTTP/1.1 ") != 0 || in.compare(9, 3, "200") != 0) {
    return -1;
  }
  std::string head = lowered(in.substr(0, head_end + 2));
  size_t body = head_end + 4;
  size_t at = head.find("\r\ncontent-length:");
  if (at != std::string::npos) {
    size_t length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
    return in.size() >= body + length ? static_cast<long>(body + length) : 0;
  }
  if (head.find("\r\ntransfer-encoding: chunked") == std::string::npos) {
    return -1;  // close-delimited answers are not expected here
  }
  size_t pos = body;
  for (;;) {
    size_t line_end = in.find("\r\n", pos);
    if (line_end == std::string::npos) {
      return 0;
    }
    size_t size = std::strtoul(in.c_str() + pos, nullptr, 16);
    if (size == 0) {
      size_t end = in.find("\r\n\r\n", line_end);  // no trailers expected
      return end == line_end ? static_cast<long>(end + 4) : 0;
    }
    pos = line_end + 2 + size + 2;
    if (in.size() < pos) {
      return 0;
    }
  }
}

struct Slot {
  enum class State { kConnecting, kAwait200, kHandshake, kAnswer };
  int fd = -1;
  SSL* ssl = nullptr;
  State state = State::kConnecting;
  std::string in;
  uint32_t interest = 0;
};

class Load {
 public:
  Load(const std::map<std::string, std::string>& o, bool keep_alive)
      : keep_alive_(keep_alive), options_(o) {
    target_ = parseAddress(need("target"));
    name_ = need("name");
    std::string port = need("target").substr(need("target").rfind(':') + 1);
    via_proxy_ = o.count("proxy") != 0;
    if (via_proxy_) {
      proxy_ = parseAddress(o.at("proxy"));
    }
    std::string authority = name_ + ":" + port;
    connect_ = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    get_ = "GET " + value("path", "/1k") + " HTTP/1.1\r\nHost: " + authority + "\r\n" +
           (keep_alive_ ? "" : "Connection: close\r\n") + "\r\n";
    slots_.resize(std::stoul(value(keep_alive_ ? "conns" : "conc", "50")));
    seconds_ = std::stod(value("seconds", "3"));

    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(ctx_, need("ca").c_str(), nullptr) != 1) {
      die("cannot load " + need("ca"));
    }
    // Every handshake is a full one, as from a client that just started.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
    epfd_ = epoll_create1(0);
  }

  int run() {
    Clock::time_point start = Clock::now();
    deadline_ = start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(seconds_));
    for (Slot& s : slots_) {
      open(s);
    }
    std::vector<epoll_event> events(slots_.size());
    size_t active = slots_.size();
    while (active > 0) {
      int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 1000);
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
      if (Clock::now() > deadline_ + std::chrono::seconds(5)) {
        break;  // stuck connections: report what completed
      }
    }
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("done=%ld errors=%ld seconds=%.3f per_second=%.1f\n", done_, errors_, elapsed,
                static_cast<double>(done_) / elapsed);
    if (errors_ > 0) {
      std::fprintf(stderr, "tlsload: %ld errors; last: %s\n", errors_, last_error_.c_str());
    }
    return done_ > 0 ? 0 : 1;
  }

 private:
  std::string value(const std::string& key, const std::string& fallback) const {
    auto it = options_.find(key);
    return it == options_.end() ? fallback : it->second;
  }
  std::string need(const std::string& key) const {
    auto it = options_.find(key);
    if (it == options_.end()) {
      die("--" + key + " is required");
    }
    return it->second;
  }

  uint32_t index(const Slot& s) const { return static_cast<uint32_t>(&s - slots_.data()); }

  void watch(Slot& s, uint32_t events) {
    if (s.interest == events) {
      return;
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = index(s);
    epoll_ctl(epfd_, s.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s.fd, &ev);
    s.interest = events;
  }

  void open(Slot& s) {
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s.fd < 0) {
      die(std::string("socket: ") + std::strerror(errno));
    }
    int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s.in.clear();
    s.interest = 0;
    s.state = Slot::State::kConnecting;
    const sockaddr_in& to = via_proxy_ ? proxy_ : target_;
    if (connect(s.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 &&
        errno != EINPROGRESS) {
      die(std::string("connect: ") + std::strerror(errno));
    }
    watch(s, EPOLLOUT);
  }

  void closeSlot(Slot& s) {
    if (s.ssl != nullptr) {
      SSL_free(s.ssl);
      s.ssl = nullptr;
    }
    close(s.fd);  // also leaves the epoll set
    s.fd = -1;
  }

  bool fail(const std::string& why) {
    ++errors_;
    last_error_ = why;
    return false;
  }

  bool startTls(Slot& s) {
    s.ssl = SSL_new(ctx_);
    SSL_set_fd(s.ssl, s.fd);
    SSL_set_tlsext_host_name(s.ssl, name_.c_str());
    SSL_set1_host(s.ssl, name_.c_str());
    SSL_set_connect_state(s.ssl);
    s.state = Slot::State::kHandshake;
    return handshake(s);
  }

  // Waits for what OpenSSL wants after a non-blocking call returned `rc`;
  // false when the connection failed.
  bool wait(Slot& s, int rc, const char* what) {
    int err = SSL_get_error(s.ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
      watch(s, EPOLLIN);
      return true;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
      watch(s, EPOLLOUT);
      return true;
    }
    char buf[256] = "";
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    ERR_clear_error();
    return fail(std::string(what) + ": SSL error " + std::to_string(err) + " " + buf);
  }

  bool handshake(Slot& s) {
    int rc = SSL_do_handshake(s.ssl);
    if (rc != 1) {
      return wait(s, rc, "handshake");
    }
    s.state = Slot::State::kAnswer;
    return sendGet(s);
  }

  bool sendGet(Slot& s) {
    // The request is far smaller than a TLS record and a socket buffer.
    int rc = SSL_write(s.ssl, get_.data(), static_cast<int>(get_.size()));
    if (rc != static_cast<int>(get_.size())) {
      return fail("SSL_write of the request failed");
    }
    return readAnswer(s);
  }

  bool readAnswer(Slot& s) {
    char buf[16384];
    for (;;) {
      int rc = SSL_read(s.ssl, buf, sizeof buf);
      if (rc <= 0) {
        return wait(s, rc, "reading the answer");
      }
      s.in.append(buf, static_cast<size_t>(rc));
      long length = completeAnswer(s.in);
      if (length < 0) {
        return fail("not a 200: " + s.in.substr(0, s.in.find('\r')));
      }
      if (length == 0) {
        continue;
      }
      ++done_;
      s.in.erase(0, static_cast<size_t>(length));
      if (!keep_alive_) {
        SSL_shutdown(s.ssl);  // sends close_notify; the peer's is not awaited
        return false;
      }
      if (!s.in.empty()) {
        return fail("bytes after the answer");
      }
      if (Clock::now() >= deadline_) {
        return false;
      }
      return sendGet(s);
    }
  }

  // Advances one slot; false when its connection is over (done or failed).
  bool step(Slot& s, uint32_t events) {
    switch (s.state) {
      case Slot::State::kConnecting: {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (events & EPOLLERR) != 0) {
          return fail(std::string("connect: ") + std::strerror(err));
        }
        if (!via_proxy_) {
          return startTls(s);
        }
        if (send(s.fd, connect_.data(), connect_.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(connect_.size())) {
          return fail("sending CONNECT failed");
        }
        s.state = Slot::State::kAwait200;
        watch(s, EPOLLIN);
        return true;
      }
      case Slot::State::kAwait200: {
        char buf[4096];
        ssize_t n = recv(s.fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EAGAIN) {
          return true;
        }
        if (n <= 0) {
          return fail("proxy closed before answering CONNECT");
        }
        s.in.append(buf, static_cast<size_t>(n));
        size_t end = s.in.find("\r\n\r\n");
        if (end == std::string::npos) {
          return true;
        }
        // The proxy speaks only after our ClientHello, so nothing follows.
        if (s.in.compare(9, 3, "200") != 0 || end + 4 != s.in.size()) {
          return fail("CONNECT answer: " + s.in.substr(0, s.in.find('\r')));
        }
        s.in.clear();
        return startTls(s);
      }
      case Slot::State::kHandshake:
        return handshake(s);
      case Slot::State::kAnswer:
        return readAnswer(s);
    }
    return false;
  }

  bool keep_alive_;
  std::map<std::string, std::string> options_;
  sockaddr_in target_{};
  sockaddr_in proxy_{};
  bool via_proxy_ = false;
  std::string name_;
  std::string connect_;
  std::string get_;
  double seconds_ = 3;
  SSL_CTX* ctx_ = nullptr;
  int epfd_ = -1;
  std::vector<Slot> slots_;
  Clock::time_point deadline_;
  long done_ = 0;
  long errors_ = 0;
  std::string last_error_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    die("usage: tlsload handshakes|requests --target H:P --name NAME --ca FILE [--key value ...]");
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::string mode = argv[1];
  if (mode != "handshakes" && mode != "requests") {
    die("unknown mode " + mode);
  }
  Load load(parseOptions(argc, argv), mode == "requests");
  return load.run();
}
