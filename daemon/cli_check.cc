// `switchyard check --config FILE`: loads the file exactly as the daemon
// would, compiles the snapshot (which validates GOPROXY lists and patterns),
// and prints every problem as "file:line:col: message" on stderr (exit 1),
// or a one-line summary on stdout (exit 0).
#include <cstdio>
#include <string>
#include <vector>

#include "daemon/cli.h"
#include "rules/config_loader.h"
#include "rules/environment.h"
#include "rules/snapshot.h"

namespace switchyard {

int runCheck(const std::string& config_file) {
  rules::LoadResult loaded = rules::loadConfigFile(config_file, rules::processEnvironment());
  std::vector<std::string> errors = std::move(loaded.errors);
  if (loaded.config) {
    std::string summary = rules::summarizeConfig(*loaded.config);
    rules::ConfigSnapshotPtr snapshot =
        rules::ConfigSnapshot::build(std::move(*loaded.config), /*generation=*/0, &errors);
    if (snapshot != nullptr && errors.empty()) {
      std::printf("%s\n", summary.c_str());
      return 0;
    }
  }
  for (const std::string& error : errors) {
    std::fprintf(stderr, "%s\n", error.c_str());
  }
  if (errors.empty()) {
    // build() refused without saying why; still not a usable config.
    std::fprintf(stderr, "%s: the config could not be compiled\n", config_file.c_str());
  }
  return 1;
}

}  // namespace switchyard
