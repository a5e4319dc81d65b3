// `switchyard ca init --dir DIR [--force]`: creates the local CA that signs
// the leaves for intercepted hosts, then loads it back, so that what we print
// is what the daemon will use.
#include <cstdio>
#include <memory>
#include <string>

#include "certs/ca.h"
#include "daemon/cli.h"

namespace switchyard {

int runCaInit(const CaInitOptions& options) {
  std::string error;
  certs::CaFiles files;
  if (!certs::createCa(options.dir, options.force, &error, &files)) {
    std::fprintf(stderr, "ca init: %s\n", error.c_str());
    return 1;
  }
  std::unique_ptr<certs::CertificateAuthority> ca =
      certs::CertificateAuthority::load(options.dir, &error);
  if (!ca) {
    std::fprintf(stderr, "ca init: wrote the CA but cannot load it back: %s\n", error.c_str());
    return 1;
  }
  std::printf("CA certificate: %s\n", files.cert_path.c_str());
  std::printf("CA private key: %s (mode 0600)\n", files.key_path.c_str());
  std::printf("SHA-256 fingerprint: %s\n", ca->fingerprint().c_str());
  std::printf(
      "Clients must trust %s to accept intercepted connections; see docs/OPERATIONS.md "
      "(\"Local CA\").\n",
      files.cert_path.c_str());
  return 0;
}

}  // namespace switchyard
