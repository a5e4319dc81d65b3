// Entry points of the `switchyard` subcommands. main.cc only parses the
// command line (CLI11) and calls one of these; each returns the exit code.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace switchyard {

struct RunOptions {
  std::string config_file;          // empty: built-in default config
  std::vector<std::string> listen;  // --listen overrides `listen:`
};
int runDaemon(const RunOptions& options);

int runCheck(const std::string& config_file);

struct ExplainOptions {
  std::string config_file;  // empty: built-in default config + environment
  bool json = false;
  std::string target;  // URL or host[:port]
  std::string module;  // --module PATH
};
int runExplain(const ExplainOptions& options);

int runImportEnv();

struct CaInitOptions {
  std::string dir;
  bool force = false;
};
int runCaInit(const CaInitOptions& options);

}  // namespace switchyard
