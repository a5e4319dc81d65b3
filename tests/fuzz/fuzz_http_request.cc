// Fuzzes the request side of a client Connection: bytes in, responses out.
//
// Each input is written into one end of a socketpair whose other end is a
// Connection on a real event loop (the "fake transport": no TCP, no next
// hop). The config denies every host, so no request ever leaves the process;
// what is exercised is llhttp in strict mode, our limits, the request-target
// parsing, the decision, and the single answer-and-close path. The input
// ends with EOF. Checked for every input: the connection closes by itself,
// whatever it answered is an HTTP/1.1 response, and no read block leaks.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon/connection.h"
#include "daemon/connector.h"
#include "daemon/resolver.h"
#include "daemon/runtime.h"
#include "daemon/upstream_http.h"
#include "rules/config_loader.h"

namespace {

using namespace switchyard;

// Bounds one input's loop turns: a connection that neither answers nor
// closes after EOF within this many turns is a hang, and a finding.
constexpr int kMaxTurns = 100000;

struct Fixture {
  uv_loop_t loop;
  std::unique_ptr<Runtime> rt;
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<Connector> connector;

  Fixture() {
    uv_loop_init(&loop);
    rt = std::make_unique<Runtime>(&loop);
    const char* yaml =
        "limits: { max_header_bytes: 4096, header_timeout: 60s }\n"
        "access: { connect_ports: [443, 8443] }\n"
        "rules:\n"
        "  - name: deny-all\n"
        "    match: { hosts: \"*\" }\n"
        "    action: deny\n";
    rules::LoadResult loaded = rules::loadConfigString(yaml, "fuzz.yaml", {});
    if (!loaded.config) {
      std::fprintf(stderr, "fuzz config: %s\n", loaded.errors.at(0).c_str());
      std::abort();
    }
    std::vector<std::string> errors;
    auto snapshot = rules::ConfigSnapshot::build(std::move(*loaded.config), 1, &errors);
    std::string error;
    LiveConfigPtr live;
    if (snapshot == nullptr || !buildLiveConfig(snapshot, &live, &error)) {
      std::abort();
    }
    rt->config = live;
    // Never used (every host is denied), but present so that a path that
    // did reach them would behave as in the daemon instead of crashing.
    resolver = std::make_unique<Resolver>(&loop);
    connector = std::make_unique<Connector>(&loop);
    rt->resolver = resolver.get();
    rt->connector = connector.get();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  if (size > 32768) {
    return 0;  // more than the socket buffer takes without a reader
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return 0;
  }
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(&fixture->loop, tcp);
  if (uv_tcp_open(tcp, fds[0]) != 0) {
    std::abort();
  }
  Connection::start(fixture->rt.get(), tcp, /*allowed=*/size % 7 != 3);
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fds[1], data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;
    }
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fds[1], SHUT_WR);

  std::string out;
  char buf[65536];
  int turns = 0;
  while (fixture->rt->sessionCount() > 0) {
    uv_run(&fixture->loop, UV_RUN_NOWAIT);
    ssize_t n;
    while ((n = ::recv(fds[1], buf, sizeof(buf), 0)) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    if (++turns > kMaxTurns) {
      std::fprintf(stderr, "connection did not close after EOF\n");
      std::abort();
    }
  }
  ssize_t n;
  while ((n = ::recv(fds[1], buf, sizeof(buf), 0)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[1]);
  if (!out.empty() && out.rfind("HTTP/1.1 ", 0) != 0) {
    std::fprintf(stderr, "not an HTTP response: %.80s\n", out.c_str());
    std::abort();
  }
  if (BufferPool::liveBlocks() != 0) {
    std::fprintf(stderr, "read blocks leaked\n");
    std::abort();
  }
  return 0;
}
