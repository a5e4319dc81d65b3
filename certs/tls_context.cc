#include "certs/tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cstring>

namespace switchyard::certs {
namespace {

// ALPN wire format: each protocol prefixed by its length.
constexpr unsigned char kAlpnWire[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
static_assert(sizeof(kAlpnWire) == 1 + sizeof(kAlpnHttp11) - 1);

std::nullptr_t failNull(std::string* error, const std::string& what) {
  std::string detail = drainOpensslErrors();
  *error = detail.empty() ? what : what + " (" + detail + ")";
  return nullptr;
}

bool fail(std::string* error, const std::string& what) {
  failNull(error, what);
  return false;
}

// Picks "http/1.1" if the client offers it. Otherwise the handshake goes on
// without ALPN: the client then falls back to HTTP/1.1 by itself, which is
// kinder than an alert for a client that merely prefers h2.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnWire, sizeof(kAlpnWire), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// Settings shared by both directions.
bool configureCommon(SSL_CTX* ctx, std::string* error) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return fail(error, "cannot require TLS 1.2");
  }
  // Renegotiation is a DoS lever and nothing we speak needs it. Released
  // buffers matter with thousands of idle tunnels; a moving write buffer lets
  // the event loop retry a write from a different (reallocated) buffer.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return true;
}

}  // namespace

SslCtxPtr serverContext(std::string* error) {
  error->clear();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    return failNull(error, "cannot create a TLS server context");
  }
  if (!configureCommon(ctx.get(), error)) {
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, nullptr);
  static const unsigned char kSessionContext[] = "switchyard";
  if (SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof(kSessionContext) - 1) !=
      1) {
    return failNull(error, "cannot set the session id context");
  }
  return ctx;
}

SslCtxPtr serverContextForLeaf(const CertificateAuthority::Leaf& leaf, std::string* error) {
  SslCtxPtr ctx = serverContext(error);
  if (!ctx) {
    return nullptr;
  }
  if (!leaf.cert || !leaf.key) {
    *error = "leaf without certificate or key";
    return nullptr;
  }
  if (SSL_CTX_use_certificate(ctx.get(), leaf.cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), leaf.key.get()) != 1 ||
      (leaf.issuer && SSL_CTX_add1_chain_cert(ctx.get(), leaf.issuer.get()) != 1) ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return failNull(error, "cannot install the leaf for " + leaf.host);
  }
  return ctx;
}

bool useLeaf(SSL* ssl, const CertificateAuthority::Leaf& leaf, std::string* error) {
  error->clear();
  if (!leaf.cert || !leaf.key) {
    *error = "leaf without certificate or key";
    return false;
  }
  if (SSL_use_certificate(ssl, leaf.cert.get()) != 1 ||
      SSL_use_PrivateKey(ssl, leaf.key.get()) != 1 ||
      (leaf.issuer && SSL_add1_chain_cert(ssl, leaf.issuer.get()) != 1) ||
      SSL_check_private_key(ssl) != 1) {
    return fail(error, "cannot install the leaf for " + leaf.host);
  }
  return true;
}

SslCtxPtr clientContext(const std::string& upstream_ca_file, std::string* error) {
  error->clear();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    return failNull(error, "cannot create a TLS client context");
  }
  if (!configureCommon(ctx.get(), error)) {
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  // The system store (SSL_CERT_FILE / SSL_CERT_DIR, else Debian's
  // /etc/ssl/certs). A machine without one is not an error here: the extra
  // file may be all that is needed, and verification fails loudly otherwise.
  if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    drainOpensslErrors();
  }
  if (!upstream_ca_file.empty() &&
      SSL_CTX_load_verify_locations(ctx.get(), upstream_ca_file.c_str(), nullptr) != 1) {
    return failNull(error, "cannot load CA certificates from " + upstream_ca_file);
  }
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnWire, sizeof(kAlpnWire)) != 0) {
    return failNull(error, "cannot set ALPN");
  }
  return ctx;
}

bool setClientHost(SSL* ssl, const std::string& host, std::string* error) {
  error->clear();
  std::string h = host;
  bool bracketed = h.size() >= 2 && h.front() == '[' && h.back() == ']';
  if (bracketed) {
    h = h.substr(1, h.size() - 2);
  } else if (!h.empty() && h.back() == '.') {
    h.pop_back();
  }
  if (h.empty()) {
    *error = "empty host";
    return false;
  }
  unsigned char addr[16];
  bool is_ip = (!bracketed && inet_pton(AF_INET, h.c_str(), addr) == 1) ||
               inet_pton(AF_INET6, h.c_str(), addr) == 1;
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h.c_str()) != 1) {
      return fail(error, "cannot expect IP address " + h);
    }
    return true;
  }
  if (bracketed) {
    *error = "'" + host + "' is bracketed but not an IPv6 address";
    return false;
  }
  if (SSL_set_tlsext_host_name(ssl, h.c_str()) != 1) {
    return fail(error, "cannot send SNI " + h);
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, h.c_str()) != 1) {
    return fail(error, "cannot expect host name " + h);
  }
  return true;
}

std::string verifyResultText(const SSL* ssl) {
  long result = SSL_get_verify_result(ssl);
  return X509_verify_cert_error_string(result);
}

}  // namespace switchyard::certs
