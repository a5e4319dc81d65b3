// switchyard: command-line front door. Parsing only; the work is in cli_*.cc.
#include <CLI/CLI.hpp>

#include "daemon/cli.h"

int main(int argc, char** argv) {
  using namespace switchyard;
  CLI::App app{
      "Switchyard: a forward HTTPS proxy that reads GOPROXY, GOPRIVATE and NO_PROXY "
      "like Go does"};
  app.require_subcommand(0, 1);

  RunOptions run_options;
  auto add_run_flags = [&run_options](CLI::App* cmd) {
    cmd->add_option("--config,-c", run_options.config_file, "YAML config file");
    cmd->add_option("--listen,-l", run_options.listen, "listen address (repeatable)");
  };
  add_run_flags(&app);
  CLI::App* run = app.add_subcommand("run", "run the proxy (the default)");
  add_run_flags(run);

  std::string check_config;
  CLI::App* check = app.add_subcommand("check", "validate a config file");
  check->add_option("--config,-c", check_config, "YAML config file")->required();

  ExplainOptions explain_options;
  CLI::App* explain = app.add_subcommand("explain", "say what the proxy would do, and why");
  explain->add_option("--config,-c", explain_options.config_file, "YAML config file");
  explain->add_flag("--json", explain_options.json, "print one JSON object");
  explain->add_option("--module,-m", explain_options.module, "a Go module path");
  explain->add_option("target", explain_options.target, "URL or host[:port]");

  CLI::App* import_env = app.add_subcommand("import-env", "print the environment as YAML config");

  CaInitOptions ca_options;
  CLI::App* ca = app.add_subcommand("ca", "manage the local CA");
  ca->require_subcommand(1);
  CLI::App* ca_init = ca->add_subcommand("init", "create ca.crt and ca.key");
  ca_init->add_option("--dir", ca_options.dir, "directory for ca.crt and ca.key")->required();
  ca_init->add_flag("--force", ca_options.force, "overwrite an existing CA");

  PasswdOptions passwd_options;
  CLI::App* passwd = app.add_subcommand("passwd", "add or change a proxy user (password on stdin)");
  passwd->add_option("--file,-f", passwd_options.file, "users file")->required();
  passwd->add_flag("--delete", passwd_options.delete_user, "remove the user instead");
  passwd->add_option("user", passwd_options.user, "user name")->required();

  CacheOptions cache_options;
  CLI::App* cache = app.add_subcommand("cache", "list, verify or purge the module cache");
  cache->require_subcommand(1);
  auto add_cache_flags = [&cache_options](CLI::App* cmd) {
    cmd->add_option("--config,-c", cache_options.config_file, "YAML config file (for cache.dir)");
    cmd->add_option("--dir", cache_options.dir, "cache directory (instead of cache.dir)");
  };
  add_cache_flags(cache);
  const char* pattern_help = "module patterns, GOPRIVATE syntax (\"github.com/org,*.corp\")";
  CLI::App* cache_ls = cache->add_subcommand("ls", "list the entries");
  add_cache_flags(cache_ls);
  cache_ls->add_option("pattern", cache_options.pattern, pattern_help);
  CLI::App* cache_verify =
      cache->add_subcommand("verify", "re-check the entries, remove the broken ones");
  add_cache_flags(cache_verify);
  cache_verify->add_option("pattern", cache_options.pattern, pattern_help);
  CLI::App* cache_purge = cache->add_subcommand("purge", "remove the entries of some modules");
  add_cache_flags(cache_purge);
  cache_purge->add_option("pattern", cache_options.pattern, pattern_help)->required();

  CLI11_PARSE(app, argc, argv);

  if (*check) {
    return runCheck(check_config);
  }
  if (*explain) {
    if (explain_options.target.empty() == explain_options.module.empty()) {
      std::fprintf(stderr, "explain: give exactly one of URL, host[:port] or --module PATH\n");
      return 2;
    }
    return runExplain(explain_options);
  }
  if (*import_env) {
    return runImportEnv();
  }
  if (*passwd) {
    return runPasswd(passwd_options);
  }
  if (*ca_init) {
    return runCaInit(ca_options);
  }
  if (*cache) {
    cache_options.action = *cache_verify  ? CacheAction::kVerify
                           : *cache_purge ? CacheAction::kPurge
                                          : CacheAction::kList;
    return runCache(cache_options);
  }
  return runDaemon(run_options);
}
