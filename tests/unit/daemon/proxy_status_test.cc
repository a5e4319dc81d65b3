// recordError(): one function gives the client its answer (reason phrase,
// Proxy-Status, text body) and the decision log its fields.
#include "daemon/proxy_status.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchyard {
namespace {

struct ValueCase {
  std::string name;
  ProxyError error;
  std::string want;
};

ProxyError make(ProxyErrorKind kind, std::string details) {
  ProxyError e;
  e.kind = kind;
  e.details = std::move(details);
  return e;
}

TEST(ProxyStatusValue, Table) {
  std::vector<ValueCase> cases;
  cases.push_back({"denied", make(ProxyErrorKind::kHttpRequestDenied, "rule no-ads"),
                   "switchyard; error=http_request_denied; details=\"rule no-ads\""});
  cases.push_back(
      {"no details", make(ProxyErrorKind::kDnsError, ""), "switchyard; error=dns_error"});
  cases.push_back({"escaping", make(ProxyErrorKind::kHttpRequestError, "a \"q\" \\ b\r\n\xc3\xa9"),
                   "switchyard; error=http_request_error; details=\"a \\\"q\\\" \\\\ b????\""});
  {
    ProxyError e = make(ProxyErrorKind::kHttpRequestDenied, "parent said no");
    e.received_status = 403;
    e.next_hop = "http://u:***@p:8080";
    e.upstream_proxy_status = "switchyard; error=http_request_denied; details=\"port\"";
    cases.push_back({"passed on", e,
                     "switchyard; error=http_request_denied; details=\"port\", switchyard; "
                     "error=http_request_denied; received-status=403; "
                     "next-hop=\"http://u:***@p:8080\"; details=\"parent said no\""});
  }
  for (const ValueCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(proxyStatusValue(c.error), c.want);
  }
}

TEST(ProxyErrorToken, EveryKindHasAnRfc9209Token) {
  const std::vector<std::pair<ProxyErrorKind, std::string>> cases = {
      {ProxyErrorKind::kDnsError, "dns_error"},
      {ProxyErrorKind::kDestinationIpProhibited, "destination_ip_prohibited"},
      {ProxyErrorKind::kDestinationUnavailable, "destination_unavailable"},
      {ProxyErrorKind::kConnectionRefused, "connection_refused"},
      {ProxyErrorKind::kConnectionTimeout, "connection_timeout"},
      {ProxyErrorKind::kConnectionTerminated, "connection_terminated"},
      {ProxyErrorKind::kConnectionReadTimeout, "connection_read_timeout"},
      {ProxyErrorKind::kHttpRequestDenied, "http_request_denied"},
      {ProxyErrorKind::kHttpRequestError, "http_request_error"},
      {ProxyErrorKind::kHttpResponseHeaderSectionSize, "http_response_header_section_size"},
      {ProxyErrorKind::kHttpProtocolError, "http_protocol_error"},
      {ProxyErrorKind::kProxyLoopDetected, "proxy_loop_detected"},
      {ProxyErrorKind::kProxyInternalResponse, "proxy_internal_response"},
      {ProxyErrorKind::kProxyConfigurationError, "proxy_configuration_error"},
      {ProxyErrorKind::kConnectionLimitReached, "connection_limit_reached"},
      {ProxyErrorKind::kDestinationNotFound, "destination_not_found"},
      {ProxyErrorKind::kTlsCertificateError, "tls_certificate_error"},
      {ProxyErrorKind::kTlsProtocolError, "tls_protocol_error"},
  };
  ASSERT_EQ(cases.size(), static_cast<size_t>(ProxyErrorKind::kCount));
  for (const auto& [kind, token] : cases) {
    SCOPED_TRACE(token);
    EXPECT_EQ(proxyErrorToken(kind), token);
  }
}

TEST(ProxyErrorRank, MoreSpecificCausesWin) {
  EXPECT_GT(proxyErrorRank(ProxyErrorKind::kDestinationIpProhibited),
            proxyErrorRank(ProxyErrorKind::kDnsError));
  EXPECT_GT(proxyErrorRank(ProxyErrorKind::kConnectionRefused),
            proxyErrorRank(ProxyErrorKind::kConnectionTimeout));
  EXPECT_GT(proxyErrorRank(ProxyErrorKind::kConnectionTimeout),
            proxyErrorRank(ProxyErrorKind::kDnsError));
}

TEST(RecordError, ResponseAndRecordAgree) {
  ProxyError e;
  e.status = 403;
  e.reason = "Denied by rule no-ads";
  e.kind = ProxyErrorKind::kHttpRequestDenied;
  e.details = "CONNECT ads.example:443 denied by rule no-ads (cfg.yaml:12)";
  DecisionRecord record;
  uint64_t before = proxyErrorCount(ProxyErrorKind::kHttpRequestDenied);
  std::string response = recordError(e, /*close=*/true, /*head_only=*/false, &record);
  const std::string body =
      "403 Denied by rule no-ads\n\nCONNECT ads.example:443 denied by rule no-ads "
      "(cfg.yaml:12)\n";
  const std::string status =
      "switchyard; error=http_request_denied; details=\"CONNECT ads.example:443 denied by rule "
      "no-ads (cfg.yaml:12)\"";
  EXPECT_EQ(response,
            "HTTP/1.1 403 Denied by rule no-ads\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: " +
                std::to_string(body.size()) +
                "\r\n"
                "Proxy-Status: " +
                status +
                "\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n" +
                body);
  EXPECT_EQ(record.status, 403);
  EXPECT_EQ(record.proxy_status, status);
  EXPECT_EQ(proxyErrorCount(ProxyErrorKind::kHttpRequestDenied), before + 1);
}

TEST(RecordError, Variants) {
  struct Case {
    std::string name;
    int status;
    std::string reason;
    bool close;
    bool head_only;
    std::string want_status_line;
    bool want_body;
    bool want_close;
  };
  const std::vector<Case> cases = {
      {"default reason", 502, "", false, false, "HTTP/1.1 502 Bad Gateway\r\n", true, false},
      {"head only", 504, "Connect timeout", true, true, "HTTP/1.1 504 Connect timeout\r\n", false,
       true},
      {"control characters", 400, "Bad\r\nX-Injected: 1", true, false,
       "HTTP/1.1 400 Bad??X-Injected: 1\r\n", true, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ProxyError e;
    e.status = c.status;
    e.reason = c.reason;
    e.kind = ProxyErrorKind::kProxyInternalResponse;
    e.details = "why";
    e.extra_headers.add("Proxy-Authenticate", "Basic realm=\"switchyard\"");
    std::string response = recordError(e, c.close, c.head_only, nullptr);
    EXPECT_EQ(response.rfind(c.want_status_line, 0), 0u) << response;
    std::string body = std::to_string(c.status) + " " +
                       c.want_status_line.substr(13, c.want_status_line.size() - 15) + "\n\nwhy\n";
    EXPECT_NE(response.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
              std::string::npos)
        << response;
    EXPECT_EQ(response.size() >= body.size() &&
                  response.compare(response.size() - body.size(), body.size(), body) == 0,
              c.want_body)
        << response;
    EXPECT_EQ(response.find("\r\nConnection: close\r\n") != std::string::npos, c.want_close);
    EXPECT_NE(response.find("\r\nProxy-Authenticate: Basic realm=\"switchyard\"\r\n"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace switchyard
