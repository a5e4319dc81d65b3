// Real TLS handshakes, in process, through memory BIOs: a server presenting a
// minted leaf and a client that trusts the local CA, as in an intercepted
// tunnel.
#include "certs/tls_context.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <string>
#include <vector>

#include "certs/ca.h"
#include "tests/unit/test_support/ca_fixture.h"

namespace switchyard::certs {
namespace {

// A client and a server SSL wired back to back with two memory BIOs.
struct Wire {
  SslPtr client;
  SslPtr server;
};

Wire connect(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
  Wire w{SslPtr(SSL_new(client_ctx)), SslPtr(SSL_new(server_ctx))};
  BIO* to_server = BIO_new(BIO_s_mem());
  BIO* to_client = BIO_new(BIO_s_mem());
  // An empty memory BIO must read as "try again", not as end of stream.
  BIO_set_mem_eof_return(to_server, -1);
  BIO_set_mem_eof_return(to_client, -1);
  // Each BIO is owned by both SSLs: one extra reference each.
  BIO_up_ref(to_server);
  BIO_up_ref(to_client);
  SSL_set_bio(w.client.get(), to_client, to_server);
  SSL_set_bio(w.server.get(), to_server, to_client);
  SSL_set_connect_state(w.client.get());
  SSL_set_accept_state(w.server.get());
  return w;
}

bool retryable(SSL* ssl, int rc) {
  int err = SSL_get_error(ssl, rc);
  return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

// Drives both ends until both finish or one fails.
bool handshake(const Wire& w) {
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    if (!client_done) {
      int rc = SSL_do_handshake(w.client.get());
      client_done = rc == 1;
      if (!client_done && !retryable(w.client.get(), rc)) {
        return false;
      }
    }
    if (!server_done) {
      int rc = SSL_do_handshake(w.server.get());
      server_done = rc == 1;
      if (!server_done && !retryable(w.server.get(), rc)) {
        return false;
      }
    }
  }
  return client_done && server_done;
}

// Sends `data` from one end and reads it at the other.
std::string transfer(SSL* from, SSL* to, const std::string& data) {
  if (SSL_write(from, data.data(), static_cast<int>(data.size())) !=
      static_cast<int>(data.size())) {
    return "<write failed>";
  }
  std::string got;
  char buf[256];
  for (int i = 0; i < 10 && got.size() < data.size(); ++i) {
    int n = SSL_read(to, buf, sizeof(buf));
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
    } else if (!retryable(to, n)) {
      return "<read failed>";
    }
  }
  return got;
}

std::string alpnOf(SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ca_ = new test::TestCa("sy-tls-test"); }
  static void TearDownTestSuite() {
    delete ca_;
    ca_ = nullptr;
  }
  void SetUp() override { ERR_clear_error(); }

  static SslCtxPtr trustingClient() { return ca_->trustingClient(); }

  static std::shared_ptr<const CertificateAuthority::Leaf> leafFor(const std::string& host) {
    return ca_->mint(host);
  }

  static test::TestCa* ca_;
};
test::TestCa* TlsTest::ca_ = nullptr;

TEST_F(TlsTest, HandshakeSucceedsForEachHostKind) {
  struct Case {
    const char* leaf_host;    // what the leaf was minted for
    const char* client_host;  // what the client expects
    const char* sni;          // what the server sees (nullptr: no SNI)
    bool per_leaf_context;    // serverContextForLeaf() or serverContext() + useLeaf()
  };
  const Case cases[] = {
      {"proxy.golang.org", "proxy.golang.org", "proxy.golang.org", true},
      {"proxy.golang.org", "proxy.golang.org", "proxy.golang.org", false},
      {"Sum.Golang.Org", "sum.golang.org.", "sum.golang.org", true},
      {"xn--bcher-kva.example", "xn--bcher-kva.example", "xn--bcher-kva.example", false},
      {"127.0.0.1", "127.0.0.1", nullptr, true},
      {"::1", "[::1]", nullptr, false},
      {"[2001:db8::5]", "2001:db8::5", nullptr, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.leaf_host) + (c.per_leaf_context ? " per-leaf" : " shared"));
    auto leaf = leafFor(c.leaf_host);
    ASSERT_TRUE(leaf);
    std::string error;
    SslCtxPtr server_ctx =
        c.per_leaf_context ? serverContextForLeaf(*leaf, &error) : serverContext(&error);
    ASSERT_TRUE(server_ctx) << error;
    SslCtxPtr client_ctx = trustingClient();
    Wire w = connect(client_ctx.get(), server_ctx.get());
    if (!c.per_leaf_context) {
      ASSERT_TRUE(useLeaf(w.server.get(), *leaf, &error)) << error;
    }
    ASSERT_TRUE(setClientHost(w.client.get(), c.client_host, &error)) << error;

    ASSERT_TRUE(handshake(w)) << drainOpensslErrors() << " / " << verifyResultText(w.client.get());
    EXPECT_EQ(SSL_get_verify_result(w.client.get()), X509_V_OK);
    EXPECT_EQ(verifyResultText(w.client.get()), "ok");
    EXPECT_EQ(alpnOf(w.client.get()), "http/1.1");
    EXPECT_EQ(alpnOf(w.server.get()), "http/1.1");
    EXPECT_GE(SSL_version(w.client.get()), TLS1_2_VERSION);
    const char* sni = SSL_get_servername(w.server.get(), TLSEXT_NAMETYPE_host_name);
    if (c.sni == nullptr) {
      EXPECT_EQ(sni, nullptr);
    } else {
      ASSERT_NE(sni, nullptr);
      EXPECT_STREQ(sni, c.sni);
    }
    // The client saw the leaf and the chain up to our CA.
    X509* peer = SSL_get0_peer_certificate(w.client.get());
    ASSERT_NE(peer, nullptr);
    EXPECT_EQ(X509_cmp(peer, leaf->cert.get()), 0);
    STACK_OF(X509)* chain = SSL_get0_verified_chain(w.client.get());
    ASSERT_NE(chain, nullptr);
    ASSERT_EQ(sk_X509_num(chain), 2);
    EXPECT_EQ(X509_cmp(sk_X509_value(chain, 1), ca_->authority().cert()), 0);

    EXPECT_EQ(transfer(w.client.get(), w.server.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
              "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(transfer(w.server.get(), w.client.get(), "HTTP/1.1 204 No Content\r\n\r\n"),
              "HTTP/1.1 204 No Content\r\n\r\n");
  }
}

TEST_F(TlsTest, AlpnNegotiation) {
  struct Case {
    const char* name;
    std::vector<unsigned char> offer;  // wire format; empty: no ALPN extension
    const char* expected;              // "" when nothing was selected
  };
  const Case cases[] = {
      {"http/1.1 only", {8, 'h', 't', 't', 'p', '/', '1', '.', '1'}, "http/1.1"},
      {"h2 first, then http/1.1",
       {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'},
       "http/1.1"},
      {"h2 only: no ALPN, no alert", {2, 'h', '2'}, ""},
      {"http/1.0 only", {8, 'h', 't', 't', 'p', '/', '1', '.', '0'}, ""},
      {"no ALPN offered", {}, ""},
  };
  auto leaf = leafFor("alpn.example");
  ASSERT_TRUE(leaf);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string error;
    SslCtxPtr server_ctx = serverContextForLeaf(*leaf, &error);
    ASSERT_TRUE(server_ctx) << error;
    SslCtxPtr client_ctx = trustingClient();
    Wire w = connect(client_ctx.get(), server_ctx.get());
    // SSL_set_alpn_protos with an empty list clears what the context set.
    ASSERT_EQ(SSL_set_alpn_protos(w.client.get(), c.offer.empty() ? nullptr : c.offer.data(),
                                  static_cast<unsigned>(c.offer.size())),
              0);
    ASSERT_TRUE(setClientHost(w.client.get(), "alpn.example", &error)) << error;
    ASSERT_TRUE(handshake(w)) << drainOpensslErrors();
    EXPECT_EQ(alpnOf(w.client.get()), c.expected);
    EXPECT_EQ(alpnOf(w.server.get()), c.expected);
  }
}

TEST_F(TlsTest, HandshakeFailures) {
  struct Case {
    const char* name;
    const char* leaf_host;
    const char* client_host;
    bool trust_ca;       // client loads ca.crt
    int client_max;      // 0: default
    long verify_result;  // expected on the client; -1: do not check
  };
  const Case cases[] = {
      {"wrong host name", "a.example", "b.example", true, 0, X509_V_ERR_HOSTNAME_MISMATCH},
      {"parent domain", "www.example.com", "example.com", true, 0, X509_V_ERR_HOSTNAME_MISMATCH},
      {"subdomain", "example.com", "www.example.com", true, 0, X509_V_ERR_HOSTNAME_MISMATCH},
      {"wrong IP", "127.0.0.1", "127.0.0.2", true, 0, X509_V_ERR_IP_ADDRESS_MISMATCH},
      {"IP leaf, name expected", "127.0.0.1", "localhost", true, 0, X509_V_ERR_HOSTNAME_MISMATCH},
      {"name leaf, IP expected", "localhost", "127.0.0.1", true, 0, X509_V_ERR_IP_ADDRESS_MISMATCH},
      // The server sends the CA after the leaf, so the client finds an
      // untrusted self-signed root rather than a missing issuer.
      {"CA not trusted", "a.example", "a.example", false, 0, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN},
      {"client limited to TLS 1.1", "a.example", "a.example", true, TLS1_1_VERSION, -1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto leaf = leafFor(c.leaf_host);
    ASSERT_TRUE(leaf);
    std::string error;
    SslCtxPtr server_ctx = serverContextForLeaf(*leaf, &error);
    ASSERT_TRUE(server_ctx) << error;
    SslCtxPtr client_ctx = clientContext(c.trust_ca ? ca_->certPath() : "", &error);
    ASSERT_TRUE(client_ctx) << error;
    if (c.client_max != 0) {
      SSL_CTX_set_min_proto_version(client_ctx.get(), TLS1_VERSION);
      SSL_CTX_set_max_proto_version(client_ctx.get(), c.client_max);
      SSL_CTX_set_security_level(client_ctx.get(), 0);
    }
    Wire w = connect(client_ctx.get(), server_ctx.get());
    ASSERT_TRUE(setClientHost(w.client.get(), c.client_host, &error)) << error;
    EXPECT_FALSE(handshake(w));
    if (c.verify_result >= 0) {
      EXPECT_EQ(SSL_get_verify_result(w.client.get()), c.verify_result)
          << verifyResultText(w.client.get());
      EXPECT_NE(verifyResultText(w.client.get()), "ok");
    }
    drainOpensslErrors();
  }
}

TEST_F(TlsTest, ServerRefusesOldProtocols) {
  auto leaf = leafFor("old.example");
  ASSERT_TRUE(leaf);
  std::string error;
  SslCtxPtr server_ctx = serverContextForLeaf(*leaf, &error);
  ASSERT_TRUE(server_ctx) << error;
  EXPECT_EQ(SSL_CTX_get_min_proto_version(server_ctx.get()), TLS1_2_VERSION);
  EXPECT_NE(SSL_CTX_get_options(server_ctx.get()) & SSL_OP_NO_RENEGOTIATION, 0u);
  SslCtxPtr client_ctx = clientContext("", &error);
  ASSERT_TRUE(client_ctx) << error;
  EXPECT_EQ(SSL_CTX_get_min_proto_version(client_ctx.get()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(client_ctx.get()), SSL_VERIFY_PEER);
}

TEST_F(TlsTest, ClientContextExtraCaFile) {
  test::TempDir tmp("sy-tls-test");
  {
    std::ofstream(tmp.sub("garbage.pem")) << "not a certificate\n";
    std::ofstream(tmp.sub("empty.pem"));
  }
  struct Case {
    std::string file;
    bool ok;
  };
  const Case cases[] = {
      {"", true},
      {ca_->certPath(), true},
      {tmp.sub("missing.pem"), false},
      {tmp.sub("garbage.pem"), false},
      {tmp.sub("empty.pem"), false},
      {tmp.path(), false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    std::string error;
    SslCtxPtr ctx = clientContext(c.file, &error);
    EXPECT_EQ(static_cast<bool>(ctx), c.ok) << error;
    if (!c.ok) {
      EXPECT_NE(error.find("cannot load CA certificates from " + c.file), std::string::npos)
          << error;
    }
    EXPECT_EQ(ERR_peek_error(), 0u) << "errors left on the queue";
  }
}

TEST_F(TlsTest, SetClientHostRejectsUnusableHosts) {
  std::string error;
  SslCtxPtr ctx = clientContext("", &error);
  ASSERT_TRUE(ctx) << error;
  const char* bad[] = {"", ".", "[]", "[example.com]", "[10.0.0.1]"};
  for (const char* host : bad) {
    SCOPED_TRACE(host);
    SslPtr ssl(SSL_new(ctx.get()));
    EXPECT_FALSE(setClientHost(ssl.get(), host, &error));
    EXPECT_FALSE(error.empty());
  }
}

TEST_F(TlsTest, LeafWithoutKeyIsRefused) {
  CertificateAuthority::Leaf empty;
  std::string error;
  EXPECT_FALSE(serverContextForLeaf(empty, &error));
  EXPECT_NE(error.find("without certificate or key"), std::string::npos);
  SslCtxPtr ctx = serverContext(&error);
  ASSERT_TRUE(ctx) << error;
  SslPtr ssl(SSL_new(ctx.get()));
  EXPECT_FALSE(useLeaf(ssl.get(), empty, &error));
}

}  // namespace
}  // namespace switchyard::certs
