// `switchyard import-env`: prints the Go / no_proxy variables of the current
// process as a config file that `switchyard check` accepts. With
// `inherit_env: false` the file then means the same thing wherever it runs,
// whatever the daemon's own environment holds.
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <string>

#include "daemon/cli.h"
#include "rules/environment.h"

namespace switchyard {

namespace {

// YAML text is Unicode: a value with bytes that are not UTF-8 cannot be
// written as it is (the emitter substitutes U+FFFD), so we say so.
bool isValidUtf8(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
    } else if ((c >> 4) == 0xe) {
      extra = 2;
    } else if ((c >> 3) == 0x1e) {
      extra = 3;
    } else {
      return false;
    }
    if (text.size() - i <= extra) {
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) {
        return false;
      }
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

int runImportEnv() {
  rules::EnvMap env = rules::processEnvironment();
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "inherit_env" << YAML::Value << false;
  out << YAML::Key << "env" << YAML::Value << YAML::BeginMap;
  for (std::string_view name : rules::kEnvNames) {
    auto it = env.find(std::string(name));
    if (it == env.end()) {
      continue;
    }
    // Double quotes always: values like "off", "*" or "" would otherwise be
    // read back as something else, or not at all. The emitter escapes
    // control characters and quotes.
    if (!isValidUtf8(it->second)) {
      std::fprintf(stderr,
                   "import-env: warning: %s is not valid UTF-8; its invalid bytes are written "
                   "as U+FFFD\n",
                   it->first.c_str());
    }
    out << YAML::Key << it->first << YAML::Value << YAML::DoubleQuoted << it->second;
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
  if (!out.good()) {
    std::fprintf(stderr, "import-env: cannot write YAML: %s\n", out.GetLastError().c_str());
    return 1;
  }
  std::printf(
      "# Written by `switchyard import-env` from the environment it ran in.\n"
      "# inherit_env: false makes this file the whole environment of the daemon.\n"
      "%s\n",
      out.c_str());
  return 0;
}

}  // namespace switchyard
