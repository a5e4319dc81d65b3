// `switchyard [run]`: load the config (or the built-in default and the
// environment), open the decision log, bind the listeners and run the loop
// until a stop signal has drained every connection.
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <cstdio>

#include "daemon/cli.h"
#include "daemon/decision_log.h"
#include "daemon/intercept_check.h"
#include "daemon/module_cache.h"
#include "daemon/runtime.h"
#include "daemon/sd_notify.h"
#include "daemon/server.h"
#include "rules/config_loader.h"
#include "rules/environment.h"
#include "rules/snapshot.h"

namespace switchyard {

int runDaemon(const RunOptions& options) {
  // Operational messages go to stderr, one flushed line each: tests and
  // systemd both read "listening on ..." from there.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("switchyard"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  spdlog::flush_on(spdlog::level::trace);
  // A peer that resets while we write must give EPIPE, not kill the daemon.
  ::signal(SIGPIPE, SIG_IGN);
  // Bursts of 64 KiB read blocks (tunnels, cache hits) would otherwise make
  // glibc give the top of the heap back after each burst and fault it in
  // again on the next: measured at 32 cache-hit clients, 57 page faults and
  // 1.3 brk per request, a third of nginx's speed; with these, 1.27x nginx
  // (docs/BENCHMARKS.md "Cache hits"). Idle connections hold no blocks, so
  // this bounds only how much a past burst keeps mapped.
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);

  rules::EnvMap env = rules::processEnvironment();
  rules::Config config;
  if (options.config_file.empty()) {
    config = rules::defaultConfig(env);
  } else {
    rules::LoadResult result = rules::loadConfigFile(options.config_file, env);
    if (!result.config) {
      for (const std::string& error : result.errors) {
        spdlog::error("{}", error);
      }
      spdlog::error("config {} has {} problem(s); not starting", options.config_file,
                    result.errors.size());
      return 1;
    }
    config = std::move(*result.config);
  }
  spdlog::set_level(spdlog::level::from_str(config.log.level));
  std::vector<std::string> listen = options.listen.empty() ? config.listen : options.listen;

  std::string error;
  std::unique_ptr<DecisionLog> decisions = DecisionLog::open(config.log, &error);
  if (decisions == nullptr) {
    spdlog::error("decision log {}: {}", config.log.decisions, error);
    return 1;
  }
  std::vector<std::string> errors;
  rules::ConfigSnapshotPtr snapshot = rules::ConfigSnapshot::build(std::move(config), 1, &errors);
  if (snapshot == nullptr) {
    for (const std::string& e : errors) {
      spdlog::error("{}", e);
    }
    return 1;
  }
  LiveConfigPtr live;
  if (!buildLiveConfig(snapshot, &live, &error)) {
    spdlog::error("{}", error);
    return 1;
  }
  if (!checkInterceptCa(snapshot->config(), &error)) {
    spdlog::error("{}", error);
    return 1;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  decisions->batchOn(&loop);
  int rc = 0;
  {
    Server::Options server_options;
    server_options.config_file = options.config_file;
    server_options.env = std::move(env);
    server_options.listen_overridden = !options.listen.empty();
    Server server(&loop, std::move(live), decisions.get(), std::move(server_options));
    // The module cache's index is rebuilt before the first request.
    std::unique_ptr<ModuleCache> cache;
    const rules::CacheConfig& cache_config = server.runtime().config->config().cache;
    bool cache_ok = true;
    if (!cache_config.dir.empty()) {
      cache = ModuleCache::open(&server.runtime(), cache_config.dir, cache_config.max_size,
                                cache_config.mutable_ttl, &error);
      if (cache == nullptr) {
        spdlog::error("cache.dir {}: {}", cache_config.dir, error);
        cache_ok = false;
      }
      server.runtime().module_cache = cache.get();
    }
    // Under switchyard.socket, systemd has bound the proxy port for us.
    std::vector<std::string> rejected;
    std::vector<int> activated = socketActivationFds(&rejected);
    bool ok = false;
    if (!cache_ok) {
      ok = false;
    } else if (!activated.empty()) {
      spdlog::info("socket activation: {} listening socket(s) from systemd", activated.size());
      ok = server.adopt(activated);
    } else {
      ok = server.listen(listen);
    }
    // After the proxy listeners, so that their "listening on" lines come
    // first (tools take the first one as the proxy's address).
    ok = ok && server.listenAdmin();
    if (ok) {
      server.notifyReady();
    } else {
      server.shutdown();
      rc = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  decisions->stopBatching();
  uv_run(&loop, UV_RUN_DEFAULT);  // the batching handles' close callbacks
  if (uv_loop_close(&loop) != 0) {
    spdlog::error("event loop closed with handles still open");
    rc = rc != 0 ? rc : 1;
  }
  decisions->flush();
  decisions.reset();
  spdlog::info("stopped");
  return rc;
}

}  // namespace switchyard
