// The mapping from a failed mirror walk to the one error answer the client
// and the decision log get: every RFC 9209 token MirrorFetch reports maps to
// its kind, and the answer keeps the walk's status and attempts body.
#include "daemon/mirror_exchange.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace switchyard {
namespace {

TEST(MirrorExchangeTest, EveryMirrorTokenMapsToItsKind) {
  const std::vector<std::pair<std::string, ProxyErrorKind>> cases = {
      {"destination_not_found", ProxyErrorKind::kDestinationNotFound},
      {"destination_unavailable", ProxyErrorKind::kDestinationUnavailable},
      {"dns_error", ProxyErrorKind::kDnsError},
      {"connection_refused", ProxyErrorKind::kConnectionRefused},
      {"connection_timeout", ProxyErrorKind::kConnectionTimeout},
      {"connection_read_timeout", ProxyErrorKind::kConnectionReadTimeout},
      {"connection_terminated", ProxyErrorKind::kConnectionTerminated},
      {"tls_certificate_error", ProxyErrorKind::kTlsCertificateError},
      {"tls_protocol_error", ProxyErrorKind::kTlsProtocolError},
      {"http_protocol_error", ProxyErrorKind::kHttpProtocolError},
      {"http_response_header_section_size", ProxyErrorKind::kHttpResponseHeaderSectionSize},
      {"destination_ip_prohibited", ProxyErrorKind::kDestinationIpProhibited},
      {"proxy_loop_detected", ProxyErrorKind::kProxyLoopDetected},
      {"proxy_configuration_error", ProxyErrorKind::kProxyConfigurationError},
      // Unknown or empty: the generic "could not get it from there".
      {"", ProxyErrorKind::kDestinationUnavailable},
      {"no_such_token", ProxyErrorKind::kDestinationUnavailable},
      {"DNS_ERROR", ProxyErrorKind::kDestinationUnavailable},
  };
  for (const auto& [token, kind] : cases) {
    SCOPED_TRACE(token);
    EXPECT_EQ(proxyErrorKindFromToken(token), kind);
    if (!token.empty() && token != "no_such_token" && token != "DNS_ERROR") {
      EXPECT_EQ(proxyErrorToken(proxyErrorKindFromToken(token)), token);
    }
  }
}

TEST(MirrorExchangeTest, FailureBecomesOneAnswerWithTheAttemptsBody) {
  struct Case {
    int status;
    std::string reason;
    std::string token;
    std::optional<int> received;
  };
  const std::vector<Case> cases = {
      {404, "Not found on any mirror", "destination_not_found", 404},
      {502, "Mirror failed", "connection_refused", std::nullopt},
      {504, "Mirror timeout", "connection_read_timeout", std::nullopt},
      {502, "Mirror failed", "destination_unavailable", 503},
      {502, "Mirror failed", "tls_certificate_error", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.token);
    MirrorFailure f;
    f.status = c.status;
    f.reason = c.reason;
    f.proxy_status_error = c.token;
    f.received_status = c.received;
    f.next_hop = "https://m.test/x/@v/list";
    f.details = "https://m.test/x/@v/list: something";
    f.body = std::to_string(c.status) + " " + c.reason + "\n\nattempt 1\nattempt 2\n";
    ProxyError e = proxyErrorFromMirrorFailure(f);
    EXPECT_EQ(e.status, c.status);
    EXPECT_EQ(e.reason, c.reason);
    EXPECT_EQ(proxyErrorToken(e.kind), c.token);
    EXPECT_EQ(e.received_status, c.received);

    DecisionRecord record;
    std::string response = recordError(e, /*close=*/false, /*head_only=*/false, &record);
    EXPECT_EQ(record.status, c.status);
    EXPECT_EQ(response.rfind("HTTP/1.1 " + std::to_string(c.status) + " " + c.reason + "\r\n", 0),
              0u);
    EXPECT_NE(response.find("error=" + c.token), std::string::npos);
    EXPECT_NE(response.find("next-hop=\"https://m.test/x/@v/list\""), std::string::npos);
    EXPECT_NE(response.find("Content-Length: " + std::to_string(f.body.size()) + "\r\n"),
              std::string::npos);
    // The body is exactly the walk's listing.
    EXPECT_EQ(response.substr(response.size() - f.body.size()), f.body);
    EXPECT_EQ(response.find("Connection: close"), std::string::npos);

    std::string head_only = recordError(e, /*close=*/true, /*head_only=*/true, nullptr);
    EXPECT_EQ(head_only.find("attempt 1"), std::string::npos);
    EXPECT_NE(head_only.find("Connection: close"), std::string::npos);
  }
}

}  // namespace
}  // namespace switchyard
