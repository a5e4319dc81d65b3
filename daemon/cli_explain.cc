// `switchyard explain`: what the proxy would do with a request, and why.
// It runs the very decide() the daemon runs, on the same config, with no
// daemon needed.
#include <cstdio>
#include <iostream>

#include "daemon/cli.h"
#include "rules/config_loader.h"
#include "rules/environment.h"
#include "rules/explain.h"
#include "rules/snapshot.h"

namespace switchyard {

int runExplain(const ExplainOptions& options) {
  rules::EnvMap process_env = rules::processEnvironment();
  rules::Config config;
  if (options.config_file.empty()) {
    config = rules::defaultConfig(process_env);
  } else {
    rules::LoadResult loaded = rules::loadConfigFile(options.config_file, process_env);
    if (!loaded.config) {
      for (const std::string& error : loaded.errors) {
        std::fprintf(stderr, "%s\n", error.c_str());
      }
      return 1;
    }
    config = std::move(*loaded.config);
  }
  std::map<std::string, std::string> environment = rules::mergedEnvironment(config, process_env);
  std::vector<std::string> errors;
  rules::ConfigSnapshotPtr snapshot = rules::ConfigSnapshot::build(std::move(config), 1, &errors);
  if (!snapshot) {
    for (const std::string& error : errors) {
      std::fprintf(stderr, "%s\n", error.c_str());
    }
    return 1;
  }
  rules::ExplainTarget target;
  std::string error;
  if (!rules::parseExplainTarget(options.target, options.module, &target, &error)) {
    std::fprintf(stderr, "explain: %s: %s\n", options.target.c_str(), error.c_str());
    return 2;
  }
  rules::ExplainResult result = rules::explain(target, *snapshot, environment);
  if (options.json) {
    std::cout << result.json.dump() << "\n";
  } else {
    std::cout << result.text;
  }
  return 0;
}

}  // namespace switchyard
