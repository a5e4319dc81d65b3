// SSL_CTX factories for both sides of an intercepted tunnel: the server side
// that presents a minted leaf to the client, and the client side that talks
// to the real origin (or a mirror) and verifies it.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "certs/ca.h"

namespace switchyard::certs {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// The only application protocol we speak inside a tunnel: the inner requests
// go through the HTTP/1.1 parser.
inline constexpr char kAlpnHttp11[] = "http/1.1";

// A server context without a certificate: TLS 1.2 or newer, ALPN "http/1.1"
// only (a client offering only other protocols gets no ALPN answer rather than
// an alert), renegotiation off, buffers released while idle. Use it with
// useLeaf() on each SSL so one context serves every intercepted host.
SslCtxPtr serverContext(std::string* error);

// A server context as above that presents `leaf` (followed by its CA).
SslCtxPtr serverContextForLeaf(const CertificateAuthority::Leaf& leaf, std::string* error);

// Makes `ssl` (from serverContext()) present `leaf` followed by its CA.
bool useLeaf(SSL* ssl, const CertificateAuthority::Leaf& leaf, std::string* error);

// A client context for upstream connections: TLS 1.2 or newer, the peer is
// verified against the system trust store plus, when not empty,
// `upstream_ca_file` (PEM, for mirrors behind a private CA), and ALPN offers
// "http/1.1". Fails if the extra file cannot be loaded.
SslCtxPtr clientContext(const std::string& upstream_ca_file, std::string* error);

// Prepares a client `ssl` for `host`: a DNS name gets SNI and a hostname
// check (no partial wildcards); an IP literal (IPv6 with or without brackets)
// gets an IP-address check and no SNI, which RFC 6066 forbids for addresses.
// One trailing dot is dropped. Must be called before the handshake.
bool setClientHost(SSL* ssl, const std::string& host, std::string* error);

// Why verification of the peer failed, in words ("ok" when it did not).
std::string verifyResultText(const SSL* ssl);

}  // namespace switchyard::certs
