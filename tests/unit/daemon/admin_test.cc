// The admin endpoints as a pure function: every route and status code
// (200/400/404/405/503), content types, HEAD, the explain JSON being exactly
// rules::explain()'s, the PAC's proxy address, the wire form of responses,
// and the admin client ACL.
#include "daemon/admin.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "daemon/metrics.h"
#include "rules/config_loader.h"
#include "rules/explain.h"
#include "rules/pac.h"

namespace switchyard {
namespace {

using Json = nlohmann::json;

constexpr const char* kConfig = R"(
inherit_env: true
env:
  NO_PROXY: ".corp.example.com,10.0.0.0/8"
  HTTPS_PROXY: "http://user:secret@parent.test:8080"
  GOPRIVATE: "git.company.com"
rules:
  - name: no-ads
    match: { hosts: ".doubleclick.net" }
    action: deny
  - name: private-modules
    match: { modules: "git.company.com" }
    action: direct
)";

// Process environment as the daemon read it at start: curl and Python read
// lowercase no_proxy first, so `others` differs from Go's answer.
const rules::EnvMap& processEnv() {
  static const rules::EnvMap env = {{"no_proxy", "example.com"}, {"PATH", "/usr/bin"}};
  return env;
}

rules::ConfigSnapshotPtr loadSnapshot() {
  rules::LoadResult loaded = rules::loadConfigString(kConfig, "admin.yaml", processEnv());
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front();
  std::vector<std::string> errors;
  auto snap = rules::ConfigSnapshot::build(std::move(*loaded.config), 4, &errors);
  EXPECT_TRUE(errors.empty());
  return snap;
}

class AdminTest : public ::testing::Test {
 protected:
  AdminTest() {
    ctx_.snapshot = loadSnapshot();
    ctx_.process_env = &processEnv();
    ctx_.metrics = &metrics_;
    ctx_.ready = true;
    ctx_.proxy_host_port = "127.0.0.1:3128";
    metrics_.countRequest("deny", "no-ads");
  }

  AdminResponse get(std::string_view target) { return handleAdminRequest("GET", target, ctx_); }

  static std::string header(const AdminResponse& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) {
        return v;
      }
    }
    return "";
  }

  Metrics metrics_;
  AdminContext ctx_;
};

// ---------------------------------------------------------------------------
// Routing table.

struct RouteCase {
  const char* method;
  const char* target;
  int status;
  const char* content_type;  // prefix
  const char* body;          // substring
};

class AdminRouteTest : public AdminTest, public ::testing::WithParamInterface<RouteCase> {};

TEST_P(AdminRouteTest, Answers) {
  const RouteCase& c = GetParam();
  AdminResponse r = handleAdminRequest(c.method, c.target, ctx_);
  EXPECT_EQ(r.status, c.status) << r.body;
  EXPECT_EQ(r.content_type.rfind(c.content_type, 0), 0u) << r.content_type;
  EXPECT_NE(r.body.find(c.body), std::string::npos) << r.body;
  EXPECT_EQ(header(r, "Cache-Control"), "no-store");
  if (c.status == 405) {
    EXPECT_EQ(header(r, "Allow"), "GET, HEAD");
  } else {
    EXPECT_EQ(header(r, "Allow"), "");
  }
}

constexpr const char* kText = "text/plain; charset=utf-8";

INSTANTIATE_TEST_SUITE_P(
    Routes, AdminRouteTest,
    ::testing::Values(
        RouteCase{"GET", "/healthz", 200, kText, "ok\n"},
        RouteCase{"HEAD", "/healthz", 200, kText, "ok\n"},
        RouteCase{"GET", "/healthz?verbose=1", 200, kText, "ok\n"},
        RouteCase{"GET", "/readyz", 200, kText, "ready\n"},
        RouteCase{"GET", "/metrics", 200, "text/plain; version=0.0.4",
                  "switchyard_requests_total{action=\"deny\",rule=\"no-ads\"} 1\n"},
        RouteCase{"GET", "/proxy.pac", 200, "application/x-ns-proxy-autoconfig",
                  "var SY_PROXY = \"PROXY 127.0.0.1:3128\";"},
        RouteCase{"GET", "/explain?url=https%3A%2F%2Fwww.doubleclick.net%2F", 200,
                  "application/json", "\"rule\":\"no-ads\""},
        RouteCase{"GET", "/explain?url=https://www.doubleclick.net/", 200, "application/json",
                  "\"action\":\"deny\""},
        RouteCase{"GET", "/explain?module=git.company.com%2Frepo", 200, "application/json",
                  "\"gonoproxy\":true"},
        RouteCase{"GET", "/explain?url=http%3A%2F%2Fa.corp.example.com%2F&format=text", 200, kText,
                  "rule:     env:NO_PROXY"},
        RouteCase{"GET", "/explain?format=json&url=example.org", 200, "application/json",
                  "\"rule\":\"env:HTTPS_PROXY\""},
        // 405: only GET and HEAD, whatever the path.
        RouteCase{"POST", "/metrics", 405, kText, "GET and HEAD"},
        RouteCase{"PUT", "/healthz", 405, kText, "GET and HEAD"},
        RouteCase{"DELETE", "/nowhere", 405, kText, "GET and HEAD"},
        RouteCase{"OPTIONS", "*", 405, kText, "GET and HEAD"},
        RouteCase{"get", "/healthz", 405, kText, "GET and HEAD"},
        RouteCase{"CONNECT", "example.com:443", 405, kText, "GET and HEAD"},
        // 404: exact paths only.
        RouteCase{"GET", "/", 404, kText, "/metrics"},
        RouteCase{"GET", "/healthz/", 404, kText, "not found"},
        RouteCase{"GET", "/HEALTHZ", 404, kText, "not found"},
        RouteCase{"GET", "/metricsx", 404, kText, "not found"},
        RouteCase{"GET", "/proxy.pac/x", 404, kText, "not found"},
        RouteCase{"GET", "/%68ealthz", 404, kText, "not found"},
        // 400: what the request says cannot be answered.
        RouteCase{"GET", "http://127.0.0.1:3129/healthz", 400, kText, "path"},
        RouteCase{"GET", "", 400, kText, "path"},
        RouteCase{"GET", "/explain", 400, kText, "exactly one of url=URL or module=PATH"},
        RouteCase{"GET", "/explain?", 400, kText, "exactly one"},
        RouteCase{"GET", "/explain?url=", 400, kText, "exactly one"},
        RouteCase{"GET", "/explain?url=a.test&module=b.test%2Fm", 400, kText, "exactly one"},
        RouteCase{"GET", "/explain?url=a.test&url=b.test", 400, kText, "given twice"},
        RouteCase{"GET", "/explain?url=%ZZ", 400, kText, "bad percent-encoding"},
        RouteCase{"GET", "/explain?url=http%3A%2F%2Fa%2", 400, kText, "bad percent-encoding"},
        RouteCase{"GET", "/explain?url", 400, kText, "has no value"},
        RouteCase{"GET", "/explain?host=a.test", 400, kText, "unknown parameter 'host'"},
        RouteCase{"GET", "/explain?url=a.test&format=yaml", 400, kText, "json or text"},
        RouteCase{"GET", "/explain?url=ftp%3A%2F%2Fa.test%2F", 400, kText, "unsupported scheme"},
        RouteCase{"GET", "/explain?url=http%3A%2F%2Fa.test%3A99999%2F", 400, kText, "bad port"},
        RouteCase{"GET", "/explain?url=2001:db8::1", 400, kText, "brackets"},
        RouteCase{"GET", "/explain?url=%5B2001:db8::1", 400, kText, "missing ']'"}));

// ---------------------------------------------------------------------------
// /explain is rules::explain(), byte for byte.

class AdminExplainTest : public AdminTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(AdminExplainTest, SameJsonAsRulesExplain) {
  const std::string url = GetParam();
  std::string encoded;
  for (unsigned char c : url) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%%%02X", c);
    encoded += buf;
  }
  AdminResponse r = get("/explain?url=" + encoded);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");

  rules::ExplainTarget target;
  std::string error;
  ASSERT_TRUE(rules::parseExplainTarget(url, "", &target, &error)) << error;
  const rules::ExplainResult expected = rules::explain(
      target, *ctx_.snapshot, rules::mergedEnvironment(ctx_.snapshot->config(), processEnv()));
  EXPECT_EQ(Json::parse(r.body), expected.json);
  // The CLI's `explain --json` output, byte for byte.
  EXPECT_EQ(r.body, expected.json.dump() + "\n");

  AdminResponse text = get("/explain?url=" + encoded + "&format=text");
  ASSERT_EQ(text.status, 200);
  EXPECT_EQ(text.body, expected.text);
}

INSTANTIATE_TEST_SUITE_P(Urls, AdminExplainTest,
                         ::testing::Values("https://www.doubleclick.net/",
                                           "http://a.corp.example.com/x?y=1",
                                           "https://corp.example.com/", "http://10.1.2.3:8080/",
                                           "http://[::1]/", "https://[2001:db8::1]:8443/",
                                           "example.com", "www.example.com:443",
                                           "http://user:pw@localhost/", "https://proxy.golang.org/",
                                           "http://xn--bcher-kva.example/"));

TEST_F(AdminTest, ExplainCarriesOthersFromTheProcessEnvironment) {
  // Go: example.com is not in NO_PROXY (upstream); curl and Python read the
  // process's lowercase no_proxy=example.com and would bypass.
  AdminResponse r = get("/explain?url=https%3A%2F%2Fexample.com%2F");
  ASSERT_EQ(r.status, 200);
  const Json j = Json::parse(r.body);
  EXPECT_EQ(j["action"], "upstream");
  EXPECT_EQ(j["upstream"], "http://user:***@parent.test:8080");
  EXPECT_EQ(j["others"]["curl"]["bypass"], true);
  EXPECT_EQ(j["others"]["python"]["bypass"], true);
  EXPECT_EQ(r.body.find("secret"), std::string::npos);

  // Without a process environment, only the config's env: keys count.
  ctx_.process_env = nullptr;
  const Json bare = Json::parse(get("/explain?url=https%3A%2F%2Fexample.com%2F").body);
  EXPECT_EQ(bare["others"], Json::object());
}

TEST_F(AdminTest, ExplainModuleMatchesRulesExplain) {
  AdminResponse r = get("/explain?module=git.company.com%2Fteam%2Frepo");
  ASSERT_EQ(r.status, 200) << r.body;
  rules::ExplainTarget target;
  std::string error;
  ASSERT_TRUE(rules::parseExplainTarget("", "git.company.com/team/repo", &target, &error));
  const auto expected = rules::explain(
      target, *ctx_.snapshot, rules::mergedEnvironment(ctx_.snapshot->config(), processEnv()));
  EXPECT_EQ(Json::parse(r.body), expected.json);
  EXPECT_EQ(Json::parse(r.body)["rule"], "private-modules");
}

TEST_F(AdminTest, PlusIsNotASpace) {
  // A '+' stays '+' (a URL query is not a form): "a+b.test" is a host name.
  const Json j = Json::parse(get("/explain?url=a+b.test").body);
  EXPECT_EQ(j["host"], "a+b.test");
}

// ---------------------------------------------------------------------------
// Readiness, missing pieces.

TEST_F(AdminTest, NotReadyIs503ButHealthy) {
  ctx_.ready = false;
  EXPECT_EQ(get("/readyz").status, 503);
  EXPECT_EQ(get("/readyz").body, "not ready\n");
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(AdminTest, NoSnapshotOrMetricsIs503) {
  ctx_.snapshot = nullptr;
  ctx_.metrics = nullptr;
  EXPECT_EQ(get("/explain?url=a.test").status, 503);
  EXPECT_EQ(get("/proxy.pac").status, 503);
  EXPECT_EQ(get("/metrics").status, 503);
  EXPECT_EQ(get("/healthz").status, 200);
  // Bad requests are still bad requests.
  EXPECT_EQ(get("/explain").status, 400);
}

TEST_F(AdminTest, MetricsBodyIsTheRegistryRendering) {
  AdminResponse r = get("/metrics");
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, metrics_.render());
}

// ---------------------------------------------------------------------------
// /proxy.pac and its proxy address.

struct PacAddressCase {
  const char* proxy;
  const char* host_header;
  int status;
  const char* proxy_line;  // expected SY_PROXY value, or the 4xx/5xx body substring
};

class AdminPacTest : public AdminTest, public ::testing::WithParamInterface<PacAddressCase> {};

TEST_P(AdminPacTest, ProxyAddress) {
  const PacAddressCase& c = GetParam();
  ctx_.proxy_host_port = c.proxy;
  ctx_.host_header = c.host_header;
  AdminResponse r = get("/proxy.pac");
  ASSERT_EQ(r.status, c.status) << r.body;
  if (c.status == 200) {
    EXPECT_EQ(r.content_type, "application/x-ns-proxy-autoconfig");
    EXPECT_EQ(r.body, rules::generatePac(*ctx_.snapshot, c.proxy_line));
  } else {
    EXPECT_NE(r.body.find(c.proxy_line), std::string::npos) << r.body;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Addresses, AdminPacTest,
    ::testing::Values(
        PacAddressCase{"127.0.0.1:3128", "", 200, "127.0.0.1:3128"},
        PacAddressCase{"127.0.0.1:3128", "evil.test:80", 200, "127.0.0.1:3128"},
        PacAddressCase{"[::1]:3128", "", 200, "[::1]:3128"},
        PacAddressCase{"gw.example.com:3128", "other:1", 200, "gw.example.com:3128"},
        PacAddressCase{"0.0.0.0:3128", "gateway.example.com:3129", 200, "gateway.example.com:3128"},
        PacAddressCase{"0.0.0.0:3128", "Gateway.Example.COM", 200, "Gateway.Example.COM:3128"},
        PacAddressCase{":3128", "10.1.2.3:3129", 200, "10.1.2.3:3128"},
        PacAddressCase{"[::]:8080", "[2001:db8::1]:3129", 200, "[2001:db8::1]:8080"},
        PacAddressCase{"[::]:8080", "[2001:db8::1]", 200, "[2001:db8::1]:8080"},
        PacAddressCase{"0.0.0.0:3128", "", 400, "Host header"},
        PacAddressCase{"0.0.0.0:3128", "a\";alert(1)//", 400, "Host header"},
        PacAddressCase{"0.0.0.0:3128", "a b:1", 400, "Host header"},
        PacAddressCase{"0.0.0.0:3128", "[]:1", 400, "Host header"},
        PacAddressCase{"0.0.0.0:3128", "[zz::1]:1", 400, "Host header"},
        PacAddressCase{"0.0.0.0:3128", "[::1:1", 400, "Host header"},
        PacAddressCase{"", "", 503, "no proxy address"},
        PacAddressCase{"no-port", "", 503, "no proxy address"}));

// ---------------------------------------------------------------------------
// HEAD and the wire form.

TEST_F(AdminTest, HeadKeepsLengthButSendsNoBody) {
  AdminResponse get_r = get("/metrics");
  AdminResponse head_r = handleAdminRequest("HEAD", "/metrics", ctx_);
  EXPECT_EQ(head_r.status, get_r.status);
  EXPECT_EQ(head_r.body.size(), get_r.body.size());
  const std::string wire = serializeAdminResponse(head_r, /*head_request=*/true, true);
  EXPECT_NE(wire.find("Content-Length: " + std::to_string(get_r.body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(wire.substr(wire.size() - 4), "\r\n\r\n");
}

TEST(AdminWireTest, SerializesExactly) {
  AdminResponse r;
  r.status = 405;
  r.content_type = "text/plain; charset=utf-8";
  r.body = "no\n";
  r.headers = {{"Allow", "GET, HEAD"}, {"Cache-Control", "no-store"}};
  EXPECT_EQ(serializeAdminResponse(r, false, false),
            "HTTP/1.1 405 Method Not Allowed\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 3\r\n"
            "Allow: GET, HEAD\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n"
            "\r\n"
            "no\n");
  EXPECT_EQ(serializeAdminResponse(r, true, true),
            "HTTP/1.1 405 Method Not Allowed\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 3\r\n"
            "Allow: GET, HEAD\r\n"
            "Cache-Control: no-store\r\n"
            "\r\n");
  struct Reason {
    int status;
    const char* line;
  };
  for (const Reason& c : std::vector<Reason>{{200, "HTTP/1.1 200 OK\r\n"},
                                             {400, "HTTP/1.1 400 Bad Request\r\n"},
                                             {403, "HTTP/1.1 403 Forbidden\r\n"},
                                             {404, "HTTP/1.1 404 Not Found\r\n"},
                                             {503, "HTTP/1.1 503 Service Unavailable\r\n"}}) {
    AdminResponse s;
    s.status = c.status;
    EXPECT_EQ(serializeAdminResponse(s, false, true).rfind(c.line, 0), 0u) << c.status;
  }
}

TEST(AdminWireTest, RefusedClient) {
  AdminResponse r = adminClientRefused();
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "client not in access.admin_allow_clients\n");
}

// ---------------------------------------------------------------------------
// Client ACL.

sockaddr_storage address(const char* ip) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
  } else {
    ADD_FAILURE() << "bad test address " << ip;
  }
  return ss;
}

struct AclCase {
  std::vector<std::string> cidrs;
  const char* peer;
  bool allowed;
};

class AdminAclTest : public ::testing::TestWithParam<AclCase> {};

TEST_P(AdminAclTest, Allows) {
  const AclCase& c = GetParam();
  sockaddr_storage ss = address(c.peer);
  EXPECT_EQ(adminClientAllowed(reinterpret_cast<const sockaddr*>(&ss), c.cidrs), c.allowed);
}

const std::vector<std::string> kLoopback = {"127.0.0.0/8", "::1"};

INSTANTIATE_TEST_SUITE_P(
    Peers, AdminAclTest,
    ::testing::Values(AclCase{kLoopback, "127.0.0.1", true},
                      AclCase{kLoopback, "127.255.0.9", true}, AclCase{kLoopback, "::1", true},
                      AclCase{kLoopback, "::ffff:127.0.0.1", true},
                      AclCase{kLoopback, "10.0.0.1", false}, AclCase{kLoopback, "::2", false},
                      AclCase{kLoopback, "::ffff:10.0.0.1", false},
                      AclCase{{"10.0.0.0/8", "2001:db8::/32"}, "10.200.1.1", true},
                      AclCase{{"10.0.0.0/8", "2001:db8::/32"}, "2001:db8:1::5", true},
                      AclCase{{"10.0.0.0/8", "2001:db8::/32"}, "2001:db9::5", false},
                      AclCase{{"192.168.1.7"}, "192.168.1.7", true},
                      AclCase{{"192.168.1.7"}, "192.168.1.8", false},
                      AclCase{{"0.0.0.0/0"}, "203.0.113.9", true}, AclCase{{}, "127.0.0.1", false},
                      // A list that does not parse allows nobody.
                      AclCase{{"127.0.0.0/8", "not-an-ip"}, "127.0.0.1", false},
                      AclCase{{"127.0.0.0/33"}, "127.0.0.1", false}));

TEST(AdminAclTest2, NonIpFamilyIsRefused) {
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  EXPECT_FALSE(adminClientAllowed(reinterpret_cast<const sockaddr*>(&ss), kLoopback));
}

}  // namespace
}  // namespace switchyard
