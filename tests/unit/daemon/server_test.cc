// The daemon core in-process, on port 0: a Server answers what it can answer
// without any next hop (refusals, malformed requests, loops), writes one
// decision record for each, drains, and leaves the loop with no handle open
// and no read block in use.
#include "daemon/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "daemon/decision_log.h"
#include "rules/config_loader.h"

namespace switchyard {
namespace {

using namespace std::chrono_literals;

// Sends `request` to 127.0.0.1:port, reads until EOF (or 10 s).
std::string exchange(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  if (!request.empty()) {
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  } else {
    ::shutdown(fd, SHUT_WR);
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return reply;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("sy-server-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    log_path_ = (dir_ / "decisions.log").string();
    const std::string yaml = "log: { format: json, decisions: \"" + log_path_ +
                             "\" }\n"
                             "limits: { header_timeout: 2s, max_header_bytes: 1024 }\n"
                             "rules:\n"
                             "  - name: no-blocked\n"
                             "    match: { hosts: \"blocked.test\" }\n"
                             "    action: deny\n";
    rules::LoadResult loaded = rules::loadConfigString(yaml, "server-test.yaml", {});
    ASSERT_TRUE(loaded.config.has_value()) << (loaded.errors.empty() ? "" : loaded.errors[0]);
    std::string error;
    decisions_ = DecisionLog::open(loaded.config->log, &error);
    ASSERT_NE(decisions_, nullptr) << error;
    std::vector<std::string> errors;
    auto snapshot = rules::ConfigSnapshot::build(std::move(*loaded.config), 1, &errors);
    ASSERT_NE(snapshot, nullptr);
    LiveConfigPtr live;
    ASSERT_TRUE(buildLiveConfig(snapshot, &live, &error)) << error;
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    server_ = std::make_unique<Server>(&loop_, live, decisions_.get(), Server::Options{});
    ASSERT_TRUE(server_->listen({"127.0.0.1:0"}));
    std::string bound = server_->boundAddresses().at(0);
    port_ = static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
  }

  void TearDown() override {
    if (server_) {
      server_->shutdown();
      uv_run(&loop_, UV_RUN_DEFAULT);
      server_.reset();
      EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
    }
    EXPECT_EQ(BufferPool::liveBlocks(), 0u);
    decisions_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Runs the loop while a client thread does `fn`.
  template <typename Fn>
  void withClient(Fn fn) {
    std::atomic<bool> done{false};
    std::thread client([&] {
      fn();
      done = true;
    });
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(1ms);
    }
    client.join();
  }

  std::vector<nlohmann::json> records() {
    decisions_->flush();
    std::vector<nlohmann::json> out;
    std::ifstream in(log_path_);
    std::string line;
    while (std::getline(in, line)) {
      out.push_back(nlohmann::json::parse(line));
    }
    return out;
  }

  std::filesystem::path dir_;
  std::string log_path_;
  std::unique_ptr<DecisionLog> decisions_;
  uv_loop_t loop_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

struct AnswerCase {
  std::string name;
  std::string request;
  std::string status_line;   // prefix of the first line
  std::string proxy_status;  // substring of Proxy-Status
};

// Server::addListener sets TCP_NODELAY on the listening socket and relies on
// the kernel copying it to every accepted socket (no setsockopt per client).
TEST(ListenerSockets, AcceptedSocketsInheritNoDelay) {
  for (bool on : {true, false}) {
    SCOPED_TRACE(on ? "listener with TCP_NODELAY" : "listener without");
    int lst = ::socket(AF_INET, SOCK_STREAM, 0);
    int flag = on ? 1 : 0;
    ASSERT_EQ(::setsockopt(lst, IPPROTO_TCP, TCP_NODELAY, &flag, sizeof(flag)), 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(lst, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(lst, 1), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(lst, reinterpret_cast<sockaddr*>(&addr), &len);
    int client = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    int accepted = ::accept4(lst, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_GE(accepted, 0);
    int got = -1;
    socklen_t got_len = sizeof(got);
    ASSERT_EQ(::getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &got, &got_len), 0);
    EXPECT_EQ(got != 0, on);
    ::close(accepted);
    ::close(client);
    ::close(lst);
  }
}

TEST_F(ServerTest, AnswersWithoutANextHop) {
  const std::string self = "127.0.0.1:" + std::to_string(port_);
  const std::vector<AnswerCase> cases = {
      {"origin-form", "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 Not a GOPROXY path",
       "destination_not_found"},
      {"deny rule", "GET http://blocked.test/ad HTTP/1.1\r\nHost: blocked.test\r\n\r\n",
       "HTTP/1.1 403 Denied by rule no-blocked", "http_request_denied"},
      {"deny rule CONNECT", "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n",
       "HTTP/1.1 403 Denied by rule no-blocked", "http_request_denied"},
      {"port policy", "CONNECT example.test:25 HTTP/1.1\r\nHost: example.test:25\r\n\r\n",
       "HTTP/1.1 403 Port 25 not allowed", "http_request_denied"},
      {"authority without port", "CONNECT example.test HTTP/1.1\r\nHost: example.test\r\n\r\n",
       "HTTP/1.1 400 ", "http_request_error"},
      {"https without CONNECT", "GET https://x.test/ HTTP/1.1\r\nHost: x\r\n\r\n",
       "HTTP/1.1 400 Use CONNECT for https", "http_request_error"},
      {"our Via",
       "GET http://x.test/ HTTP/1.1\r\nHost: x\r\nVia: 1.1 switchyard (" + self + ")\r\n\r\n",
       "HTTP/1.1 508 ", "proxy_loop_detected"},
      {"aimed at ourselves", "GET http://" + self + "/ HTTP/1.1\r\nHost: x\r\n\r\n",
       "HTTP/1.1 508 ", "proxy_loop_detected"},
      {"head too large", "GET http://x.test/ HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 ", "http_request_error"},
      {"TE and CL",
       "POST http://x.test/ HTTP/1.1\r\nContent-Length: 1\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       "HTTP/1.1 400 ", "http_request_error"},
      {"upgrade",
       "GET http://x.test/ HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
       "Upgrade: websocket\r\n\r\n",
       "HTTP/1.1 501 Upgrade not supported", "proxy_internal_response"},
  };
  for (const AnswerCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string reply;
    withClient([&] { reply = exchange(port_, c.request); });
    EXPECT_EQ(reply.rfind(c.status_line, 0), 0u) << reply;
    EXPECT_NE(reply.find("\r\nProxy-Status: switchyard; error=" + c.proxy_status),
              std::string::npos)
        << reply;
    EXPECT_NE(reply.find("\r\nConnection: close\r\n"), std::string::npos) << reply;
  }
  // A connection that sends nothing gets no answer and no record.
  std::string silent;
  withClient([&] { silent = exchange(port_, ""); });
  EXPECT_EQ(silent, "");

  std::vector<nlohmann::json> recs = records();
  ASSERT_EQ(recs.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    int status = std::stoi(cases[i].status_line.substr(9, 3));
    EXPECT_EQ(recs[i]["status"], status);
    EXPECT_NE(recs[i]["proxy_status"].get<std::string>().find(cases[i].proxy_status),
              std::string::npos);
    EXPECT_EQ(recs[i]["closed_by"], "proxy");
    EXPECT_EQ(recs[i]["config_gen"], 1);
  }
  EXPECT_EQ(recs[1]["rule"], "no-blocked");
  EXPECT_EQ(recs[1]["action"], "deny");
  EXPECT_EQ(recs[3]["rule"], "access.connect_ports");
}

TEST_F(ServerTest, DrainClosesIdleConnectionsAndEndsTheLoop) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // Let the server accept it.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (server_->runtime().sessionCount() == 0 && std::chrono::steady_clock::now() < deadline) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(server_->runtime().sessionCount(), 1u);
  server_->shutdown();
  uv_run(&loop_, UV_RUN_DEFAULT);  // returns only once every handle is closed
  EXPECT_EQ(server_->runtime().sessionCount(), 0u);
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);  // closed without an answer
  ::close(fd);
  server_.reset();
  EXPECT_EQ(uv_loop_close(&loop_), 0);
}

}  // namespace
}  // namespace switchyard
