// A local CA made on disk for the tests that need minted leaves (the certs
// tests and the TLS tests of the daemon).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "certs/ca.h"
#include "certs/tls_context.h"
#include "tests/unit/test_support/temp_dir.h"

namespace switchyard::test {

// A CA created by certs::createCa() in its own temporary directory and loaded
// back. Suites make one in SetUpTestSuite() and delete it in
// TearDownTestSuite(), so the suite pays for one CA key.
class TestCa {
 public:
  using LeafPtr = std::shared_ptr<const certs::CertificateAuthority::Leaf>;

  // A failure to create or load the CA is a fatal test failure.
  explicit TestCa(const std::string& dir_prefix) : dir_(dir_prefix) { createAndLoad(); }

  const certs::CertificateAuthority& authority() const { return *authority_; }
  // The CA certificate a client is told to trust.
  const std::string& certPath() const { return authority_->files().cert_path; }

  // A client context that trusts this CA; a failure is a test failure (and
  // a null context).
  certs::SslCtxPtr trustingClient() const {
    std::string error;
    certs::SslCtxPtr ctx = certs::clientContext(certPath(), &error);
    EXPECT_TRUE(ctx) << error;
    return ctx;
  }

  // A leaf for `host`; a failure to mint is a test failure (and a null leaf).
  LeafPtr mint(const std::string& host) const {
    std::string error;
    LeafPtr leaf = authority_->mint(host, &error);
    EXPECT_NE(leaf, nullptr) << error;
    return leaf;
  }

 private:
  // Not in the constructor: ASSERT_* expands to a `return` of a value, which
  // a constructor may not hold.
  void createAndLoad() {
    std::string error;
    ASSERT_TRUE(certs::createCa(dir_.path(), false, &error)) << error;
    authority_ = certs::CertificateAuthority::load(dir_.path(), &error);
    ASSERT_NE(authority_, nullptr) << error;
  }

  TempDir dir_;
  std::unique_ptr<certs::CertificateAuthority> authority_;
};

}  // namespace switchyard::test
