// pac_dump: a test tool that prints what the admin listener's /proxy.pac
// would serve for a config, and, with --explain, rules::explain()'s JSON for
// each URL (one object per line), so that tests/integration/test_pac_node.py
// can compare the PAC's answers with decide() without a running daemon.
//
//   pac_dump [--config FILE] [--proxy HOST:PORT]
//   pac_dump [--config FILE] --explain URL...
//
// Exit status: 0 on success, 1 when the config does not load, 2 on usage
// errors.
#include <cstdio>
#include <string>
#include <vector>

#include "rules/config_loader.h"
#include "rules/environment.h"
#include "rules/explain.h"
#include "rules/pac.h"
#include "rules/snapshot.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: pac_dump [--config FILE] [--proxy HOST:PORT]\n"
               "       pac_dump [--config FILE] --explain URL...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace switchyard::rules;
  std::string config_file;
  std::string proxy = "127.0.0.1:3128";
  bool explain_mode = false;
  std::vector<std::string> urls;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--config" || arg == "--proxy") && i + 1 < argc) {
      (arg == "--config" ? config_file : proxy) = argv[++i];
    } else if (arg == "--explain") {
      explain_mode = true;
    } else if (explain_mode && !arg.empty() && arg[0] != '-') {
      urls.push_back(arg);
    } else {
      return usage();
    }
  }

  const EnvMap env = processEnvironment();
  Config config;
  if (config_file.empty()) {
    config = defaultConfig(env);
  } else {
    LoadResult loaded = loadConfigFile(config_file, env);
    if (!loaded.config) {
      for (const std::string& e : loaded.errors) {
        std::fprintf(stderr, "%s\n", e.c_str());
      }
      return 1;
    }
    config = std::move(*loaded.config);
  }
  std::vector<std::string> errors;
  ConfigSnapshotPtr snap = ConfigSnapshot::build(std::move(config), 1, &errors);
  if (!snap) {
    for (const std::string& e : errors) {
      std::fprintf(stderr, "%s\n", e.c_str());
    }
    return 1;
  }

  if (!explain_mode) {
    std::fputs(generatePac(*snap, proxy).c_str(), stdout);
    return 0;
  }
  const auto merged = mergedEnvironment(snap->config(), env);
  int status = 0;
  for (const std::string& url : urls) {
    ExplainTarget target;
    std::string error;
    if (!parseExplainTarget(url, "", &target, &error)) {
      std::fprintf(stderr, "%s: %s\n", url.c_str(), error.c_str());
      std::printf("null\n");
      status = 1;
      continue;
    }
    ExplainResult result = explain(target, *snap, merged);
    std::printf("%s\n",
                result.json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  return status;
}
