#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include "daemon/cli.h"
#include "daemon/server.h"

namespace switchyard {

int runDaemon(const RunOptions& options) {
  // Operational messages go to stderr, one flushed line each: tests and
  // systemd both read "listening on ..." from there.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("switchyard"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  spdlog::flush_on(spdlog::level::trace);
  std::vector<std::string> listen = options.listen;
  if (listen.empty()) {
    listen.push_back("127.0.0.1:3128");
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    Server server(&loop);
    if (!server.listen(listen)) {
      server.shutdown();
      rc = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (uv_loop_close(&loop) != 0) {
    spdlog::error("event loop closed with handles still open");
    rc = rc ? rc : 1;
  }
  spdlog::info("stopped");
  return rc;
}

}  // namespace switchyard
