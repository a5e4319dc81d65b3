// The gateway-operations wiring of the Server, in-process on port 0: the
// admin listener (endpoints, limits, access list, readiness while
// draining), the metrics the requests move, and proxy authentication with
// its verification on the thread pool. Every test ends with the loop closed
// and no read block in use.
#include "daemon/admin_listener.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
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
#include "daemon/metrics.h"
#include "daemon/proxy_auth.h"
#include "daemon/server.h"
#include "rules/config_loader.h"

namespace switchyard {
namespace {

using namespace std::chrono_literals;

// Sends `request` to 127.0.0.1:port and reads until EOF (or 10 s).
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
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
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

uint16_t portOf(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

std::string bodyOf(const std::string& reply) {
  size_t end = reply.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : reply.substr(end + 4);
}

// The value of one sample line ("name{labels} value") of a scrape; -1 when absent.
double sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(text.substr(at + series.size() + 2));
}

class GatewayOpsTest : public ::testing::Test {
 protected:
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

  // Starts a Server on 127.0.0.1:0 with `extra` appended to a config that
  // denies blocked.test and has an admin listener on 127.0.0.1:0.
  void start(const std::string& extra, bool ready = true) {
    dir_ = std::filesystem::temp_directory_path() /
           ("sy-gwops-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_));
    std::filesystem::create_directories(dir_);
    log_path_ = (dir_ / "decisions.log").string();
    const std::string yaml = "log: { format: json, decisions: \"" + log_path_ +
                             "\" }\n"
                             "admin: \"127.0.0.1:0\"\n"
                             "limits: { header_timeout: 2s, drain_timeout: 10s }\n"
                             "rules:\n"
                             "  - name: no-blocked\n"
                             "    match: { hosts: \"blocked.test\" }\n"
                             "    action: deny\n" +
                             extra;
    rules::LoadResult loaded = rules::loadConfigString(yaml, "gwops-test.yaml", {});
    ASSERT_TRUE(loaded.config.has_value()) << (loaded.errors.empty() ? "" : loaded.errors[0]);
    std::string error;
    decisions_ = queue_size_ == 0
                     ? DecisionLog::open(loaded.config->log, &error)
                     : DecisionLog::openForTest(loaded.config->log, queue_size_, &error);
    ASSERT_NE(decisions_, nullptr) << error;
    std::vector<std::string> errors;
    auto snapshot = rules::ConfigSnapshot::build(std::move(*loaded.config), 1, &errors);
    ASSERT_NE(snapshot, nullptr);
    LiveConfigPtr live;
    ASSERT_TRUE(buildLiveConfig(snapshot, &live, &error)) << error;
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    server_ = std::make_unique<Server>(&loop_, live, decisions_.get(), Server::Options{});
    ASSERT_TRUE(server_->listen({"127.0.0.1:0"}));
    ASSERT_TRUE(server_->listenAdmin());
    port_ = portOf(server_->boundAddresses().at(0));
    admin_port_ = portOf(server_->adminAddress());
    if (ready) {
      server_->notifyReady();
    }
  }

  // Runs the loop while a client thread does `fn`.
  template <typename Fn>
  void withClient(Fn fn) {
    std::atomic<bool> done{false};
    std::thread client([&] {
      fn();
      done = true;
    });
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(1ms);
    }
    client.join();
  }

  std::string admin(const std::string& request) {
    std::string reply;
    withClient([&] { reply = exchange(admin_port_, request); });
    return reply;
  }
  std::string get(const std::string& path) {
    return admin("GET " + path + " HTTP/1.1\r\nHost: gw.test\r\n\r\n");
  }
  std::string proxy(const std::string& request) {
    std::string reply;
    withClient([&] { reply = exchange(port_, request); });
    return reply;
  }

  // Runs the loop until `pred` holds (or 10 s).
  template <typename Pred>
  void runUntil(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!pred() && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(1ms);
    }
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

  static inline int counter_ = 0;
  size_t queue_size_ = 0;  // the decision log's queue; 0: the real size
  std::filesystem::path dir_;
  std::string log_path_;
  std::unique_ptr<DecisionLog> decisions_;
  uv_loop_t loop_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
};

struct AdminCase {
  std::string name;
  std::string request;
  std::string status_line;  // prefix
  std::string body;         // substring ("" = no check)
  bool empty_body = false;  // HEAD
};

TEST_F(GatewayOpsTest, AnswersEveryEndpoint) {
  start("");
  const std::vector<AdminCase> cases = {
      {"healthz", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK", "ok\n"},
      {"readyz", "GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK", "ready\n"},
      {"metrics", "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK",
       "switchyard_config_generation 1\n"},
      {"explain", "GET /explain?url=http%3A%2F%2Fblocked.test%2F HTTP/1.1\r\nHost: a\r\n\r\n",
       "HTTP/1.1 200 OK", "\"rule\":\"no-blocked\""},
      {"explain bad", "GET /explain?url=a&url=b HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 ",
       "twice"},
      {"pac", "GET /proxy.pac HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK", "PROXY 127.0.0.1:"},
      {"head", "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK", "", true},
      {"post", "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 405 ",
       "only GET and HEAD"},
      {"not found", "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 404 ", "/metrics"},
      {"http/1.0", "GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK", "ok\n"},
      {"two hosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 ", "Host"},
      {"bad field", "GET /healthz HTTP/1.1\r\nNo Colon\r\n\r\n", "HTTP/1.1 400 ", "malformed"},
      {"bad version", "GET /healthz HTTP/9.9\r\n\r\n", "HTTP/1.1 505 ", "HTTP/1.1"},
      {"http/2", "GET /healthz HTTP/2.0\r\n\r\n", "HTTP/1.1 505 ", "HTTP/1.1"},
      {"head too large",
       "GET /healthz HTTP/1.1\r\nX: " + std::string(AdminListener::kMaxHeadBytes, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 ", "8192"},
      {"url too large",
       "GET /" + std::string(AdminListener::kMaxHeadBytes + 1, 'u') + " HTTP/1.1\r\n\r\n",
       "HTTP/1.1 414 ", "request target longer"},
  };
  for (const AdminCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string reply = admin(c.request);
    EXPECT_EQ(reply.rfind(c.status_line, 0), 0u) << reply;
    EXPECT_NE(reply.find("\r\nConnection: close\r\n"), std::string::npos) << reply;
    EXPECT_NE(reply.find("\r\nCache-Control: no-store\r\n"), std::string::npos) << reply;
    if (c.empty_body) {
      EXPECT_EQ(bodyOf(reply), "");
      EXPECT_NE(reply.find("\r\nContent-Length: 3\r\n"), std::string::npos) << reply;
    } else if (!c.body.empty()) {
      EXPECT_NE(bodyOf(reply).find(c.body), std::string::npos) << reply;
    }
  }
  // No admin request is a proxy request: nothing was logged or counted.
  EXPECT_TRUE(records().empty());
  EXPECT_EQ(server_->metrics().requests().seriesCount(), 0u);
  EXPECT_EQ(server_->metrics().decisionDuration().count(), 0u);
}

TEST_F(GatewayOpsTest, ReadyOnlyAfterNotifyReady) {
  start("", /*ready=*/false);
  EXPECT_EQ(get("/readyz").rfind("HTTP/1.1 503 ", 0), 0u);
  EXPECT_EQ(get("/healthz").rfind("HTTP/1.1 200 ", 0), 0u);
  server_->notifyReady();
  EXPECT_EQ(get("/readyz").rfind("HTTP/1.1 200 ", 0), 0u);
}

TEST_F(GatewayOpsTest, MetricsCountDecidedRequests) {
  start("");
  const std::vector<std::string> requests = {
      "GET http://blocked.test/a HTTP/1.1\r\nHost: blocked.test\r\n\r\n",
      "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n",
      "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n",
      "CONNECT example.test:25 HTTP/1.1\r\nHost: example.test:25\r\n\r\n",  // port policy, after
                                                                            // the decision
      "GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n",  // answered without a decision
  };
  for (const std::string& r : requests) {
    proxy(r);
  }
  runUntil([&] { return server_->metrics().connectionsActive() == 0; });
  const Metrics& m = server_->metrics();
  EXPECT_EQ(m.requests().value({"deny", "no-blocked"}), 3u);
  EXPECT_EQ(m.requests().value({"direct", "access.connect_ports"}), 1u);
  EXPECT_EQ(m.requests().value({"none", "none"}), 1u);
  EXPECT_EQ(m.decisionDuration().count(), 4u);
  EXPECT_EQ(m.connectionsActive(), 0u);
  EXPECT_EQ(m.tunnelsActive(), 0u);
  uint64_t in = 0;
  uint64_t out = 0;
  for (const nlohmann::json& rec : records()) {
    in += rec["bytes_in"].get<uint64_t>();
    out += rec["bytes_out"].get<uint64_t>();
  }
  EXPECT_EQ(m.bytes().value({"in"}), in);
  EXPECT_EQ(m.bytes().value({"out"}), out);
  // The scrape says the same.
  std::string text = bodyOf(get("/metrics"));
  EXPECT_EQ(sample(text, "switchyard_requests_total{action=\"deny\",rule=\"no-blocked\"}"), 3);
  EXPECT_EQ(sample(text, "switchyard_decision_duration_microseconds_count"), 4);
  EXPECT_EQ(sample(text, "switchyard_connections_active"), 0);
  EXPECT_EQ(sample(text, "switchyard_log_dropped_lines_total"), 0);
  EXPECT_EQ(sample(text, "switchyard_config_last_reload_success"), 1);
}

TEST_F(GatewayOpsTest, WarnsAboutAndCountsDroppedDecisionLines) {
  queue_size_ = 2;
  start("");
  decisions_->pauseWriterForTest(true);
  for (int i = 0; i < 8; ++i) {
    proxy("GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n\r\n");
  }
  uint64_t dropped = decisions_->dropped();
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(server_->checkDecisionLogDrops(), dropped);
  EXPECT_EQ(server_->checkDecisionLogDrops(), 0u);  // each drop is reported once
  std::string text = bodyOf(get("/metrics"));
  EXPECT_EQ(sample(text, "switchyard_log_dropped_lines_total"), static_cast<double>(dropped));
  // The counters see every request, logged or not.
  EXPECT_EQ(sample(text, "switchyard_requests_total{action=\"deny\",rule=\"no-blocked\"}"), 8);
  decisions_->pauseWriterForTest(false);
}

TEST_F(GatewayOpsTest, ConnectionsGaugeFollowsOpenClients) {
  start("");
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  runUntil([&] { return server_->metrics().connectionsActive() == 1; });
  EXPECT_EQ(server_->metrics().connectionsActive(), 1u);
  EXPECT_EQ(sample(bodyOf(get("/metrics")), "switchyard_connections_active"), 1);
  ::close(fd);
  runUntil([&] { return server_->metrics().connectionsActive() == 0; });
  EXPECT_EQ(server_->metrics().connectionsActive(), 0u);
}

TEST_F(GatewayOpsTest, RefusesClientsOutsideAdminAllowClients) {
  start("access: { admin_allow_clients: [\"10.0.0.0/8\", \"::1\"] }\n");
  std::string reply = get("/metrics");
  EXPECT_EQ(reply.rfind("HTTP/1.1 403 ", 0), 0u) << reply;
  EXPECT_NE(bodyOf(reply).find("admin_allow_clients"), std::string::npos);
  EXPECT_EQ(bodyOf(reply).find("switchyard_"), std::string::npos);
  // The proxy port's own list is separate.
  std::string proxied = proxy("GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n\r\n");
  EXPECT_EQ(proxied.rfind("HTTP/1.1 403 Denied by rule no-blocked", 0), 0u) << proxied;
}

TEST_F(GatewayOpsTest, ReadyzSaysNotReadyWhileDraining) {
  start("");
  // A client that has begun a request keeps the drain going.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string partial = "GET http://blocked.test/ HTTP/1.1\r\n";
  ::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
  runUntil([&] { return server_->runtime().sessionCount() == 1; });
  // Accepted is not enough: the first bytes must have been read too, or the
  // drain closes the client as idle.
  auto until = std::chrono::steady_clock::now() + 200ms;
  while (std::chrono::steady_clock::now() < until) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(1ms);
  }
  server_->shutdown();
  EXPECT_TRUE(server_->runtime().draining);
  ASSERT_EQ(server_->runtime().sessionCount(), 1u);
  std::string readyz = get("/readyz");
  EXPECT_EQ(readyz.rfind("HTTP/1.1 503 ", 0), 0u) << readyz;
  std::string healthz = get("/healthz");
  EXPECT_EQ(healthz.rfind("HTTP/1.1 200 ", 0), 0u) << healthz;
  // The header timeout (2 s) ends that client; then the loop ends, and the
  // admin listener with it.
  ::close(fd);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(exchange(admin_port_, "GET /healthz HTTP/1.1\r\n\r\n"), "connect failed");
  server_.reset();
  EXPECT_EQ(uv_loop_close(&loop_), 0);
}

// ---------------------------------------------------------------------------
// Proxy authentication, with a fast (minimum-cost) scrypt line.

class AuthServerTest : public GatewayOpsTest {
 protected:
  void startWithUsers() {
    std::filesystem::create_directories(std::filesystem::temp_directory_path());
    users_path_ =
        (std::filesystem::temp_directory_path() / ("sy-gwops-users-" + std::to_string(::getpid())))
            .string();
    ScryptParams params;
    params.n = kScryptMinN;
    std::string error;
    std::string hash = hashPassword("s3cret", params, &error);
    ASSERT_FALSE(hash.empty()) << error;
    std::ofstream(users_path_) << "alice:" << hash << "\n";
    start("access: { users_file: \"" + users_path_ + "\" }\n");
  }
  void TearDown() override {
    GatewayOpsTest::TearDown();
    std::filesystem::remove(users_path_);
  }
  std::string users_path_;
};

TEST_F(AuthServerTest, ChallengesAndVerifiesOffTheLoop) {
  startWithUsers();
  const std::string good =
      "Proxy-Authorization: " + std::string("Basic ") + encodeBase64("alice:s3cret") + "\r\n";
  const std::string bad = "Proxy-Authorization: Basic " + encodeBase64("alice:nope") + "\r\n";
  struct Case {
    std::string name;
    std::string request;
    std::string status_line;
    std::string challenge;  // the challenge field expected ("" = none)
    std::string user;
  };
  const std::vector<Case> cases = {
      {"missing", "GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n\r\n", "HTTP/1.1 407 ",
       "Proxy-Authenticate: Basic realm=\"switchyard\"", ""},
      {"wrong", "GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n" + bad + "\r\n", "HTTP/1.1 407 ",
       "Proxy-Authenticate: Basic realm=\"switchyard\"", ""},
      {"right", "GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n" + good + "\r\n",
       "HTTP/1.1 403 Denied by rule no-blocked", "", "alice"},
      {"right again (cached)", "GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n" + good + "\r\n",
       "HTTP/1.1 403 Denied by rule no-blocked", "", "alice"},
      {"CONNECT missing", "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n",
       "HTTP/1.1 407 ", "Proxy-Authenticate: Basic realm=\"switchyard\"", ""},
      {"CONNECT wrong",
       "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n" + bad + "\r\n",
       "HTTP/1.1 407 ", "Proxy-Authenticate: Basic realm=\"switchyard\"", ""},
      {"CONNECT right",
       "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n" + good + "\r\n",
       "HTTP/1.1 403 Denied by rule no-blocked", "", "alice"},
      {"origin-form missing", "GET /m/@v/list HTTP/1.1\r\nHost: gw\r\n" + good + "\r\n",
       "HTTP/1.1 401 ", "WWW-Authenticate: Basic realm=\"switchyard\"", ""},
      {"origin-form right",
       "GET /m/@v/list HTTP/1.1\r\nHost: gw\r\nAuthorization: Basic " +
           encodeBase64("alice:s3cret") + "\r\n\r\n",
       "HTTP/1.1 404 ", "", "alice"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string reply = proxy(c.request);
    EXPECT_EQ(reply.rfind(c.status_line, 0), 0u) << reply;
    if (!c.challenge.empty()) {
      EXPECT_NE(reply.find("\r\n" + c.challenge), std::string::npos) << reply;
      EXPECT_NE(reply.find("\r\nProxy-Status: switchyard; error=http_request_denied"),
                std::string::npos)
          << reply;
    }
  }
  std::vector<nlohmann::json> recs = records();
  ASSERT_EQ(recs.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    EXPECT_EQ(recs[i]["user"], cases[i].user);
    if (cases[i].user.empty()) {
      EXPECT_EQ(recs[i]["rule"], "access.users_file");
    }
  }
  // Two wrong and one right password ran the KDF; the other right ones came
  // from the cache.
  UserDb::Stats stats = server_->runtime().config->users->statsForTest();
  EXPECT_EQ(stats.kdf_runs, 3u);
  EXPECT_GE(stats.cache_hits, 1u);
  EXPECT_EQ(server_->metrics().requests().value({"none", "access.users_file"}), 5u);
}

TEST_F(AuthServerTest, ShutdownWhileVerifyingEndsCleanly) {
  startWithUsers();
  const std::string request =
      "GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n"
      "Proxy-Authorization: Basic " +
      encodeBase64("alice:wrong-password") + "\r\n\r\n";
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  runUntil([&] { return server_->runtime().sessionCount() == 1; });
  for (int i = 0; i < 20; ++i) {  // let the head arrive and the job start
    uv_run(&loop_, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(1ms);
  }
  // Twice: the second closes every connection at once, cancelling the
  // verification wherever it is.
  server_->shutdown();
  server_->shutdown();
  uv_run(&loop_, UV_RUN_DEFAULT);
  ::close(fd);
  server_.reset();
  EXPECT_EQ(uv_loop_close(&loop_), 0);
}

}  // namespace
}  // namespace switchyard
