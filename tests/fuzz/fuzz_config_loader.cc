// Fuzzes the YAML config loader and the validators it uses. The loader must
// never crash, throw or leak, whatever the bytes, and every error it reports
// must be one "file:line:col: message" line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "rules/config_loader.h"
#include "rules/units.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace switchyard::rules;
  std::string text(reinterpret_cast<const char*>(data), size);
  static const EnvMap kEnv{
      {"NO_PROXY", "localhost"}, {"GOPRIVATE", "*.corp"}, {"https_proxy", "http://p:1"}};
  LoadResult result = loadConfigString(text, "fuzz.yaml", kEnv);
  if (result.config.has_value() != result.errors.empty()) {
    std::abort();
  }
  for (const std::string& error : result.errors) {
    if (error.rfind("fuzz.yaml:", 0) != 0 || error.find('\n') != std::string::npos) {
      std::abort();
    }
  }
  if (result.config) {
    (void)summarizeConfig(*result.config);
  }
  // The same bytes through each validator on its own.
  std::string error;
  (void)parseDuration(text, &error);
  (void)parseSize(text, &error);
  (void)parseProxyUrl(text, /*scheme_optional=*/true, &error);
  (void)validateCidr(text, &error);
  (void)validateListenAddress(text, &error);
  return 0;
}
