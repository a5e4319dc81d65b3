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

struct PasswdOptions {
  std::string file;  // the users_file
  std::string user;
  bool delete_user = false;
};
// Adds or changes a proxy user; the password is read from stdin (one line)
// so it never appears in the process list or shell history.
int runPasswd(const PasswdOptions& options);

// `switchyard cache ls|verify|purge` on the module cache directory.
enum class CacheAction { kList, kVerify, kPurge };
struct CacheOptions {
  CacheAction action = CacheAction::kList;
  std::string config_file;  // cache.dir is read from here ...
  std::string dir;          // ... unless --dir gives the directory
  std::string pattern;      // GOPRIVATE syntax; empty: every entry (not for purge)
};
int runCache(const CacheOptions& options);

}  // namespace switchyard
