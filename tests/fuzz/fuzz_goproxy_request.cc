// Fuzzes GOPROXY request parsing: the path of every module-proxy request is
// attacker-chosen and ends up as a cache file path and an upstream URL.
// Whatever is accepted must be self-consistent: the cache key is stable, the
// escaped forms are exactly what escaping the unescaped module and version
// gives, and the canonical upstream path parses back to the same request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "rules/goproxy_request.h"
#include "rules/module_path.h"
#include "rules/semver.h"

namespace {

void check(bool condition) {
  if (!condition) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using switchyard::rules::GoproxyRequest;
  namespace r = switchyard::rules;
  const std::string path(reinterpret_cast<const char*>(data), size);

  // The building blocks must not crash on arbitrary bytes either.
  (void)r::checkModulePath(path);
  (void)r::checkFileElement(path);
  (void)r::semverCanonical(path);
  if (std::optional<std::string> decoded = r::percentDecode(path)) {
    check(*r::percentDecode(r::percentEncodePath(*decoded)) == *decoded);
  }
  if (std::optional<std::string> plain = r::unescapePath(path)) {
    check(r::escapePath(*plain) == path);
  }
  if (std::optional<std::string> plain = r::unescapeVersion(path)) {
    check(r::escapeVersion(*plain) == path);
  }

  GoproxyRequest req;
  std::string error;
  if (!r::parseGoproxyRequest(path, &req, &error)) {
    check(!error.empty());
    return 0;
  }
  const std::string key = req.cacheKey();
  check(!key.empty() && key == req.cacheKey());
  check(key.find("//") == std::string::npos && key.find("/../") == std::string::npos);
  const bool has_module = req.kind != GoproxyRequest::Kind::kSumdbSupported &&
                          req.kind != GoproxyRequest::Kind::kSumdbLatest &&
                          req.kind != GoproxyRequest::Kind::kSumdbTile;
  if (has_module) {
    check(r::checkModulePath(req.module));
    check(r::escapePath(req.module) == req.escaped_module);
  } else {
    check(req.module.empty() && req.escaped_module.empty());
  }
  const bool has_version =
      req.kind == GoproxyRequest::Kind::kInfo || req.kind == GoproxyRequest::Kind::kMod ||
      req.kind == GoproxyRequest::Kind::kZip || req.kind == GoproxyRequest::Kind::kSumdbLookup;
  if (has_version) {
    check(r::escapeVersion(req.version) == req.escaped_version);
    check(!req.immutable || r::isCanonicalModuleVersion(req.version));
  } else {
    check(req.version.empty() && req.escaped_version.empty());
  }

  GoproxyRequest again;
  check(r::parseGoproxyRequest(req.upstreamPath(), &again, &error));
  check(again.cacheKey() == key);
  check(again.kind == req.kind && again.module == req.module && again.version == req.version);
  check(again.immutable == req.immutable && again.sumdb_name == req.sumdb_name);
  check(again.upstreamPath() == req.upstreamPath());
  return 0;
}
